"""The README's test command from a plain clone (issue 24): nothing beside the repository, so no
``../shared/data``. The real-data tests must be skipped with one summary line saying how to get
the data and everything else must pass; with ``THAWDETECT_REQUIRE_TEST_DATA`` (CI, ``.ci/run``)
the missing data is an error instead.

A real ``git clone`` of this repository's HEAD into an empty temporary folder runs a few test
files that hold both kinds of test (the whole suite takes minutes); its own ``src`` is imported.
What it checks is the committed tree: commit a change to ``tests/conftest.py`` before relying on
this test for it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Test files with real-data tests and plain ones, quick (~10 s together).
FILES = ["tests/test_accuracy.py", "tests/test_terrain_stats.py"]


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: no plain clone to make")
    dst = tmp_path_factory.mktemp("plain") / "thawdetect"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(dst)], check=True,
                   capture_output=True)  # fmt: skip
    assert not (dst.parent / "shared").exists()
    return dst


def _env(clone: Path, **env: str) -> dict[str, str]:
    drop = ("PYTHONPATH", "PYTEST_ADDOPTS")
    base = {
        k: v for k, v in os.environ.items() if not k.startswith("THAWDETECT_") and k not in drop
    }
    return {**base, "PYTHONPATH": str(clone / "src"), **env}


def _pytest(clone: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *FILES],
        cwd=clone, env=_env(clone, **env),
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip


def test_plain_clone_skips_real_data_tests_with_one_summary_line(clone: Path) -> None:
    done = _pytest(clone)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-2000:]
    missing = clone.parent / "shared" / "data"
    lines = [ln for ln in out.splitlines() if "real-data tests skipped" in ln]
    assert len(lines) == 1, out[-3000:]
    m = re.match(r"(\d+) real-data tests skipped: (.+) is missing; put the shared data", lines[0])
    assert m is not None and int(m.group(1)) > 0, lines[0]
    assert Path(m.group(2)) == missing and "THAWDETECT_TEST_DATA" in lines[0]
    result = out.strip().splitlines()[-1]
    assert re.search(r"\d+ passed, \d+ skipped", result), result
    assert "failed" not in result and "error" not in result, result
    # the clone's own code ran, not this checkout's (the venv's editable install)
    where = subprocess.run(
        [sys.executable, "-c", "import thawdetect; print(thawdetect.__file__)"],
        cwd=clone, env=_env(clone), capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert Path(where.stdout.strip()).is_relative_to(clone / "src")


def test_plain_clone_with_data_required_fails_at_once(clone: Path) -> None:
    done = _pytest(clone, THAWDETECT_REQUIRE_TEST_DATA="1")
    assert done.returncode != 0
    text = done.stdout + done.stderr
    assert "is missing (THAWDETECT_REQUIRE_TEST_DATA is set)" in text, text[-2000:]
    assert " passed" not in text
