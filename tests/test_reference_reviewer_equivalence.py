"""The fast reference reviewer decides exactly as the one before issue 13's speed-up.

``legacy_reference_reviewer`` is the reviewer of commit f58208a, verbatim; both run on random
scenes (overlapping, nested, identical, touching, multi-part, point, line and empty references;
tolerances, min_overlap up to and beyond 1, an inventory so far, geographic CRSs) and every
output column must be identical, byte for byte.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely import affinity
from shapely.geometry import box

from thawdetect.plugins.reference_reviewer import plugin as reviewer

sys.path.insert(0, str(Path(__file__).parent))
import legacy_reference_reviewer as legacy

UTM = "EPSG:32646"
ORIGIN = np.array([500_000.0, 3_900_000.0])


def _blob(rng: np.random.Generator, centre: np.ndarray, radius: float) -> Any:
    """An irregular polygon: a buffered point, stretched and rotated."""
    g = shapely.Point(*centre).buffer(radius, quad_segs=int(rng.integers(1, 12)))
    g = affinity.scale(g, xfact=rng.uniform(0.4, 1.8), origin="centroid")
    return affinity.rotate(g, rng.uniform(0, 180), origin="centroid")


def _scene(seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    span = float(rng.choice([150.0, 500.0, 2000.0]))

    def centre() -> np.ndarray:
        return ORIGIN + rng.uniform(0, span, 2)

    refs: list[Any] = []
    for _ in range(int(rng.integers(0, 40))):
        kind = rng.choice(["blob", "box", "multi", "point", "line"], p=[0.5, 0.2, 0.1, 0.15, 0.05])
        c = centre()
        if kind == "blob":
            refs.append(_blob(rng, c, rng.uniform(5, 80)))
        elif kind == "box":
            w, h = rng.uniform(10, 90, 2)
            refs.append(box(c[0], c[1], c[0] + w, c[1] + h))
        elif kind == "multi":
            off = rng.uniform(-150, 150, 2)
            refs.append(
                shapely.MultiPolygon([_blob(rng, c, 20), _blob(rng, c + off, 15)]).buffer(0)
            )
        elif kind == "point":
            refs.append(shapely.Point(*c))
        else:
            refs.append(shapely.LineString([c, c + rng.uniform(-50, 50, 2)]))
    polys = [g for g in refs if g.geom_type in ("Polygon", "MultiPolygon")]
    cands: list[Any] = []
    for _ in range(int(rng.integers(1, 50))):
        kind = rng.choice(
            ["new", "same", "inside", "around", "shifted", "touching", "tiny"],
            p=[0.3, 0.15, 0.15, 0.1, 0.15, 0.1, 0.05],
        )
        if kind == "new" or not polys:
            cands.append(_blob(rng, centre(), rng.uniform(5, 80)))
            continue
        base = polys[int(rng.integers(len(polys)))]
        if kind == "same":
            cands.append(base)
        elif kind == "inside":
            f = rng.uniform(0.2, 0.95)
            cands.append(affinity.scale(base, f, f, origin="centroid").intersection(base))
        elif kind == "around":
            cands.append(base.buffer(rng.uniform(1, 40)))
        elif kind == "shifted":
            d = rng.uniform(-60, 60, 2)
            cands.append(affinity.translate(base, *d))
        elif kind == "touching":
            x0, y0, x1, y1 = base.bounds
            cands.append(box(x1, y0, x1 + rng.uniform(5, 50), y1))
        else:  # a sliver-thin polygon inside the reference feature
            x0, y0, x1, y1 = base.bounds
            cands.append(box(x0, y0, x1, y0 + 1e-4).intersection(base))
    cands = [g if not g.is_empty else _blob(rng, centre(), 10) for g in cands]
    ids: dict[str, Any] = {}
    id_kind = rng.integers(3)
    if id_kind == 0:
        ids["id"] = rng.permutation(len(refs))
    elif id_kind == 1:
        names = [f"s{i}" if rng.random() > 0.2 else None for i in range(len(refs))]
        ids["name"] = names
    ref = gpd.GeoDataFrame(ids, geometry=gpd.GeoSeries(refs, crs=UTM), crs=UTM)
    if len(ref) and rng.random() < 0.15:
        ref.loc[ref.index[0], "geometry"] = None  # a missing geometry is left out
    if rng.random() < 0.2:
        ref = ref.to_crs(4326)
    candidates = gpd.GeoDataFrame(
        {"candidate_id": [f"c{i}" for i in range(len(cands))]},
        geometry=gpd.GeoSeries(cands, crs=UTM),
        crs=UTM,
    )
    if rng.random() < 0.15:
        candidates = candidates.to_crs(4326)  # the working CRS is then an estimated UTM zone
    mapped = None
    mapped_kind = rng.integers(4)
    if mapped_kind and polys:
        pick = rng.choice(len(polys), size=min(len(polys), int(rng.integers(1, 10))), replace=False)
        geoms = [polys[i] for i in pick] + [_blob(rng, centre(), 30)]
        cols = {"inventory_id": [f"rts-{i}" for i in range(len(geoms))]}
        mapped = gpd.GeoDataFrame(cols if mapped_kind < 3 else {}, geometry=geoms, crs=UTM)
    return {
        "candidates": candidates,
        "ref": ref,
        "already_mapped": mapped,
        "tolerance_m": float(rng.choice([0.0, 0.0, 5.0, 25.0])),
        "min_overlap": float(rng.choice([0.1, 0.1, 0.0, 0.5, 0.999, 1.0, 1.2])),
        "outline": str(rng.choice(["reference", "detector"])),
    }


def _both(scene: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    kw = {k: scene[k] for k in ("already_mapped", "tolerance_m", "min_overlap", "outline")}
    old = legacy.reference_decisions(scene["candidates"], scene["ref"], **kw)
    new = reviewer.reference_decisions(scene["candidates"], scene["ref"], **kw)
    return old, new


def _assert_same(old: pd.DataFrame, new: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(old, new, check_exact=True)
    assert old.attrs == new.attrs
    for col in old.columns:  # the same Python types, not only equal values
        assert [type(v) for v in old[col]] == [type(v) for v in new[col]], col


def _sweep(seeds: range) -> Counter[str]:
    seen: Counter[str] = Counter()
    for seed in seeds:
        old, new = _both(_scene(seed))
        _assert_same(old, new)
        seen.update(old["decision"])
    return seen


def test_random_scenes_decide_identically():
    seen = _sweep(range(50))
    # every kind of decision was compared, not only rejections
    assert all(seen[d] >= 20 for d in ("confirmed", "part_of", "unsure", "rejected")), seen


@pytest.mark.slow
def test_many_random_scenes_decide_identically():
    _sweep(range(50, 1050))


def test_nested_and_identical_outlines():
    # covered pairs skip the intersection: candidates inside, around and equal to references
    ref = gpd.GeoDataFrame(
        {"id": ["a", "b", "c", "d"]},
        geometry=[
            box(0, 0, 100, 100),
            shapely.Point(500, 50).buffer(40, quad_segs=5),
            box(1000, 0, 1100, 100),
            box(1040, 40, 1060, 60),  # inside c: a candidate equal to c covers both
        ],
        crs=UTM,
    )
    cands = gpd.GeoDataFrame(
        {"candidate_id": ["eq", "in", "around", "two", "edge", "thin"]},
        geometry=[
            box(0, 0, 100, 100),
            shapely.Point(500, 50).buffer(10),
            box(-50, -50, 150, 20),  # partial: the intersection decides
            box(1000, 0, 1100, 100),
            box(100, 0, 120, 100),  # shares an edge with a: touches, no area
            box(10, 10, 90, 10.000001),
        ],
        crs=UTM,
    )
    for min_overlap in (0.0, 0.1, 0.3, 0.999, 1.0, 2.0):
        for tolerance_m in (0.0, 3.0):
            for mapped in (None, ref.iloc[[2]].rename(columns={"id": "inventory_id"})):
                kw = {"min_overlap": min_overlap, "tolerance_m": tolerance_m}
                old = legacy.reference_decisions(cands, ref, already_mapped=mapped, **kw)
                new = reviewer.reference_decisions(cands, ref, already_mapped=mapped, **kw)
                _assert_same(old, new)
    d = reviewer.reference_decisions(cands, ref)
    expected = ["confirmed", "confirmed", "part_of", "confirmed", "rejected", "part_of"]
    assert d["decision"].tolist() == expected


def test_hook_reads_a_reference_once_and_again_when_it_changes(tmp_path: Path, monkeypatch):
    from thawdetect.core import vector

    reads: list[Any] = []
    real = vector.read_vector

    def counting(*args: Any, **kw: Any) -> gpd.GeoDataFrame:
        reads.append(args[0])
        return real(*args, **kw)

    monkeypatch.setattr(vector, "read_vector", counting)
    # plugins take read_vector from the public plugin API, which keeps the first lookup
    import thawdetect.plugin_api as plugin_api

    monkeypatch.setattr(plugin_api, "read_vector", counting, raising=False)
    path = tmp_path / "truth.gpkg"
    gpd.GeoDataFrame({"id": [1]}, geometry=[box(0, 0, 60, 60)], crs=UTM).to_file(path)
    cands = gpd.GeoDataFrame(
        {"candidate_id": ["a", "b"]}, geometry=[box(0, 0, 50, 50), box(500, 0, 550, 50)], crs=UTM
    )
    ctx = SimpleNamespace(reference_paths=[], inventory=None)
    spec = f"reference:{path}"
    first = reviewer.thawdetect_review_candidates(cands, spec, ctx)
    again = reviewer.thawdetect_review_candidates(cands, f"{spec}?tolerance_m=5", ctx)
    assert first is not None and again is not None
    assert first["decision"].tolist() == again["decision"].tolist() == ["confirmed", "rejected"]
    assert len(reads) == 1
    # a rewritten file (other features) is read again
    gpd.GeoDataFrame(
        {"id": [2, 3]}, geometry=[box(500, 0, 560, 60), box(900, 0, 960, 60)], crs=UTM
    ).to_file(path)
    changed = reviewer.thawdetect_review_candidates(cands, spec, ctx)
    assert changed is not None
    assert changed["decision"].tolist() == ["rejected", "confirmed"]
    assert changed["note"].tolist()[1] == "reference match: id=2"
    assert len(reads) == 2
    # other candidates' CRS: read again, reprojected to it
    geo = reviewer.thawdetect_review_candidates(cands.to_crs(4326), spec, ctx)
    assert geo is not None and geo["decision"].tolist() == ["rejected", "confirmed"]
    assert len(reads) == 3


@pytest.mark.parametrize("seed", [7, 8])
def test_hook_equals_the_function(tmp_path: Path, seed: int):
    scene = _scene(seed)
    ref = scene["ref"]
    ref = ref[ref.geometry.notna()]
    path = tmp_path / "ref.gpkg"
    ref.to_file(path)
    ctx = SimpleNamespace(reference_paths=[path], inventory=scene["already_mapped"])
    spec = f"reference?min_overlap={scene['min_overlap']}&tolerance_m={scene['tolerance_m']}"
    for _ in range(2):  # the second call reuses the read reference
        out = reviewer.thawdetect_review_candidates(scene["candidates"], spec, ctx)
        read = reviewer._read_references([path], scene["candidates"].crs)
        expected = legacy.reference_decisions(
            scene["candidates"],
            read,
            already_mapped=scene["already_mapped"],
            tolerance_m=scene["tolerance_m"],
            min_overlap=scene["min_overlap"],
        )
        assert out is not None
        _assert_same(expected, out)


def _outcome(fn: Any, *args: Any, **kw: Any) -> Any:
    try:
        return fn(*args, **kw)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def test_invalid_and_collection_candidates_as_before():
    # the covered-pair shortcut takes valid (multi)polygons only: the others are intersected
    ref = gpd.GeoDataFrame({"id": [1]}, geometry=[box(0, 0, 100, 100)], crs=UTM)
    bowtie = shapely.Polygon([(10, 10), (90, 90), (90, 10), (10, 90)])
    collection = shapely.GeometryCollection([box(20, 20, 30, 30)])
    for geom in (bowtie, collection):
        cands = gpd.GeoDataFrame({"candidate_id": ["x"]}, geometry=[geom], crs=UTM)
        old = _outcome(legacy.reference_decisions, cands, ref)
        new = _outcome(reviewer.reference_decisions, cands, ref)
        if isinstance(old, str):
            assert new == old  # the same error ("TopologyException: ...")
        else:
            _assert_same(old, new)
