"""The ``thawdetect qgis`` command and the run ledger's QGIS styles (hook implementations in
:mod:`.plugin`; the work is in :mod:`thawdetect.core.qgis_project`)."""
