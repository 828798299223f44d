"""Shared fixtures.

Real data comes from ``../shared/data`` beside the repository (see its README for provenance and
licences); samples are built once per test session into a temporary cache.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
#: The real test data: ``$THAWDETECT_TEST_DATA``, else ``../shared/data`` beside the repository.
SHARED_DATA = Path(os.environ.get("THAWDETECT_TEST_DATA") or REPO.parent / "shared" / "data")
#: Set (CI does) to fail instead of skipping the real-data tests when the data is missing.
REQUIRE_DATA_ENV = "THAWDETECT_REQUIRE_TEST_DATA"
_HOW_TO_GET_DATA = (
    "put the shared data folder (real third-party data, provenance and licences in its README) "
    "at ../shared/data beside the repository, or point THAWDETECT_TEST_DATA at a copy"
)
EXAMPLE_PLUGIN = REPO / "examples" / "thawdetect-dndvi"
#: Run by Debian's /usr/bin/python3 (PyQGIS) from tests/test_qgis_real.py; not a test module.
collect_ignore = ["qgis_driver.py"]


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
    """Fail when the real test data is missing and CI requires it (``$REQUIRE_DATA_ENV``);
    otherwise the tests that read it are skipped (see :func:`pytest_collection_modifyitems`)."""
    if not SHARED_DATA.is_dir() and os.environ.get(REQUIRE_DATA_ENV):
        raise pytest.UsageError(f"{SHARED_DATA} is missing ({REQUIRE_DATA_ENV} is set): "
                                f"{_HOW_TO_GET_DATA}")  # fmt: skip


def _global_names(code: Any) -> set[str]:
    """Global names a function's code (and its nested lambdas/comprehensions) refers to."""
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= _global_names(const)
    return names


def _under_data(value: Any) -> bool:
    return isinstance(value, Path) and (value == SHARED_DATA or SHARED_DATA in value.parents)


def _uses_real_data(item: pytest.Item) -> bool:
    """Whether a test reads ../shared/data: the ``shared_data`` fixture, a parameter under it, or
    a module-level path under it named by the test or by one of its module's fixtures."""
    if "shared_data" in getattr(item, "fixturenames", ()):
        return True
    params = getattr(getattr(item, "callspec", None), "params", {})
    if any(_under_data(v) for v in params.values()):
        return True
    module = getattr(item, "module", None)
    func = getattr(item, "function", None)
    if module is None or func is None:
        return False
    data_names = {n for n, v in vars(module).items() if _under_data(v)} | {"SHARED_DATA"}
    todo = [func]
    info = getattr(item, "_fixtureinfo", None)
    for name in getattr(item, "fixturenames", ()):
        for fixdef in info.name2fixturedefs.get(name, ()) if info is not None else ():
            fn = getattr(fixdef, "func", None)
            if fn is not None and getattr(fn, "__module__", None) == module.__name__:
                todo.append(fn)
    seen: set[Any] = set()
    while todo:  # the test, its module's fixtures, and the module's helpers they call
        fn = todo.pop()
        if fn in seen or not hasattr(fn, "__code__"):
            continue
        seen.add(fn)
        names = _global_names(fn.__code__)
        if names & data_names:
            return True
        for n in names:
            helper = vars(module).get(n)
            if callable(helper) and getattr(helper, "__module__", None) == module.__name__:
                todo.append(helper)
    return False


_SKIPPED_FOR_DATA: list[str] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without the real test data, skip the tests that read it (with the reason)."""
    if SHARED_DATA.is_dir():
        return
    mark = pytest.mark.skip(reason=f"real test data missing at {SHARED_DATA}")
    for item in items:
        if _uses_real_data(item):
            item.add_marker(mark)
            _SKIPPED_FOR_DATA.append(item.nodeid)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line saying how many real-data tests were skipped and how to get the data."""
    if _SKIPPED_FOR_DATA:
        terminalreporter.write_line(
            f"{len(_SKIPPED_FOR_DATA)} real-data tests skipped: {SHARED_DATA} is missing; "
            f"{_HOW_TO_GET_DATA}",
            yellow=True,
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


def _fail_missing_extra(report: Any) -> None:
    """With ``$REQUIRE_DATA_ENV`` (CI), turn a skip that ``pytest.importorskip`` made (a missing
    optional package) into a failure: the environment the README sets up installs every extra,
    so a skip there hides a broken install."""
    if not report.skipped or not isinstance(report.longrepr, tuple):
        return
    reason = str(report.longrepr[2])
    if "could not import" in reason and os.environ.get(REQUIRE_DATA_ENV):
        report.outcome = "failed"
        report.longrepr = f"{reason} ({REQUIRE_DATA_ENV} is set: every extra must be installed)"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    """A test skipped for a missing extra fails under CI (:func:`_fail_missing_extra`)."""
    outcome = yield
    _fail_missing_extra(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: Any) -> Any:
    """The same for a whole module skipped by a module-level ``importorskip``."""
    outcome = yield
    _fail_missing_extra(outcome.get_result())
