"""insar_sbas on MintPy products in radar coordinates, geocoded through MintPy's geocode.py.

The radar grid's latitude/longitude (the lookup table, MintPy ``geometryRadar.h5``) is a rotated
and sheared mapping inside the Qilian bbox, like an ascending Sentinel-1 track, so a product read
without geocoding (or geocoded wrongly) puts the planted patch somewhere else.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from pyproj import Transformer

from thawdetect.core.errors import GridMismatchError, InputError, MissingBandError
from thawdetect.core.plugin_api.context import IterationContext
from thawdetect.core.plugin_api.host import PluginHost
from thawdetect.plugins.insar_sbas.config import InsarSbasConfig
from thawdetect.plugins.insar_sbas.geocode import lalo_step_deg, open_lookup

LENGTH, WIDTH = 90, 70  # radar rows (azimuth) x columns (range)
PATCH = (slice(40, 48), slice(28, 36))  # planted fast-moving patch, radar rows/cols
RATE_M_YR = -0.060  # LOS rate of the patch (m/yr, MintPy's unit)
DATES = [f"{2019 + m // 12}{m % 12 + 1:02d}{1 + (m * 7) % 20:02d}" for m in range(0, 36, 1)]

# radar metadata as MintPy writes it for a Sentinel-1 stack (ISCE2 topsStack, 2 x 7 looks)
RADAR_META = {
    "PROCESSOR": "isce",
    "PLATFORM": "Sen",
    "ORBIT_DIRECTION": "ASCENDING",
    "HEADING": "-12.2",
    "WAVELENGTH": "0.05546576",
    "ALOOKS": "2",
    "RLOOKS": "7",
    "AZIMUTH_PIXEL_SIZE": "28.0",
    "RANGE_PIXEL_SIZE": "16.3",
    "STARTING_RANGE": "800000.0",
    "HEIGHT": "693000.0",
    "EARTH_RADIUS": "6371000.0",
    "CENTER_LINE_UTC": "42000.0",
    "LENGTH": str(LENGTH),
    "WIDTH": str(WIDTH),
    "REF_Y": "10",
    "REF_X": "10",
    "REF_DATE": DATES[0],
    "START_DATE": DATES[0],
    "END_DATE": DATES[-1],
}


def lookup_grids() -> tuple[np.ndarray, np.ndarray]:
    """Latitude/longitude of each radar pixel: rotated by ~12° and sheared (ascending track)."""
    r, c = np.mgrid[0:LENGTH, 0:WIDTH].astype(np.float64)
    ang = math.radians(12.0)
    north_m = (LENGTH - 1 - r) * 28.0 * math.cos(ang) + c * 23.0 * math.sin(ang) + 0.08 * c * r
    east_m = c * 23.0 * math.cos(ang) - (LENGTH - 1 - r) * 28.0 * math.sin(ang)
    lat = 37.85 + north_m / 111_195.0
    lon = 100.30 + east_m / (111_195.0 * np.cos(np.radians(lat)))
    return lat.astype(np.float32), lon.astype(np.float32)


def write_h5(path: Path, datasets: dict, meta: dict) -> Path:
    from mintpy.utils import writefile

    writefile.write(datasets, out_file=str(path), metadata=meta, print_msg=False)
    return path


@pytest.fixture(scope="module")
def radar(tmp_path_factory) -> dict[str, Path]:
    """A radar-coordinate MintPy set: velocity, timeseries, temporalCoherence, geometryRadar."""
    out = tmp_path_factory.mktemp("mintpy_radar")
    rng = np.random.default_rng(5)
    lat, lon = lookup_grids()
    r, c = np.mgrid[0:LENGTH, 0:WIDTH].astype(np.float32)
    height = (3700.0 + 2.0 * r + 1.5 * c).astype(np.float32)  # gentle slope, in any Qilian band
    geom = write_h5(
        out / "geometryRadar.h5",
        {
            "latitude": lat,
            "longitude": lon,
            "height": height,
            "incidenceAngle": np.full((LENGTH, WIDTH), 38.0, np.float32),
        },
        {**RADAR_META, "FILE_TYPE": "geometry"},
    )
    vel = rng.normal(0.0, 0.002, (LENGTH, WIDTH)).astype(np.float32)
    vel[PATCH] = RATE_M_YR
    vel[10, 10] = 0.0  # the reference pixel
    velocity = write_h5(
        out / "velocity.h5",
        {"velocity": vel, "velocityStd": np.full_like(vel, 0.001)},
        {**RADAR_META, "FILE_TYPE": "velocity", "UNIT": "m/year", "DATA_TYPE": "float32"},
    )
    coh = np.full((LENGTH, WIDTH), 0.9, np.float32)
    coh[:, :6] = 0.3  # decorrelated near range
    coherence = write_h5(
        out / "temporalCoherence.h5",
        {"temporalCoherence": coh},
        {**RADAR_META, "FILE_TYPE": "temporalCoherence", "UNIT": "1"},
    )
    from thawdetect.plugins.insar_sbas.timefunc import parse_dates

    t = np.array([(d - parse_dates(DATES)[0]).days / 365.25 for d in parse_dates(DATES)])
    ts = rng.normal(0.0, 0.002, (len(DATES), LENGTH, WIDTH)).astype(np.float32)
    ts += (0.004 * np.sin(2 * np.pi * t))[:, None, None].astype(np.float32)
    ts[:, PATCH[0], PATCH[1]] += (RATE_M_YR * t)[:, None, None].astype(np.float32)
    ts[:, 10, 10] = 0.0
    ts[0] = 0.0
    timeseries = write_h5(
        out / "timeseries.h5",
        {
            "timeseries": ts,
            "date": np.array(DATES, dtype=np.bytes_),
            "bperp": np.zeros(len(DATES), np.float32),
        },
        {**RADAR_META, "FILE_TYPE": "timeseries", "UNIT": "m"},
    )
    return {
        "geometry": geom,
        "velocity": velocity,
        "coherence": coherence,
        "timeseries": timeseries,
        "dir": out,
    }


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost()


def planted_lonlat() -> tuple[float, float]:
    lat, lon = lookup_grids()
    return float(lon[PATCH].mean()), float(lat[PATCH].mean())


def propose(host: PluginHost, tmp: Path, iteration: int = 1, **cfg):
    config = InsarSbasConfig.model_validate(cfg)
    ctx = IterationContext.standalone(host.region("qilian"), tmp, host=host, iteration=iteration)
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    return host.detector("insar_sbas")(config).propose(ctx), ctx


def candidate_lonlat(cands) -> tuple[float, float]:
    to_ll = Transformer.from_crs(cands.crs, "EPSG:4326", always_xy=True)
    cen = cands.geometry.iloc[0].centroid
    return to_ll.transform(cen.x, cen.y)


def test_lookup_is_rotated_and_inside_qilian():
    lat, lon = lookup_grids()
    assert 99.6 < lon.min() < lon.max() < 101.1 and 37.4 < lat.min() < lat.max() < 38.4
    # rows are not lines of latitude: reading the radar grid as a geo grid would be wrong
    assert np.ptp(lat[40]) > 5 * 28.0 / 111_195.0


def test_velocity_and_coherence_geocoded_through_mintpy(radar, host, tmp_path):
    cands, ctx = propose(
        host,
        tmp_path,
        velocity_file=radar["velocity"],
        coherence_file=radar["coherence"],
        geometry_file=radar["geometry"],
        lookup_file=radar["geometry"],
        schedule=[{"elevation_m": {"min": 3000, "max": 5000}, "abs_rate_mm_yr": 30}],
        min_pixels=4,
    )
    assert len(cands) == 1
    c = cands.iloc[0]
    assert c["mean_rate_mm_yr"] == pytest.approx(RATE_M_YR * 1000, abs=1e-3)
    assert c["mean_coherence"] == pytest.approx(0.9, abs=1e-6)
    # 8 x 8 radar pixels (28 m x 23 m) ≈ 41,000 m²; on a 30 m grid, nearest neighbour
    assert c["area_m2"] == pytest.approx(64 * 28 * 23, rel=0.25)
    lon, lat = candidate_lonlat(cands)
    lon0, lat0 = planted_lonlat()
    dy_m = (lat - lat0) * 111_195.0
    dx_m = (lon - lon0) * 111_195.0 * math.cos(math.radians(lat0))
    assert math.hypot(dx_m, dy_m) < 45.0  # within 1.5 pixels of 30 m

    # the geo_* files MintPy wrote, their grid and the call, recorded per iteration
    record = json.loads((ctx.work_dir / "thresholds.json").read_text())["geocode"]
    assert set(record) == {"velocity_file", "coherence_file", "geometry_file"}
    vel = record["velocity_file"]
    assert vel["mintpy_call"].startswith("geocode.py ") and "--lalo-step" in vel["mintpy_call"]
    assert vel["step_m"]["lat"] == pytest.approx(30.0) and vel["step_m"]["lon"] == pytest.approx(
        30.0, rel=1e-3
    )
    assert vel["interp_method"] == "nearest"
    geo = Path(vel["mintpy_call"].split(" -o ")[1].split()[0])
    assert geo.name == "geo_velocity.h5" and geo.is_file()
    import h5py

    with h5py.File(geo) as f:
        assert float(f.attrs["Y_STEP"]) == pytest.approx(vel["lat_step_deg"])
        assert f["velocity"].shape == tuple(vel["output_shape"])

    # iteration 2 reuses MintPy's output (cache keyed on path, size, mtime, step)
    mtime = geo.stat().st_mtime_ns
    cands2, _ = propose(
        host,
        tmp_path,
        iteration=2,
        velocity_file=radar["velocity"],
        coherence_file=radar["coherence"],
        geometry_file=radar["geometry"],
        lookup_file=radar["geometry"],
        schedule=[{"abs_rate_mm_yr": 30}],
    )
    assert len(cands2) == 1 and geo.stat().st_mtime_ns == mtime


def test_timeseries_seasonal_fit_on_geocoded_series(radar, host, tmp_path):
    cands, ctx = propose(
        host,
        tmp_path,
        timeseries_file=radar["timeseries"],
        lookup_file=radar["geometry"],
        geocode_step_deg=(0.0003, 0.0004),
        min_valid_epochs=10,
        schedule=[{"abs_rate_mm_yr": 30}],
    )
    assert len(cands) == 1
    c = cands.iloc[0]
    assert c["mean_rate_mm_yr"] == pytest.approx(RATE_M_YR * 1000, abs=2.0)
    assert c["mean_seasonal_amplitude_pp_mm"] == pytest.approx(8.0, abs=1.5)
    series = json.loads(c["series_json"])
    assert len(series["dates"]) == len(DATES)
    lon, lat = candidate_lonlat(cands)
    lon0, lat0 = planted_lonlat()
    assert abs(lat - lat0) < 2 * 0.0003 and abs(lon - lon0) < 2 * 0.0004
    rec = json.loads((ctx.work_dir / "thresholds.json").read_text())["geocode"]["timeseries_file"]
    assert rec["lat_step_deg"] == -0.0003 and rec["lon_step_deg"] == 0.0004
    assert rec["step_m"]["requested"] is None


def test_lalo_step_from_metres(radar):
    lut = open_lookup(radar["geometry"])
    dlat, dlon = lalo_step_deg(lut, step_m=30.0)
    assert dlat == pytest.approx(-0.000269796, rel=1e-5)  # MintPy's table: 30 m ≈ 0.000277778
    lat_c = sum(lut.lat_range_deg) / 2
    assert dlon == pytest.approx(-dlat / math.cos(math.radians(lat_c)))
    assert lalo_step_deg(lut, step_m=30.0, step_deg=(0.001, 0.002)) == (-0.001, 0.002)


def test_radar_coherence_goes_onto_a_geocoded_velocity_grid(radar, host, tmp_path):
    import contextlib
    import io

    from mintpy.cli import geocode

    geo_vel = tmp_path / "geo_velocity.h5"
    lon0, lat0 = planted_lonlat()
    bbox = [lat0 - 0.006, lat0 + 0.005, lon0 - 0.007, lon0 + 0.006]  # S N W E, a cropped AOI
    args = [str(radar["velocity"]), "-l", str(radar["geometry"]), "-o", str(geo_vel)]
    with contextlib.redirect_stdout(io.StringIO()):
        geocode.main([*args, "--lalo-step", "-0.0003", "0.0004", "--bbox", *map(str, bbox)])
    cands, ctx = propose(
        host,
        tmp_path,
        velocity_file=geo_vel,
        coherence_file=radar["coherence"],
        lookup_file=radar["geometry"],
        schedule=[{"abs_rate_mm_yr": 30}],
    )
    assert len(cands) == 1 and cands.iloc[0]["mean_coherence"] == pytest.approx(0.9, abs=1e-6)
    rec = json.loads((ctx.work_dir / "thresholds.json").read_text())["geocode"]
    assert list(rec) == ["coherence_file"] and rec["coherence_file"]["step_m"]["from_target_grid"]
    assert "--bbox" in rec["coherence_file"]["mintpy_call"]


def write_isce(path: Path, a: np.ndarray) -> Path:
    """An ISCE2 DOUBLE image with its .xml, as topsStack writes merged/geom_reference/lat.rdr."""
    a.astype(np.float64).tofile(path)
    props = {
        "width": a.shape[1],
        "length": a.shape[0],
        "number_bands": 1,
        "data_type": "DOUBLE",
        "scheme": "BIL",
        "byte_order": "l",
        "access_mode": "READ",
        "file_name": path.name,
    }
    body = "".join(
        f'  <property name="{k}"><value>{v}</value></property>\n' for k, v in props.items()
    )
    Path(f"{path}.xml").write_text(f"<imageFile>\n{body}</imageFile>\n")
    return path


def test_isce2_lat_lon_rdr_lookup(radar, host, tmp_path):
    lat, lon = lookup_grids()
    geom = tmp_path / "geom_reference"
    geom.mkdir()
    write_isce(geom / "lat.rdr", lat)
    write_isce(geom / "lon.rdr", lon)
    cands, ctx = propose(
        host,
        tmp_path,
        velocity_file=radar["velocity"],
        lookup_file=geom / "lat.rdr",
        schedule=[{"abs_rate_mm_yr": 30}],
    )
    assert len(cands) == 1
    lon_c, lat_c = candidate_lonlat(cands)
    lon0, lat0 = planted_lonlat()
    assert abs(lat_c - lat0) * 111_195.0 < 45 and abs(lon_c - lon0) * 88_000.0 < 45
    rec = json.loads((ctx.work_dir / "thresholds.json").read_text())["geocode"]["velocity_file"]
    assert rec["lookup_kind"] == "isce2" and "--lon-file" in rec["mintpy_call"]


def test_isce2_lookup_without_lon_rdr(radar, host, tmp_path):
    lat, _ = lookup_grids()
    write_isce(tmp_path / "lat.rdr", lat)
    with pytest.raises(InputError, match=r"lat\.rdr: ISCE2 lookup: lon\.rdr not found beside it"):
        propose(
            host,
            tmp_path,
            velocity_file=radar["velocity"],
            lookup_file=tmp_path / "lat.rdr",
            schedule=[{"abs_rate_mm_yr": 9}],
        )


# -- bad input ------------------------------------------------------------------------------------


def test_radar_product_without_lookup_names_the_field(radar, host, tmp_path):
    with pytest.raises(InputError, match=r"velocity\.h5: in radar coordinates.*lookup_file"):
        propose(host, tmp_path, velocity_file=radar["velocity"], schedule=[{"abs_rate_mm_yr": 9}])


def test_lookup_without_latitude(radar, host, tmp_path):
    bad = write_h5(
        tmp_path / "geometryRadar.h5",
        {"height": np.ones((LENGTH, WIDTH), np.float32)},
        {**RADAR_META, "FILE_TYPE": "geometry"},
    )
    with pytest.raises(MissingBandError) as exc:
        propose(
            host,
            tmp_path,
            velocity_file=radar["velocity"],
            lookup_file=bad,
            schedule=[{"abs_rate_mm_yr": 9}],
        )
    msg = str(exc.value)
    assert msg.startswith(f"{bad}: lookup table has no 'latitude'/'longitude'") and "\n" not in msg


def test_lookup_shape_differs_from_product(radar, host, tmp_path):
    lat, lon = lookup_grids()
    small = write_h5(
        tmp_path / "geometryRadar.h5",
        {"latitude": lat[:, :35], "longitude": lon[:, :35]},
        {**RADAR_META, "FILE_TYPE": "geometry", "WIDTH": "35"},
    )
    with pytest.raises(GridMismatchError) as exc:
        propose(
            host,
            tmp_path,
            velocity_file=radar["velocity"],
            lookup_file=small,
            schedule=[{"abs_rate_mm_yr": 9}],
        )
    msg = str(exc.value)
    assert msg.startswith(f"{small}: lookup table is 90 x 35") and "velocity.h5 is 90 x 70" in msg


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("missing.h5", None, "lookup table not found"),
        ("lat.rdr", b"\0" * 64, "cannot read the ISCE2 latitude lookup"),
        ("geo.h5", "geo", "lookup table is in geo coordinates"),
        ("deg.h5", "metres", "latitude spans"),
    ],
)
def test_bad_lookup_files(radar, host, tmp_path, name, content, problem):
    path = tmp_path / name
    if content == "geo":
        write_h5(
            path,
            {"latitude": np.ones((4, 4), np.float32), "longitude": np.ones((4, 4), np.float32)},
            {
                "FILE_TYPE": "geometry",
                "LENGTH": "4",
                "WIDTH": "4",
                "X_FIRST": "100.0",
                "Y_FIRST": "38.0",
                "X_STEP": "0.001",
                "Y_STEP": "-0.001",
            },
        )
    elif content == "metres":
        lat, lon = lookup_grids()
        write_h5(
            path,
            {"latitude": lat * 1e5, "longitude": lon},
            {**RADAR_META, "FILE_TYPE": "geometry"},
        )
    elif content is not None:
        path.write_bytes(content)
        path.with_name("lon.rdr").write_bytes(content)
    with pytest.raises(InputError) as exc:
        propose(
            host,
            tmp_path,
            velocity_file=radar["velocity"],
            lookup_file=path,
            schedule=[{"abs_rate_mm_yr": 9}],
        )
    msg = str(exc.value)
    assert msg.startswith(f"{path}: ") and problem in msg and "\n" not in msg
