"""Input locations: local paths or GDAL/fsspec URIs, kept apart so that URIs stay strings.

``pathlib.Path`` collapses the double slash of a URI (``Path("s3://b/k")`` is ``s3:/b/k``), so a
remote input must never pass through it. Everything that takes a user's input location uses
:func:`input_location` (or the :data:`InputPath` pydantic type): local files become ``Path``,
GDAL virtual file systems (``/vsizip/``, ``/vsicurl/``, ``/vsis3/`` ...) and URLs
(``s3://``, ``gs://``, ``https://`` ...) stay ``str`` and go to rasterio/pyogrio unchanged.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

__all__ = [
    "InputPath",
    "OutputPath",
    "input_location",
    "is_output_field",
    "is_uri",
    "local_exists",
    "suffix_of",
]

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")


def is_uri(value: str | os.PathLike[str]) -> bool:
    """Whether ``value`` is a GDAL virtual path or a URL rather than a local file.

    Examples:
        >>> is_uri("s3://bucket/key.tif"), is_uri("/vsizip/a.zip/b.shp"), is_uri("a/b.tif")
        (True, True, False)
        >>> is_uri("C:/data/a.tif")  # a Windows drive letter is not a scheme
        False
    """
    if isinstance(value, Path):
        return False
    text = os.fspath(value)
    return text.startswith("/vsi") or bool(_SCHEME.match(text))


def input_location(value: str | os.PathLike[str]) -> str | Path:
    """``value`` as a ``Path`` when local, unchanged (a string) when a URI.

    Examples:
        >>> input_location("s3://bucket/dem.tif")
        's3://bucket/dem.tif'
        >>> input_location("data/dem.tif")
        PosixPath('data/dem.tif')
    """
    if isinstance(value, Path):
        return value
    text = os.fspath(value)
    return text if is_uri(text) else Path(text)


def local_exists(value: str | os.PathLike[str]) -> bool | None:
    """True/False for a local path; None for a URI (existence is up to GDAL to tell)."""
    loc = input_location(value)
    return None if isinstance(loc, str) else loc.exists()


def suffix_of(value: str | os.PathLike[str]) -> str:
    """Lower-case file suffix of a path or URI (query string ignored).

    Examples:
        >>> suffix_of("/vsicurl/http://127.0.0.1:8000/cog.tif?x=1"), suffix_of("a/b.GPKG")
        ('.tif', '.gpkg')
    """
    text = os.fspath(value).split("?", 1)[0]
    name = text.rstrip("/").rsplit("/", 1)[-1]
    return os.path.splitext(name)[1].lower()


def _to_location(value: Any) -> Any:
    if isinstance(value, str | os.PathLike):
        return input_location(value)
    return value


#: A pydantic field type for input files: ``Path`` for local files, ``str`` for URIs.
InputPath = Annotated[
    str | Path,
    BeforeValidator(_to_location),
    PlainSerializer(lambda v: os.fspath(v), return_type=str, when_used="json"),
]


class _Output:
    """Marks a path field as something the detector writes (see :data:`OutputPath`)."""

    def __repr__(self) -> str:
        return "OUTPUT"


_OUTPUT = _Output()

#: A pydantic field type for paths a detector *writes* (a work or cache directory): the run
#: does not require them to exist, as it does for every other path of a config.
OutputPath = Annotated[Path, _OUTPUT]


def _marked_output(annotation: Any) -> bool:
    from typing import get_args

    return any(a is _OUTPUT or _marked_output(a) for a in get_args(annotation))


def is_output_field(info: Any) -> bool:
    """Whether a pydantic field (``Model.model_fields[name]``) is an output path: typed
    :data:`OutputPath` (also inside ``OutputPath | None``), or marked
    ``json_schema_extra={"output": True}``."""
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    return bool(
        extra.get("output")
        or any(m is _OUTPUT for m in info.metadata)
        or _marked_output(info.annotation)
    )
