"""Shared fixtures.

Real data comes from ``../shared/data`` beside the repository (see its README for provenance and
licences); samples are built once per test session into a temporary cache.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
EXAMPLE_PLUGIN = REPO / "examples" / "thawdetect-dndvi"


@pytest.fixture(scope="session", autouse=True)
def _sample_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build bundled samples into a per-session cache, never the user's home."""
    path = tmp_path_factory.mktemp("thawdetect-cache")
    old = os.environ.get("THAWDETECT_CACHE_DIR")
    os.environ["THAWDETECT_CACHE_DIR"] = str(path)
    os.environ.setdefault("MPLBACKEND", "Agg")
    yield path
    if old is None:
        os.environ.pop("THAWDETECT_CACHE_DIR", None)
    else:
        os.environ["THAWDETECT_CACHE_DIR"] = old


def pytest_sessionstart(session: pytest.Session) -> None:
    """Fail (never skip) when the real test data is missing: tests on it are not optional."""
    if not SHARED_DATA.is_dir():
        raise pytest.UsageError(
            f"{SHARED_DATA} is missing: the shared data folder (real third-party data, see its "
            "README) must sit beside the repository"
        )


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``: small real third-party data (provenance in its README)."""
    return SHARED_DATA


@pytest.fixture(scope="session")
def example_plugin_installed(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Install the example third-party plugin with pip (as a user would) and return its name.

    It goes into a temporary ``--target`` directory put on ``sys.path`` for the session (entry
    points are found there), built from a copy of the sources: neither ``.venv`` nor the
    repository is touched (no ``build/`` left behind).
    """
    import importlib
    import shutil

    root = tmp_path_factory.mktemp("example-plugin")
    src = root / "src"
    shutil.copytree(EXAMPLE_PLUGIN, src, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    target = root / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    sys.path.insert(0, str(target))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(target), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    importlib.invalidate_caches()
    return "dndvi"
