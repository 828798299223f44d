"""The landed code a benchmark measures against, in the same run: ``git archive`` of a commit's
``src`` into a folder (shared by bench_evidence, bench_insar_iteration, bench_optical_memory)."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def commit_before(*log_args: str) -> str:
    """The parent of the oldest commit ``git log <log_args>`` lists (``HEAD`` when none), e.g.
    ``commit_before("--diff-filter=A", "--", path)``: the commit before ``path`` was added."""
    found = subprocess.run(
        ["git", "log", "--format=%H", *log_args],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return f"{found[-1]}^" if found else "HEAD"


def landed_src(ref: str, into: Path) -> tuple[Path, str]:
    """``ref``'s ``src`` extracted into ``into``; returns ``(into / "src", short hash)``."""
    sha = subprocess.run(
        ["git", "rev-parse", "--short", ref], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    tar = subprocess.run(["git", "archive", ref, "src"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=tar.stdout, check=True)
    return into / "src", sha
