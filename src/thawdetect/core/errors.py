"""Exception hierarchy.

Every error a user can cause is a :class:`ThawdetectError`; the CLI prints ``str(exc)`` on one line
and exits with status 1. Input errors inherit from :class:`ValueError` too (rasterio's habit), so
``except ValueError`` keeps working for library users.
"""

from __future__ import annotations

import os
from pathlib import Path

from thawdetect.core.paths import input_location


class ThawdetectError(Exception):
    """Base class; the CLI prints ``str(exc)`` on one line and exits 1."""


class InputError(ThawdetectError, ValueError):
    """A file given by the user cannot be used.

    The message always starts with the file path: ``"planet.tif: expected 3 bands, found 1"``.

    Args:
        path: the offending file (or a field path such as ``config.yaml: detectors.x``).
        problem: what is wrong and, where possible, what to do.
    """

    def __init__(self, path: str | os.PathLike[str] | None, problem: str) -> None:
        # a URI (s3://, /vsicurl/...) stays a string: Path() would collapse its "//"
        self.path: str | Path | None = None if path is None else input_location(path)
        self.problem = problem
        super().__init__(problem if path is None else f"{path}: {problem}")


class CRSMismatchError(InputError):
    """Two inputs are in different or unusable coordinate reference systems."""


class GridMismatchError(InputError):
    """Raster grids do not overlap or cannot be aligned."""


class MissingBandError(InputError):
    """A raster lacks a band or a dataset the step needs."""


class EmptyInventoryError(InputError):
    """An inventory (vector file) holds no usable feature."""


class ConfigError(ThawdetectError, ValueError):
    """A configuration value is invalid; message: ``FILE: field.path: problem``."""


class PluginError(ThawdetectError):
    """A plugin failed to load or raised while running."""


class MissingDependencyError(ThawdetectError, ImportError):
    """An optional dependency (an extra) is not installed.

    Args:
        package: the import name that failed.
        extra: the thawdetect extra that provides it.
        purpose: what it is needed for.
    """

    def __init__(self, package: str, extra: str, purpose: str = "") -> None:
        what = f" for {purpose}" if purpose else ""
        super().__init__(
            f"{package} is needed{what} but is not installed: pip install 'thawdetect[{extra}]'"
        )
        self.package = package
        self.extra = extra


class ThawdetectWarning(UserWarning):
    """Base class of warnings thawdetect emits."""
