"""insar_sbas's own SYNTHETIC ``qtec`` sample, so that ``--region qtec --detector insar_sbas`` does
not depend on another plugin.

The richer ``qtec`` sample of the optical plugin (PlanetScope-like images *and* a LOS-rate raster
over the same thaw slumps) is what a mixed run uses: plugins register in entry-point order
(``insar_sbas`` before ``optical_dl`` in ``pyproject.toml``), and a later registration of a
sample name replaces an earlier one. When ``optical_dl`` is not installed or disabled
(``THAWDETECT_DISABLE_PLUGINS=optical_dl``), this builder provides the files the insar_sbas part
of the ``qtec`` region reads: ``timeseries.h5``, ``temporalCoherence.h5`` (MintPy layout),
``dem.tif``, ``known_inventory.gpkg``,
``reference_inventory.gpkg``, ``validation_points.gpkg``, and ``insar_rate_mm_yr.tif`` (the fitted
rate as a GeoTIFF).

Scene: :func:`.synthetic.make_scene` at 30 m in EPSG:32646 near Beiluhe (≈ 92.9° E, 34.8° N),
160 × 160 px, elevations ≈ 4400-5300 m, the LOS rate fitted from its MintPy-like time series.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["build_qtec_insar_sample"]

NOTE = (
    "SYNTHETIC sample made by thawdetect (insar_sbas plugin) for --region qtec without the optical "
    "plugin. Not real data: terrain, LOS rates and inventories are simulated."
)


def build_qtec_insar_sample(out_dir: Path) -> None:
    """Write the insar_sbas ``qtec`` sample into ``out_dir`` (deterministic)."""
    import geopandas as gpd

    from thawdetect.plugins.insar_sbas.rasters import write_geotiff
    from thawdetect.plugins.insar_sbas.synthetic import (
        make_scene,
        write_static_layers,
        write_timeseries_h5,
    )
    from thawdetect.plugins.insar_sbas.timefunc import fit_seasonal

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scene = make_scene(
        size_px=160,
        n_epochs=60,
        n_slides=10,
        n_adjacent_pairs=1,
        peak_rate_mm_yr=(25.0, 70.0),
        epsg=32646,
        origin_m=(490000.0, 3857000.0),
        elevation_offset_m=900.0,
        seed=46,
    )
    fit = fit_seasonal(scene.ts_m, scene.dates, unit="m", min_epochs=10)
    rate = fit.rate_mm_yr.astype(np.float32)
    rate[scene.coherence < 0.5] = np.nan  # decorrelated: no rate, as in a masked MintPy product
    tags = {"THAWDETECT_SYNTHETIC": NOTE}
    # the MintPy products the qtec region reads (time series, coherence) with the DEM, and the
    # rate GeoTIFF for users of a velocity map alone
    write_timeseries_h5(out / "timeseries.h5", scene.ts_m, scene.dates, scene.grid, ref_yx=(2, 2))
    write_static_layers(
        out,
        scene.grid,
        scene.dem_m,
        scene.coherence,
        ref_yx=(2, 2),
        dem_tags={**tags, "UNITS": "m"},
    )
    write_geotiff(
        out / "insar_rate_mm_yr.tif",
        rate,
        scene.grid,
        tags={**tags, "UNITS": "mm/yr"},
        description="LOS rate mm/yr, + towards the satellite (SYNTHETIC)",
    )
    slides = scene.slides.assign(kind="FTL")
    slides.to_file(out / "reference_inventory.gpkg", layer="reference_inventory", driver="GPKG")
    # the known inventory spans the terrain of the planted ones (elevation order, both ends), so
    # that ranges derived from it (derive_from_inventory) can reach the others as they widen
    cent = slides.geometry.centroid
    inv = ~scene.grid.transform
    px = [inv * (p.x, p.y) for p in cent]
    elev = [float(scene.dem_m[int(r), int(c)]) for c, r in px]
    order = np.argsort(elev)
    pick = sorted({int(order[i]) for i in np.linspace(0, len(order) - 1, 4).round().astype(int)})
    known = slides.iloc[pick]
    known.to_file(out / "known_inventory.gpkg", layer="known_inventory", driver="GPKG")
    rest = slides.drop(index=known.index)
    points = [
        {
            "label": "landslide",
            "slide_id": r.slide_id,
            "geometry": r.geometry.representative_point(),
        }
        for r in rest.itertuples()
    ] + [
        {"label": "not landslide", "slide_id": r.lookalike_id, "geometry": r.geometry.centroid}
        for r in scene.lookalikes.itertuples()
    ]
    gdf = gpd.GeoDataFrame(points, geometry="geometry", crs=scene.grid.crs)
    gdf.insert(0, "point_id", [f"V{i + 1:02d}" for i in range(len(gdf))])
    gdf["synthetic"] = True
    gdf.to_file(out / "validation_points.gpkg", layer="validation_points", driver="GPKG")
    (out / "README.txt").write_text(
        f"{NOTE}\n\n{len(slides)} planted landslides (reference_inventory.gpkg), "
        f"{len(known)} known (known_inventory.gpkg), {len(gdf)} validation points.\n"
    )
