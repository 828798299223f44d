"""A QGIS project of a run: the styled ledger layers over the run's rasters.

:func:`write_project` writes ``run.qgz`` (or ``.qgs``) by hand as QGIS project XML, so no PyQGIS is
needed to make it; the tests open it in real QGIS. Order, top to bottom:

    Review      validation points (by label), candidates (by status), inventory (by probability)
    Training    positives, negatives, proposals (hidden)
    InSAR       LOS rate, seasonal amplitude, downslope rate, cumulative displacement (last date)
    Optical     model probability, the acquisition frames (the latest shown)
    DEM hillshade

Rasters are the latest iteration's of each detector (its
:meth:`~thawdetect.core.plugin_api.detector.Detector.image_frames`, plus its ``probability.tif``
and ``downslope_rate_mm_yr.tif`` when written) and the DEMs the detector configs name. Paths
inside the run directory are stored relative to the project file, so the run directory and its
project move together.

:func:`style_ledger` stores the ledger's layer styles (:mod:`thawdetect.core.qgis_styles`) in
``ledger.gpkg`` so the ledger opens styled on its own.
"""

from __future__ import annotations

import os
import re
import uuid
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thawdetect.core.atomic import atomic_path, write_text_atomic
from thawdetect.core.errors import InputError
from thawdetect.core.qgis_styles import (
    VectorStyle,
    ledger_styles,
    store_styles_con,
    styles_current,
    validation_style,
)

if TYPE_CHECKING:
    from thawdetect.core.run.manifest import Manifest

__all__ = ["RasterLayer", "gather_rasters", "style_ledger", "write_project"]

#: Sun of the DEM hillshade: azimuth (deg, 0 = north, clockwise) and altitude (deg).
HILLSHADE_AZIMUTH_DEG = 315.0
HILLSHADE_ALTITUDE_DEG = 45.0


@dataclass
class RasterLayer:
    """One raster of the project.

    Attributes:
        label: layer name shown in QGIS.
        path: the raster.
        bands: 1-based bands (three: RGB; one: a colour-mapped value or the hillshade).
        kind: ``rgb``, ``diverging``, ``sequential``, ``probability`` or ``hillshade``.
        group: the layer-tree group (``InSAR``, ``Optical``, ``DEM``).
        value_range: display stretch (min, max) in the raster's units (None: computed).
        colormap: matplotlib colour-map name of a value map.
        visible: checked in the layer tree.
        opacity: 0-1.
    """

    label: str
    path: Path
    bands: tuple[int, ...]
    kind: str
    group: str
    value_range: tuple[float, float] | None = None
    colormap: str = ""
    visible: bool = True
    opacity: float = 1.0
    crs_wkt: str = ""
    extent: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    extras: dict[str, Any] = field(default_factory=dict)


# -- ledger styles --------------------------------------------------------------------------------


def style_ledger(run_dir: str | Path) -> bool:
    """Store the ledger layers' QGIS styles in ``ledger.gpkg`` unless they are already current.

    Written in one ledger transaction (under the ledger's lock); a ledger already holding the
    same styles is only read.

    Returns:
        True when styles were written.
    """
    import contextlib
    import sqlite3

    from thawdetect.core.run.ledger import LEDGER_FILE, Ledger

    path = Path(run_dir) / LEDGER_FILE
    if not path.exists():
        return False
    styles = list(ledger_styles().values())
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as con:
        if styles_current(con, styles):
            return False
    with Ledger(run_dir).transaction() as t:
        # The ledger API has no table for styles; they go in on its own connection and
        # transaction, so they commit (or roll back) with the ledger's protocol.
        store_styles_con(t._con, styles)
    return True


# -- gathering the rasters ------------------------------------------------------------------------


def dem_paths(config: Any) -> list[str]:
    """Every DEM path a run config names (keys ``dem``, ``*_dem``, ``dem_file``, ``dem_path``)."""
    found: list[str] = []
    if isinstance(config, dict):
        for key, value in config.items():
            if isinstance(value, str) and re.search(r"(^|_)dem(_file|_path)?$", key):
                found.append(value)
            elif isinstance(value, dict | list):
                found += dem_paths(value)
    elif isinstance(config, list):
        for value in config:
            found += dem_paths(value)
    return found


def _frame_kind(units: str, colormap: str, value_range: Any, label: str) -> str:
    if colormap.lower() in {"rdbu", "rdbu_r", "bwr", "coolwarm", "seismic", "puor", "brbg"}:
        return "diverging"
    if value_range is not None and float(value_range[0]) == -float(value_range[1]) != 0:
        return "diverging"
    return "diverging" if "rate" in label.lower() else "sequential"


def gather_rasters(
    run_dir: str | Path, manifest: Manifest, host: Any, messages: list[str]
) -> list[RasterLayer]:
    """The run's rasters for a project, in layer-tree order (top first).

    Args:
        run_dir: the run directory.
        manifest: its ``manifest.json``.
        host: a :class:`~thawdetect.core.plugin_api.host.PluginHost` knowing the detectors.
        messages: problems are appended here, never raised: a detector plugin that is missing
            or fails only removes its layers.
    """
    from thawdetect.core.errors import ThawdetectError
    from thawdetect.core.models import validate_section
    from thawdetect.core.plugin_api.context import IterationContext

    run_dir = Path(run_dir)
    try:
        region = manifest.region_model()
    except Exception as exc:
        messages.append(f"manifest region unreadable ({type(exc).__name__}); no rasters")
        return []
    latest: dict[str, tuple[int, dict[str, Any]]] = {}
    dems: list[str] = []
    for it_text, configs in sorted(manifest.iterations.items()):
        for name, cfg in (configs or {}).items():
            if cfg is None:
                continue
            dems += dem_paths(cfg)
            if (run_dir / "iterations" / f"{int(it_text):02d}" / name).is_dir():
                latest[name] = (int(it_text), cfg)
    insar: list[RasterLayer] = []
    optical: list[RasterLayer] = []
    for name, (k, cfg) in latest.items():
        work = run_dir / "iterations" / f"{k:02d}" / name
        try:
            cls = host.detector(name)
            det = cls(validate_section(cls.config_model, cfg, f"manifest: {name}"))
            ctx = IterationContext.standalone(
                region, run_dir, host=host, iteration=k, work_dir=work
            )
            frames = list(det.image_frames(ctx))
        except (ThawdetectError, OSError, ValueError) as exc:
            messages.append(
                f"rasters of detector '{name}' unavailable: {' '.join(str(exc).split())}"
            )
            frames = []
        singles: dict[tuple[str, str], RasterLayer] = {}
        rgb: list[RasterLayer] = []
        for f in frames:
            bands = tuple(int(b) for b in f.bands)
            vr = tuple(float(v) for v in f.value_range) if f.value_range is not None else None
            units = str(getattr(f, "units", "") or "")
            if len(bands) >= 3:
                rgb.append(
                    RasterLayer(
                        f"{name} {f.label}", Path(f.path), bands[:3], "rgb", "Optical",
                        value_range=vr, visible=False,  # type: ignore[arg-type]
                    )
                )  # fmt: skip
                continue
            if not units:
                continue
            label = f"{f.label} ({units})"
            key = (str(f.path), f.label)
            kind = _frame_kind(units, str(f.colormap or ""), vr, f.label)
            # A multi-band frame (a time-lapse) keeps its last band: the whole span.
            singles[key] = RasterLayer(
                label, Path(f.path), bands, kind, "InSAR" if name == "insar_sbas" else name,
                value_range=vr, colormap=str(f.colormap or ""),  # type: ignore[arg-type]
                visible=not singles,
            )  # fmt: skip
            if f.date and len(bands) == 1 and "since" in str(f.date):
                singles[key].label = f"{f.label} ({units}), {f.date}"
        if rgb:
            rgb[-1].visible = True
            rgb[-1].label += " (latest)"
        extra = work / "downslope_rate_mm_yr.tif"
        if extra.exists():
            singles[(str(extra), "downslope")] = RasterLayer(
                "downslope rate (mm/yr)", extra, (1,), "diverging", "InSAR", visible=False
            )
        prob = work / "probability.tif"
        if prob.exists():
            optical.append(
                RasterLayer(
                    f"{name} model probability", prob, (1,), "probability", "Optical",
                    value_range=(0.0, 1.0), opacity=0.8,
                )
            )  # fmt: skip
        for layer in singles.values():
            (insar if layer.group == "InSAR" else optical).append(layer)
        optical += list(reversed(rgb))  # latest frame on top
    for layer in insar[1:]:
        layer.visible = False
    if insar:  # the hillshade (or the optical frame) shows through the rate
        insar[0].opacity = 0.75
    hill: list[RasterLayer] = []
    for d in dict.fromkeys(dems):
        if Path(d).is_file():
            hill.append(RasterLayer("DEM hillshade", Path(d), (1,), "hillshade", "DEM"))
    out = insar + optical + hill
    for layer in out:
        _describe(layer, messages)
    return [layer for layer in out if layer.crs_wkt]


def _describe(layer: RasterLayer, messages: list[str]) -> None:
    """Fill CRS, extent and a missing stretch from the file (a bad file is dropped)."""
    import rasterio

    from thawdetect.core.review._styles import _raster_stretch

    try:
        with rasterio.open(layer.path) as src:
            if src.crs is None:
                raise ValueError("no CRS")
            layer.crs_wkt = src.crs.to_wkt()
            b = src.bounds
            layer.extent = (b.left, b.bottom, b.right, b.top)
            layer.extras["count"] = src.count
            layer.extras["epsg"] = src.crs.to_epsg()
        if layer.kind in ("diverging", "sequential") and layer.value_range is None:
            lo, hi, symmetric = _raster_stretch(layer.path, layer.bands[-1])
            layer.value_range = (lo, hi)
            if symmetric:
                layer.kind = "diverging"
        if layer.kind == "rgb" and layer.value_range is None:
            layer.value_range = _rgb_range(layer.path, layer.bands)
    except Exception as exc:
        messages.append(f"{layer.path}: left out ({' '.join(str(exc).split())[:160]})")
        layer.crs_wkt = ""


def _rgb_range(path: Path, bands: Sequence[int]) -> tuple[float, float]:
    """A 2-98 % stretch over the three bands (from a decimated read)."""
    import numpy as np
    import rasterio

    from thawdetect.core.review._reading import _filled

    with rasterio.open(path) as src:
        f = max(max(src.width, src.height) / 512, 1.0)
        shape = (len(bands), max(1, round(src.height / f)), max(1, round(src.width / f)))
        a = src.read(list(bands), out_shape=shape, masked=True).astype("float64")
    v = _filled(a).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (0.0, 255.0)
    lo, hi = (float(x) for x in np.percentile(v, [2, 98]))
    return (lo, hi if hi > lo else lo + 1.0)


# -- XML ------------------------------------------------------------------------------------------


def _srs(parent: ET.Element, wkt: str, epsg: int | None) -> None:
    srs = ET.SubElement(parent, "spatialrefsys", nativeFormat="Wkt")
    ET.SubElement(srs, "wkt").text = wkt
    ET.SubElement(srs, "authid").text = f"EPSG:{epsg}" if epsg else ""
    ET.SubElement(srs, "description").text = ""


def _ramp_items(name: str, lo: float, hi: float, n: int = 11) -> list[tuple[float, str, int]]:
    from thawdetect.core.review._styles import _lut

    lut = _lut(name)
    out = []
    for i in range(n):
        t = i / (n - 1)
        r, g, b = (int(c) for c in lut[round(t * 255)])
        out.append((lo + t * (hi - lo), f"#{r:02x}{g:02x}{b:02x}", 255))
    return out


def _pseudocolor(parent: ET.Element, layer: RasterLayer) -> None:
    lo, hi = layer.value_range or (0.0, 1.0)
    if layer.kind == "probability":
        items = _ramp_items("YlOrRd", lo, hi, 6)
        alphas = [0, 60, 130, 190, 230, 255]
        items = [(v, c, a) for (v, c, _), a in zip(items, alphas, strict=True)]
    else:
        cmap = layer.colormap or ("RdBu" if layer.kind == "diverging" else "viridis")
        items = _ramp_items(cmap, lo, hi)
    rr = ET.SubElement(
        parent,
        "rasterrenderer",
        type="singlebandpseudocolor",
        band=str(layer.bands[-1]),
        opacity=f"{layer.opacity:g}",
        alphaBand="-1",
        classificationMin=f"{lo:g}",
        classificationMax=f"{hi:g}",
        nodataColor="",
    )
    ET.SubElement(rr, "rasterTransparency")
    mmo = ET.SubElement(rr, "minMaxOrigin")
    for tag, text in (("limits", "None"), ("extent", "WholeRaster"), ("statAccuracy", "Estimated")):
        ET.SubElement(mmo, tag).text = text
    shader = ET.SubElement(ET.SubElement(rr, "rastershader"), "colorrampshader")
    shader.attrib.update(
        colorRampType="INTERPOLATED",
        classificationMode="1",
        clip="0",
        minimumValue=f"{lo:g}",
        maximumValue=f"{hi:g}",
        labelPrecision="2",
    )
    for value, colour, alpha in items:
        ET.SubElement(
            shader, "item", value=f"{value:g}", label=f"{value:g}", color=colour, alpha=str(alpha)
        )


def _raster_pipe(ml: ET.Element, layer: RasterLayer) -> None:
    pipe = ET.SubElement(ml, "pipe")
    if layer.kind == "rgb":
        r, g, b = layer.bands[:3]
        lo, hi = layer.value_range or (0.0, 255.0)
        rr = ET.SubElement(
            pipe, "rasterrenderer", type="multibandcolor", opacity=f"{layer.opacity:g}",
            alphaBand="-1", redBand=str(r), greenBand=str(g), blueBand=str(b),
        )  # fmt: skip
        ET.SubElement(rr, "rasterTransparency")
        for colour in ("red", "green", "blue"):
            ce = ET.SubElement(rr, f"{colour}ContrastEnhancement")
            ET.SubElement(ce, "minValue").text = f"{lo:g}"
            ET.SubElement(ce, "maxValue").text = f"{hi:g}"
            ET.SubElement(ce, "algorithm").text = "StretchToMinimumMaximum"
    elif layer.kind == "hillshade":
        rr = ET.SubElement(
            pipe, "rasterrenderer", type="hillshade", band=str(layer.bands[0]),
            opacity=f"{layer.opacity:g}", alphaBand="-1", azimuth=f"{HILLSHADE_AZIMUTH_DEG:g}",
            angle=f"{HILLSHADE_ALTITUDE_DEG:g}", zfactor="1", multidirection="0",
        )  # fmt: skip
        ET.SubElement(rr, "rasterTransparency")
    else:
        _pseudocolor(pipe, layer)
    ET.SubElement(pipe, "brightnesscontrast", brightness="0", contrast="0", gamma="1")
    ET.SubElement(pipe, "huesaturation", saturation="0", colorizeOn="0", grayscaleMode="0")
    ET.SubElement(pipe, "rasterresampler", maxOversampling="2")


def _maplayer(
    layers: ET.Element, kind: str, layer_id: str, source: str, name: str, provider: str,
    wkt: str, epsg: int | None,
) -> ET.Element:  # fmt: skip
    ml = ET.SubElement(
        layers, "maplayer", type=kind, styleCategories="AllStyleCategories",
        hasScaleBasedVisibilityFlag="0", refreshOnNotifyEnabled="0", autoRefreshEnabled="0",
    )  # fmt: skip
    ET.SubElement(ml, "id").text = layer_id
    ET.SubElement(ml, "datasource").text = source
    ET.SubElement(ml, "layername").text = name
    _srs(ET.SubElement(ml, "srs"), wkt, epsg)
    prov = ET.SubElement(ml, "provider", encoding="UTF-8")
    prov.text = provider
    return ml


def _add_style(ml: ET.Element, style: VectorStyle) -> None:
    qml = ET.fromstring(style.qml.split("\n", 1)[1])
    ml.set("labelsEnabled", qml.get("labelsEnabled", "0"))
    for child in qml:
        if child.tag != "layerGeometryType":
            ml.append(child)


def _rel(path: Path, base: Path) -> str:
    try:
        rel = os.path.relpath(Path(path).resolve(), base.resolve())
    except ValueError:  # another drive (Windows)
        return str(Path(path).resolve())
    return rel if rel.startswith("..") else f"./{rel}"


@dataclass
class _Entry:
    group: str
    layer_id: str
    name: str
    source: str
    provider: str
    visible: bool


def _validation_file(run_dir: Path, manifest: Manifest) -> tuple[Path, str | None] | None:
    files = manifest.files.validation
    path = Path(files[0]) if files else None
    if path is None or not path.is_file():
        return None
    column = manifest.run_config.get("validation_label_column")
    if column is None:
        import pyogrio

        try:
            names = list(pyogrio.read_info(path)["fields"])
        except Exception:
            return None
        column = "label" if "label" in names else None
    return path, column


def write_project(
    run_dir: str | Path,
    out_path: str | Path | None = None,
    *,
    host: Any | None = None,
    messages: list[str] | None = None,
) -> Path:
    """Write a QGIS project (``.qgz`` or ``.qgs``) of a run and style its ledger.

    Args:
        run_dir: the run directory (``ledger.gpkg``, ``manifest.json``).
        out_path: the project file (default ``RUN_DIR/run.qgz``).
        host: a plugin host (default: a new :class:`~thawdetect.core.plugin_api.host.PluginHost`).
        messages: rasters left out and why are appended here.

    Returns:
        The project path.

    Raises:
        InputError: not a run directory, or the output is not ``.qgz``/``.qgs``.
    """
    from thawdetect.core.run.ledger import LEDGER_FILE, SPATIAL_LAYERS, Ledger

    run_dir = Path(run_dir)
    ledger_path = run_dir / LEDGER_FILE
    if not ledger_path.is_file():
        raise InputError(run_dir, f"not a run directory (no {LEDGER_FILE})")
    out = Path(out_path) if out_path is not None else run_dir / "run.qgz"
    if out.suffix.lower() not in (".qgz", ".qgs"):
        raise InputError(out, "a QGIS project must end in .qgz or .qgs")
    messages = messages if messages is not None else []
    from thawdetect.core.run.manifest import read_manifest

    manifest = read_manifest(run_dir)
    if host is None:
        from thawdetect.core.plugin_api.host import PluginHost

        host = PluginHost()
    style_ledger(run_dir)
    ledger = Ledger(run_dir)
    present = ledger.layers()
    crs = ledger.crs
    if crs is None:
        from pyproj import CRS

        crs = CRS.from_user_input(manifest.working_crs or "EPSG:4326")
    from pyproj import CRS as _CRS

    crs = _CRS.from_user_input(crs)
    wkt, epsg = crs.to_wkt(), crs.to_epsg()
    base = out.parent
    root = ET.Element("qgis", projectname=run_dir.name, version="3.22.0")
    ET.SubElement(root, "homePath", path="")
    ET.SubElement(root, "title").text = f"thawdetect run {run_dir.name}"
    _srs(ET.SubElement(root, "projectCrs"), wkt, epsg)
    tree = ET.SubElement(root, "layer-tree-group")
    ET.SubElement(tree, "customproperties")
    maplayers = ET.SubElement(root, "projectlayers")
    entries: list[_Entry] = []

    def vector(group: str, layer: str, name: str, style: VectorStyle, visible: bool) -> None:
        lid = f"{re.sub(r'[^A-Za-z0-9_]', '_', name)}_{uuid.uuid4().hex[:12]}"
        # The ledger declares GEOMETRY columns; naming the type keeps an empty layer drawable.
        source = f"{_rel(ledger_path, base)}|layername={layer}|geometrytype=Polygon"
        ml = _maplayer(maplayers, "vector", lid, source, name, "ogr", wkt, epsg)
        _add_style(ml, style)
        entries.append(_Entry(group, lid, name, source, "ogr", visible))

    val = _validation_file(run_dir, manifest)
    if val is not None:
        vpath, column = val
        lid = f"validation_{uuid.uuid4().hex[:12]}"
        source = _rel(vpath, base)
        import pyogrio

        vcrs = _CRS.from_user_input(pyogrio.read_info(vpath)["crs"] or "EPSG:4326")
        ml = _maplayer(
            maplayers, "vector", lid, source, "validation points", "ogr",
            vcrs.to_wkt(), vcrs.to_epsg(),
        )  # fmt: skip
        _add_style(ml, validation_style(column))
        entries.append(_Entry("Review", lid, "validation points", source, "ogr", True))
    styles = ledger_styles()
    for group, layer, visible in (
        ("Review", "candidates", True),
        ("Review", "inventory", True),
        ("Training", "positives", False),
        ("Training", "negatives", False),
        ("Training", "proposals", False),
    ):
        if layer in present and layer in SPATIAL_LAYERS:
            vector(group, layer, layer, styles[layer], visible)
    rasters = gather_rasters(run_dir, manifest, host, messages)
    for r in rasters:
        lid = f"{re.sub(r'[^A-Za-z0-9_]', '_', r.label)[:40]}_{uuid.uuid4().hex[:12]}"
        source = _rel(r.path, base)
        ml = _maplayer(
            maplayers, "raster", lid, source, r.label, "gdal", r.crs_wkt, r.extras.get("epsg")
        )
        _raster_pipe(ml, r)
        entries.append(_Entry(r.group, lid, r.label, source, "gdal", r.visible))
    groups: dict[str, ET.Element] = {}
    for e in entries:
        if e.group == "DEM":
            parent = tree
        else:
            if e.group not in groups:
                groups[e.group] = ET.SubElement(
                    tree, "layer-tree-group", name=e.group, checked="Qt::Checked", expanded="1"
                )
                ET.SubElement(groups[e.group], "customproperties")
            parent = groups[e.group]
        node = ET.SubElement(
            parent, "layer-tree-layer", id=e.layer_id, name=e.name, source=e.source,
            providerKey=e.provider, checked="Qt::Checked" if e.visible else "Qt::Unchecked",
            expanded="0",
        )  # fmt: skip
        ET.SubElement(node, "customproperties")
    _canvas(root, run_dir, ledger, rasters)
    props = ET.SubElement(root, "properties")
    paths = ET.SubElement(props, "Paths")
    ET.SubElement(paths, "Absolute", type="bool").text = "false"
    srs = ET.SubElement(props, "SpatialRefSys")
    ET.SubElement(srs, "ProjectionsEnabled", type="int").text = "1"
    ET.indent(root)
    text = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + ET.tostring(
        root, encoding="unicode"
    )
    if out.suffix.lower() == ".qgz":
        with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr(out.with_suffix(".qgs").name, text)
    else:
        write_text_atomic(out, text)
    return out


def _canvas(root: ET.Element, run_dir: Path, ledger: Any, rasters: list[RasterLayer]) -> None:
    """The initial view: the candidates and inventory (else the rasters), with a margin."""
    import pyogrio

    from thawdetect.core.run.ledger import LEDGER_FILE

    boxes: list[tuple[float, float, float, float]] = []
    for layer in ("candidates", "inventory"):
        try:
            info = pyogrio.read_info(run_dir / LEDGER_FILE, layer=layer, force_total_bounds=True)
        except Exception:
            continue
        b = info.get("total_bounds")
        if b is not None and info.get("features", 0) and all(map(_finite, b)):
            boxes.append(tuple(float(v) for v in b))  # type: ignore[arg-type]
    if not boxes:
        boxes = [r.extent for r in rasters if r.extent != (0.0, 0.0, 0.0, 0.0)]
    if not boxes:
        return
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    pad = 0.1 * max(x1 - x0, y1 - y0, 1.0)
    canvas = ET.SubElement(root, "mapcanvas", name="theMapCanvas", annotationsVisible="1")
    ext = ET.SubElement(canvas, "extent")
    for tag, v in (("xmin", x0 - pad), ("ymin", y0 - pad), ("xmax", x1 + pad), ("ymax", y1 + pad)):
        ET.SubElement(ext, tag).text = repr(float(v))


def _finite(v: Any) -> bool:
    import math

    return isinstance(v, int | float) and math.isfinite(float(v))
