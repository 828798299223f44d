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


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``: small real third-party data (provenance in its README)."""
    if not SHARED_DATA.exists():
        pytest.fail(f"{SHARED_DATA} is missing: the shared data folder must sit beside the repo")
    return SHARED_DATA


@pytest.fixture(scope="session")
def example_plugin_installed() -> str:
    """Install the example third-party plugin with pip (as a user would) and return its name."""
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
            str(EXAMPLE_PLUGIN),
        ],
        check=True,
        capture_output=True,
    )
    return "dndvi"
