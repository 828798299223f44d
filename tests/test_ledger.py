"""The run ledger: in-place SQLite transactions on a valid GeoPackage, killed at random moments."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from shapely.geometry import box

from thawdetect.core.errors import InputError
from thawdetect.core.run import ledger as ledger_mod
from thawdetect.core.run.ledger import UNINDEXED_LAYERS, Ledger

CRS = "EPSG:32646"
SRC = str(Path(__file__).resolve().parents[1] / "src")


def _frame(n: int, start: int = 0) -> gpd.GeoDataFrame:
    i = np.arange(start, start + n)
    return gpd.GeoDataFrame(
        {
            "candidate_id": [f"c{j:05d}" for j in i],
            "iteration": (i % 3 + 1).astype("int64"),
            "score": i / 100.0,
            "status": "pending",
            "probability": [None] * n,
            "flag": i % 2 == 0,
            "maybe_ha": np.where(i % 4 == 0, np.nan, i * 0.5),
        },
        geometry=[box(1000.0 * j, 500.0, 1000.0 * j + 40, 540.0) for j in i],
        crs=CRS,
    )


def _pyogrio(path: Path, layer: str, **kw) -> gpd.GeoDataFrame:
    return gpd.read_file(path, layer=layer, engine="pyogrio", **kw)


def _assert_valid_gpkg(path: Path, layer: str) -> None:
    """What QGIS relies on: R-tree rows = non-empty geometries with their bounds (on the layers
    that have one), extent, count; a bbox query through GDAL finds the feature."""
    gdf = _pyogrio(path, layer)
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        fids = [r[0] for r in con.execute(f'SELECT fid FROM "{layer}" ORDER BY fid')]
        ext = con.execute(
            "SELECT min_x, min_y, max_x, max_y FROM gpkg_contents WHERE table_name = ?", (layer,)
        ).fetchone()
        count = con.execute(
            "SELECT feature_count FROM gpkg_ogr_contents WHERE table_name = ?", (layer,)
        ).fetchone()[0]
        has_ext = con.execute(
            "SELECT count(*) FROM sqlite_master WHERE name = 'gpkg_extensions'"
        ).fetchone()[0]
        ext_name = (
            con.execute(
                "SELECT extension_name FROM gpkg_extensions WHERE table_name = ?", (layer,)
            ).fetchone()
            if has_ext
            else None
        )
        has_tree = con.execute(
            "SELECT count(*) FROM sqlite_master WHERE name = ?", (f"rtree_{layer}_geom",)
        ).fetchone()[0]
        tree = (
            con.execute(
                f'SELECT id, minx, maxx, miny, maxy FROM "rtree_{layer}_geom" ORDER BY id'
            ).fetchall()
            if has_tree
            else None
        )
    indexed = layer not in UNINDEXED_LAYERS
    assert bool(has_tree) == indexed
    assert (ext_name is not None and ext_name[0] == "gpkg_rtree_index") == indexed
    assert count == len(gdf) == len(fids)
    if tree is not None:
        assert [t[0] for t in tree] == fids  # every feature indexed, nothing stale
        b = shapely.bounds(gdf.geometry.to_numpy())
        got = np.array([t[1:] for t in tree])
        # R-tree stores float32 boxes rounded outwards
        assert np.all(got[:, 0] <= b[:, 0]) and np.all(got[:, 1] >= b[:, 2])
        assert np.allclose(got, b[:, [0, 2, 1, 3]], atol=1e-2)
    tb = gdf.total_bounds
    assert ext[0] <= tb[0] and ext[1] <= tb[1] and ext[2] >= tb[2] and ext[3] >= tb[3]
    # a bbox query (through the R-tree where there is one) in GDAL
    x0, y0, x1, y1 = gdf.geometry.iloc[-1].bounds
    hit = _pyogrio(path, layer, bbox=(x0 + 1, y0 + 1, x1 - 1, y1 - 1))
    assert len(hit) == 1 and hit.geometry.iloc[0].equals(gdf.geometry.iloc[-1])


class TestGeoPackage:
    def test_reads_match_gdal(self, tmp_path):
        ledger = Ledger(tmp_path, crs=CRS)
        with ledger.transaction() as t:
            t.append("candidates", _frame(100))  # bulk path: R-tree rows written directly
            t.append("decisions", pd.DataFrame({"candidate_id": ["c00001"], "iteration": [1]}))
        with ledger.transaction() as t:
            t.append("candidates", _frame(5, start=100))  # per-row path: the triggers
        ours = ledger.read("candidates")
        gdal = _pyogrio(ledger.path, "candidates")
        for col in ("evidence_json", "series_json", "probability", "note"):
            if col in gdal:
                gdal[col] = gdal[col].astype(object).where(gdal[col].notna(), None)
        pd.testing.assert_frame_equal(pd.DataFrame(ours), pd.DataFrame(gdal))
        assert ours.crs == gdal.crs == CRS
        table = pyogrio.read_dataframe(ledger.path, layer="decisions", read_geometry=False)
        pd.testing.assert_frame_equal(ledger.read("decisions")[table.columns], table)
        _assert_valid_gpkg(ledger.path, "candidates")

    def test_append_update_delete_in_place(self, tmp_path):
        ledger = Ledger(tmp_path, crs=CRS)
        with ledger.transaction() as t:
            t.append("candidates", _frame(20))
        inode = ledger.path.stat().st_ino
        with ledger.transaction() as t:
            t.append("candidates", _frame(10, start=20))
            t.delete("candidates", {"iteration": 2})
            n = t.update(
                "candidates",
                "candidate_id",
                pd.DataFrame({"candidate_id": ["c00000", "c00003"], "status": "confirmed"}),
            )
            assert n == 2
            assert t.count("candidates", {"status": "confirmed"}) == 2
            assert ledger.count("candidates", {"status": "confirmed"}) == 0  # not committed yet
        assert ledger.path.stat().st_ino == inode  # the file was changed, not replaced
        c = ledger.read("candidates")
        assert len(c) == 30 - 10 and not (c["iteration"] == 2).any()
        assert c.loc[c["status"] == "confirmed", "candidate_id"].tolist() == ["c00000", "c00003"]
        assert c["candidate_id"].tolist() == sorted(c["candidate_id"])  # fid order kept
        part = ledger.read("candidates", columns=["score"], where={"iteration": [1, 3]})
        assert list(part.columns) == ["score", "geometry"] and len(part) == 20
        _assert_valid_gpkg(ledger.path, "candidates")

    def test_new_columns_and_widening(self, tmp_path):
        ledger = Ledger(tmp_path, crs=CRS)
        with ledger.transaction() as t:
            t.append("inventory", _frame(3))
        more = _frame(2, start=3)
        more["iteration"] = [1.5, np.nan]  # an integer column receives fractions
        more["score"] = ["high", None]  # a number column receives text
        more["toy__mean"] = [0.25, 0.5]  # a column that did not exist
        with ledger.transaction() as t:
            t.append("inventory", more)
        inv = ledger.read("inventory")
        assert inv["iteration"].tolist()[:4] == [1.0, 2.0, 3.0, 1.5] and np.isnan(
            inv["iteration"][4]
        )
        assert inv["score"].tolist() == ["0.0", "0.01", "0.02", "high", None]
        assert inv["toy__mean"].tolist()[3:] == [0.25, 0.5] and inv["toy__mean"][:3].isna().all()
        _assert_valid_gpkg(ledger.path, "inventory")

    def test_write_replaces_a_layer(self, tmp_path):
        ledger = Ledger(tmp_path, crs=CRS)
        with ledger.transaction() as t:
            t.write("positives", _frame(5))
            t.write("positives", _frame(2, start=7)[["geometry"]].assign(source="x"))
        pos = ledger.read("positives")
        assert len(pos) == 2 and list(pos.columns) == ["source", "geometry"]
        _assert_valid_gpkg(ledger.path, "positives")  # a working layer: no R-tree

    def test_older_ledgers_keep_their_rtree_on_working_layers(self, tmp_path, monkeypatch):
        """A ledger written before the working layers went unindexed keeps a valid R-tree."""
        ledger = Ledger(tmp_path, crs=CRS)
        monkeypatch.setattr(ledger_mod, "UNINDEXED_LAYERS", frozenset())
        with ledger.transaction() as t:
            t.append("positives", _frame(100))
        monkeypatch.undo()
        with ledger.transaction() as t:
            t.append("positives", _frame(100, start=100))  # bulk path
            t.append("positives", _frame(3, start=200))  # per-row path: the triggers
            t.delete("positives", {"iteration": 1})
        with sqlite3.connect(ledger.path) as con:
            fids = [r[0] for r in con.execute('SELECT fid FROM "positives" ORDER BY fid')]
            tree = [r[0] for r in con.execute('SELECT id FROM "rtree_positives_geom" ORDER BY id')]
        assert tree == fids and len(fids) == 203 - 68  # iteration 1 rows deleted

    def test_record_decisions_updates_status(self, tmp_path):
        ledger = Ledger(tmp_path, crs=CRS)
        with ledger.transaction() as t:
            t.append("candidates", _frame(6))
        with ledger.transaction() as t:
            t.record_decisions(
                pd.DataFrame(
                    {
                        "candidate_id": ["c00001", "c00002", "c00001"],
                        "decision": ["rejected", "confirmed", "confirmed"],
                        "probability": [None, "High", "low"],
                    }
                )
            )
        c = ledger.read("candidates").set_index("candidate_id")
        assert c.loc["c00001", "status"] == "confirmed" and c.loc["c00001", "probability"] == "low"
        assert c.loc["c00002", "probability"] == "high"
        assert c.loc["c00000", "status"] == "pending"
        d = ledger.read("decisions")
        assert d["iteration"].tolist() == [2, 3, 2] and len(d) == 3
        with (
            pytest.raises(InputError, match="unknown candidate ids: nope"),
            ledger.transaction() as t,
        ):
            t.record_decisions(pd.DataFrame({"candidate_id": ["nope"], "decision": ["confirmed"]}))
        assert len(ledger.read("decisions")) == 3

    def test_failed_first_transaction_leaves_nothing(self, tmp_path):
        ledger = Ledger(tmp_path / "run", crs=CRS)
        with pytest.raises(RuntimeError), ledger.transaction() as t:
            t.append("candidates", _frame(2))
            raise RuntimeError("boom")
        assert not ledger.exists()
        assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".ledger.lock"]

    def test_garbage_is_one_clear_error(self, tmp_path):
        ledger = Ledger(tmp_path, crs=CRS)
        with ledger.transaction() as t:
            t.append("candidates", _frame(2))
        data = ledger.path.read_bytes()
        ledger.path.write_bytes(data[:100] + b"\x00garbage" * 5000)
        with pytest.raises(InputError, match=r"ledger\.gpkg: run ledger is corrupt"):
            Ledger(tmp_path).read("candidates")
        ledger.path.write_text("not a database at all")
        with (
            pytest.raises(InputError, match="run ledger is corrupt"),
            Ledger(tmp_path, crs=CRS).transaction() as t,
        ):
            t.mark_stage(1, "x")


_WORKER = """
import sys
sys.path.insert(0, {src!r})
import pandas as pd
from thawdetect.core.run.ledger import Ledger
from shapely.geometry import box
import geopandas as gpd
ledger = Ledger({run!r}, crs="EPSG:32646")
steps = {steps}
print("ready", flush=True)
while True:
    done = ledger.count("stages")
    if done >= steps:
        break
    with ledger.transaction() as t:
        if done == 0:
            t.append("candidates", gpd.GeoDataFrame(
                {{"candidate_id": [f"c{{i:03d}}" for i in range(steps)], "iteration": 1,
                  "status": "pending"}},
                geometry=[box(i * 100.0, 0, i * 100.0 + 40, 40) for i in range(steps)],
                crs="EPSG:32646"))
        cid = f"c{{done:03d}}"
        t.record_decisions(pd.DataFrame({{"candidate_id": [cid], "decision": ["confirmed"],
                                          "note": [f"step {{done}}"], "timestamp": ["t"]}}))
        t.append("inventory", gpd.GeoDataFrame(
            {{"inventory_id": [f"rts-{{done:03d}}"], "iteration": [1]}},
            geometry=[box(done * 100.0, 0, done * 100.0 + 40, 40)], crs="EPSG:32646"))
        t.mark_stage(1, f"step{{done}}")
print("finished")
"""


def _worker(tmp_path: Path, run: Path, steps: int) -> Path:
    script = tmp_path / f"worker_{run.name}.py"
    script.write_text(textwrap.dedent(_WORKER.format(src=SRC, run=str(run), steps=steps)))
    return script


class TestKill:
    @pytest.mark.parametrize(
        ("steps", "trials"), [(30, 4), pytest.param(200, 40, marks=pytest.mark.slow)]
    )
    def test_kill_at_random_moments(self, tmp_path, steps, trials):
        """kill -9 at random moments: the final ledger is the unkilled one, step by step."""
        ref = tmp_path / "ref"
        done = subprocess.run(
            [sys.executable, str(_worker(tmp_path, ref, steps))], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        run = tmp_path / "run"
        script = _worker(tmp_path, run, steps)
        rng = np.random.default_rng(13)
        kills = mid_write = 0
        for _ in range(trials * 6):
            if kills >= trials and mid_write:  # and at least one kill inside a transaction
                break
            proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE)
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == b"ready"  # imports done, writing starts
            time.sleep(float(rng.uniform(0.0, 0.3)))  # a random moment among the commits
            if proc.poll() is not None:
                # it finished before the kill (a fast machine, or little work left after a
                # resume): start the run over, so that every trial has commits to interrupt
                proc.wait()
                shutil.rmtree(run)
                continue
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
            mid_write += any(run.glob("*journal")) or any(run.glob(".ledger.*.tmp.gpkg"))
            ledger = Ledger(run)  # opening cleans up after the killed process
            leftovers = sorted(p.name for p in run.iterdir() if p.name != ".ledger.lock")
            assert leftovers in ([], ["ledger.gpkg"]), leftovers
            if ledger.exists():
                assert ledger.integrity_check()
                stages = ledger.read("stages")
                decisions = ledger.read("decisions")
                # every committed step has exactly its decision and inventory row, nothing more
                assert len(decisions) == len(stages) == ledger.count("inventory")
                assert decisions["note"].tolist() == [f"step {i}" for i in range(len(stages))]
        assert kills >= min(3, trials)
        # the point of the test: at least one kill landed inside a transaction (a journal or a
        # temporary ledger was left behind) and the ledger still opened sound
        assert mid_write >= 1, f"{kills} kills, none inside a transaction"
        print(f"{kills} kills, {mid_write} inside a transaction")
        final = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
        assert final.returncode == 0, final.stderr
        a, b = Ledger(ref), Ledger(run)
        for layer in ("candidates", "inventory"):
            x, y = a.read(layer), b.read(layer)
            pd.testing.assert_frame_equal(
                pd.DataFrame(x.drop(columns="geometry")), pd.DataFrame(y.drop(columns="geometry"))
            )
            assert x.geometry.geom_equals(y.geometry).all()
        da, db = a.read("decisions"), b.read("decisions")
        assert da["candidate_id"].tolist() == db["candidate_id"].tolist()
        assert not db.duplicated("candidate_id").any() and len(db) == steps
        _assert_valid_gpkg(b.path, "inventory")


def test_core_imports_without_fcntl(tmp_path):
    """Windows has no fcntl: core must import and lock without it."""
    code = textwrap.dedent(f"""
        import sys
        sys.modules["fcntl"] = None  # import fcntl now raises ImportError
        sys.path.insert(0, {SRC!r})
        import thawdetect.core.run.ledger, thawdetect.core.run.samples
        import thawdetect.core.run.engine, thawdetect.core.review.decisions
        from thawdetect.core.run.ledger import Ledger
        with Ledger({str(tmp_path)!r}, crs="EPSG:32646").transaction() as t:
            t.mark_stage(1, "windows")
        assert Ledger({str(tmp_path)!r}).stage_done(1, "windows")
        assert "fcntl" not in [m for m, v in sys.modules.items() if v is not None]
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")
