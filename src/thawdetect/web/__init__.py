"""``thawdetect review serve``: a local web workspace for reviewing a run's candidates.

Needs the ``web`` extra (FastAPI, uvicorn, rio-tiler). The page's scripts and styles (Leaflet,
leaflet-geoman) are vendored under ``static/vendor`` with their licences: the page makes no
request outside the local server. See ``docs/review_web.md``.
"""

from __future__ import annotations

__all__ = ["ServerConfig", "create_app"]


def __getattr__(name: str) -> object:
    # FastAPI is an optional extra: import it only when the app is asked for.
    if name in __all__:
        from thawdetect.web import app

        return getattr(app, name)
    raise AttributeError(name)
