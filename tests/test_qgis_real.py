"""A run in real QGIS: the ledger opens styled, ``thawdetect qgis`` writes a project that loads and
renders, and an outline and a decision edited through PyQGIS come back through
``thawdetect review import``.

PyQGIS runs in Debian's ``/usr/bin/python3`` (``apt-get install python3-qgis``, done by
``scripts/setup.sh``), not in the project's venv, so each check is a subprocess of
``tests/qgis_driver.py`` with ``QT_QPA_PLATFORM=offscreen``. Without PyQGIS these tests skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import shapely

SYSTEM_PYTHON = "/usr/bin/python3"
DRIVER = Path(__file__).with_name("qgis_driver.py")


def _has_pyqgis() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    env.pop("PYTHONPATH", None)
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import qgis.core"], capture_output=True, env=env, check=False
    )
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(
    not _has_pyqgis(),
    reason="PyQGIS is absent: apt-get install python3-qgis (scripts/setup.sh does)",
)


def _qgis(*args: str | Path, tmp: Path) -> dict:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": str(tmp)}
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run(
        [SYSTEM_PYTHON, str(DRIVER), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _thawdetect(*args: str | Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "thawdetect", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The qilian sample's first iteration, waiting for a manual review."""
    run = tmp_path_factory.mktemp("qgis") / "run"
    _thawdetect(
        "run", "--detector", "insar_sbas", "--region", "qilian", "--reviewer", "manual",
        "--output-dir", run,
    )  # fmt: skip
    return run


STYLED = {
    "candidates": ("categorizedSymbol", "status"),
    "inventory": ("categorizedSymbol", "probability"),
    "positives": ("singleSymbol", "#1a9850"),
    "negatives": ("singleSymbol", "#4575b4"),
    "proposals": ("singleSymbol", "#00bcd4"),
}


def test_ledger_opens_styled_in_qgis(run_dir: Path, tmp_path: Path) -> None:
    out = _qgis("layers", run_dir / "ledger.gpkg", *STYLED, tmp=tmp_path)
    by_name = {lyr["name"]: lyr for lyr in out["layers"]}
    for name, (renderer, key) in STYLED.items():
        lyr = by_name[name]
        assert lyr["valid"], name
        if lyr["features"] == 0:
            continue  # an empty GEOMETRY layer has no geometry type in QGIS: nothing to draw
        assert lyr["renderer"] == renderer, name
        if renderer == "categorizedSymbol":
            assert lyr["attr"] == key
            assert lyr["labels"], f"{name} has no id/area labels"
        else:
            assert lyr["colour"] == key, f"{name} drawn in a default colour"
    assert set(by_name["candidates"]["categories"]) >= {"pending", "confirmed", "rejected"}
    assert by_name["candidates"]["features"] > 0 and by_name["inventory"]["features"] > 0


def test_project_loads_renders_and_is_ordered(run_dir: Path, tmp_path: Path) -> None:
    project = tmp_path / "out" / "review.qgz"
    done = _thawdetect("qgis", run_dir, "--output", project)
    assert str(project) in done.stdout
    with zipfile.ZipFile(project) as z:
        assert z.namelist() == ["review.qgs"]
    png = tmp_path / "run.png"
    out = _qgis("project", project, png, tmp=tmp_path)
    assert out["read"] and out["crs"] == "EPSG:32647"
    assert out["errors"] == []
    layers = {lyr["name"]: lyr for lyr in out["layers"]}
    assert all(lyr["valid"] for lyr in layers.values()), [
        n for n, lyr in layers.items() if not lyr["valid"]
    ]
    order = out["order"]
    rasters = ["LOS rate (mm/yr)", "seasonal amplitude A (peak-to-peak) (mm)", "DEM hillshade"]
    for name in ["validation points", "candidates", "inventory", *rasters]:
        assert name in order, (name, order)
    # vectors over rasters, the hillshade at the bottom
    assert order.index("candidates") < order.index("LOS rate (mm/yr)") < order.index(rasters[-1])
    assert order[-1] == "DEM hillshade"
    assert layers["validation points"]["renderer"] == "RuleRenderer"
    assert layers["LOS rate (mm/yr)"]["renderer"] == "singlebandpseudocolor"
    assert layers["DEM hillshade"]["renderer"] == "hillshade"
    for name in ("candidates", "inventory", "positives", "negatives", "proposals"):
        assert layers[name]["renderer"] in ("categorizedSymbol", "singleSymbol"), name
    assert {"candidates", "LOS rate (mm/yr)", "DEM hillshade"} <= set(out["visible"])
    assert png.stat().st_size > 20_000
    assert out["distinct_colours"] > 50  # a map, not a blank page
    keep = os.environ.get("THAWDETECT_QGIS_PNG")
    if keep:
        shutil.copy(png, keep)


def test_qgis_edit_round_trips(run_dir: Path, tmp_path: Path) -> None:
    from thawdetect.core.review.decisions import history, review_queue

    edit = tmp_path / "edit.gpkg"
    _thawdetect("review", "export", run_dir, edit)
    out = _qgis("layers", edit, "review", tmp=tmp_path)
    review = out["layers"][0]
    assert review["valid"] and review["renderer"] == "categorizedSymbol"
    assert review["widgets"]["decision"] == "ValueMap"
    assert review["widgets"]["probability"] == "ValueMap"
    assert review["widgets"]["part_of"] == "ValueMap"
    assert set(review["decision_values"]) >= {"confirmed", "rejected", "unsure", "part_of"}
    cid = str(review_queue(run_dir)["candidate_id"].iloc[0])
    before = len(history(run_dir))
    edited = _qgis("edit", edit, cid, tmp=tmp_path)
    assert edited["committed"], edited["errors"]
    _thawdetect("review", "import", run_dir, edit, "--reviewer", "qgis-user")
    rows = history(run_dir)
    assert len(rows) == before + 1
    row = rows.iloc[-1]
    assert (row["candidate_id"], row["decision"], row["probability"]) == (cid, "confirmed", "high")
    assert row["note"] == "edited in QGIS" and row["reviewer"] == "qgis-user"
    outline = shapely.from_wkt(row["geometry_wkt"])
    assert outline.area == pytest.approx(edited["area"], rel=1e-6)
    # importing the same file again changes nothing
    _thawdetect("review", "import", run_dir, edit, "--reviewer", "qgis-user")
    assert len(history(run_dir)) == before + 1
