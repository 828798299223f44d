"""Inventory export formats: one registry, built-ins and third-party formats alike.

An :class:`Exporter` names a format, the file suffixes that imply it and a ``write`` function.
The core registers GeoPackage, GeoJSON and CSV through the same hook a plugin uses
(``thawdetect_register_exporters``), and ``thawdetect inventory export`` /
:func:`thawdetect.core.inventory.export_inventory` pick one by ``--format`` or by the output's
suffix. The core owns everything around ``write``: the run's inventory frame (working CRS, every
field, ARTS fields when asked), the atomic write (``write`` gets a temporary path beside the
output, renamed onto it only when ``write`` returned) and the one-line errors.

Example (a plugin adding KML through GDAL)::

    import pyogrio
    from thawdetect import hookimpl
    from thawdetect import Exporter

    def _kml(frame, path, layer):
        pyogrio.write_dataframe(frame.to_crs(4326), path, driver="KML", layer=layer)

    @hookimpl
    def thawdetect_register_exporters(register):
        register(Exporter("kml", (".kml",), _kml, "Google Earth KML (WGS84)"))
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from thawdetect.core.errors import InputError

__all__ = ["BUILTIN_EXPORTERS", "Exporter", "choose_exporter"]


@dataclass(frozen=True)
class Exporter:
    """One inventory export format.

    Attributes:
        name: the ``--format`` value (lower case, e.g. ``gpkg``).
        suffixes: file suffixes that imply this format (``(".gpkg",)``), lower case, with the dot.
        write: ``write(frame, path, layer)`` writes ``frame`` (a GeoDataFrame in the run's
            working CRS; reproject if the format wants another) to ``path`` (a temporary file
            beside the output, with the output's suffix); ``layer`` is the layer name to use
            where the format has layers.
        description: one line for ``--help`` and error messages.
        count: ``count(path)`` → features in a written file (default: GDAL's feature count).
    """

    name: str
    suffixes: tuple[str, ...]
    write: Callable[[gpd.GeoDataFrame, Path, str], Any]
    description: str = ""
    count: Callable[[Path], int] | None = None

    def features_in(self, path: Path) -> int:
        """How many features ``path`` holds (``count`` or GDAL's feature count)."""
        if self.count is not None:
            return int(self.count(path))
        import pyogrio

        return int(pyogrio.read_info(path)["features"])


def _write_ogr(driver: str, wgs84: bool) -> Callable[[gpd.GeoDataFrame, Path, str], None]:
    def write(frame: gpd.GeoDataFrame, path: Path, layer: str) -> None:
        import pyogrio

        data = frame.to_crs(4326) if wgs84 and frame.crs is not None else frame
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            pyogrio.write_dataframe(
                data, path, driver=driver, layer=layer,
                geometry_type="Unknown" if len(data) == 0 else None,
            )  # fmt: skip

    return write


def _write_csv(frame: gpd.GeoDataFrame, path: Path, layer: str) -> None:
    df = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    df["geometry_wkt"] = frame.to_crs(4326).geometry.to_wkt() if len(frame) else []
    df.to_csv(path, index=False)


def _count_csv(path: Path) -> int:
    return len(pd.read_csv(path))


#: The formats the core registers (``thawdetect_register_exporters`` of the core plugin).
BUILTIN_EXPORTERS: tuple[Exporter, ...] = (
    Exporter(
        "gpkg", (".gpkg",), _write_ogr("GPKG", wgs84=False),
        "GeoPackage in the run's working CRS (layer 'inventory'; QGIS opens it)",
    ),
    Exporter(
        "geojson", (".geojson", ".json"), _write_ogr("GeoJSON", wgs84=True),
        "GeoJSON in WGS84 (RFC 7946)",
    ),
    Exporter(
        "csv", (".csv",), _write_csv,
        "CSV of the attributes with a WGS84 geometry_wkt column", _count_csv,
    ),
)  # fmt: skip


def choose_exporter(out_path: Path, fmt: str | None, exporters: Mapping[str, Exporter]) -> Exporter:
    """The exporter for ``out_path``: ``fmt`` if given (it must agree with a suffix another
    format claims), else the one whose suffixes hold ``out_path``'s.

    Raises:
        InputError: an unknown format or suffix, or a ``fmt`` that contradicts the suffix
            (one line naming the formats there are).
    """
    by_suffix = {s: e for e in exporters.values() for s in e.suffixes}
    suffix = out_path.suffix.lower()
    names = ", ".join(sorted(exporters))
    if fmt is None:
        chosen = by_suffix.get(suffix)
        if chosen is None:
            known = ", ".join(sorted(by_suffix))
            raise InputError(out_path, f"unknown inventory format '{out_path.suffix}'; use {known}")
        return chosen
    chosen = exporters.get(fmt.lower())
    if chosen is None:
        raise InputError(out_path, f"unknown inventory format '{fmt}'; use {names}")
    implied = by_suffix.get(suffix)
    if implied is not None and implied.name != chosen.name:
        raise InputError(
            out_path,
            f"--format {chosen.name} does not match the file suffix '{out_path.suffix}' "
            f"(a {implied.name} name); use a {chosen.suffixes[0]} name or drop --format",
        )
    return chosen
