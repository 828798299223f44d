"""QGIS styles (QML) for the run's vector layers, stored in a GeoPackage's ``layer_styles`` table.

QGIS applies the ``useAsDefault`` row of ``layer_styles`` whose ``f_table_name`` and
``f_geometry_column`` name a layer when it opens that layer, so a styled GeoPackage opens styled
with no project file. The table has the columns QGIS itself creates (OGR provider, QGIS ≥ 3.0)
and is registered in ``gpkg_contents`` as an attribute table, as QGIS does.

Styles (pure XML, no PyQGIS needed to write them):
    candidates   categorised by ``status`` (pending, confirmed, rejected, unsure, part_of)
    inventory    categorised by ``probability`` (high, medium, low; other = known/unclassified)
    positives    green hatched;  negatives  blue dashed;  proposals  thin cyan dashed outline
    review       (the ``review export``) by ``decision``, with value maps for ``decision`` and
                 ``probability``, a drop-down of inventory/candidate ids for ``part_of``, and
                 everything but the edit fields read-only
    validation   points by label (landslide / not landslide, the accuracy report's vocabularies)

Polygon layers are labelled with their id and area (ha).
"""

from __future__ import annotations

import sqlite3
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LEDGER_STYLE_LAYERS",
    "STYLE_NAME",
    "VectorStyle",
    "inventory_style",
    "ledger_styles",
    "review_style",
    "store_styles",
    "style_for",
    "validation_style",
]

#: ``styleName`` of the rows thawdetect writes (rewritten, never duplicated, on every store).
STYLE_NAME = "thawdetect"
#: QGIS's "NULL" key in a value map.
_VALUE_MAP_NULL = "{2839923C-8B7D-419E-B84B-CA2FE9B80EC7}"
_QML_HEAD = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"

#: Colours (r, g, b) of candidate statuses: pending stands out, rejected recedes.
STATUS_COLOURS: dict[str, tuple[int, int, int]] = {
    "pending": (255, 200, 0),
    "confirmed": (215, 25, 28),
    "part_of": (142, 68, 173),
    "unsure": (253, 141, 60),
    "rejected": (120, 120, 120),
}
#: Colours of inventory probability classes (Xia et al. high / medium / low).
PROBABILITY_COLOURS: dict[str, tuple[int, int, int]] = {
    "high": (165, 0, 38),
    "medium": (244, 109, 67),
    "low": (254, 224, 144),
}


@dataclass(frozen=True)
class VectorStyle:
    """One layer's QML and the geometry kind it draws (``polygon``, ``point`` or ``none``)."""

    layer: str
    qml: str
    geometry: str = "polygon"
    description: str = ""


# -- symbols --------------------------------------------------------------------------------------


def _rgba(rgb: Sequence[int], alpha: int = 255) -> str:
    return f"{rgb[0]},{rgb[1]},{rgb[2]},{alpha}"


def _props(parent: ET.Element, props: Mapping[str, str]) -> None:
    for k, v in props.items():
        ET.SubElement(parent, "prop", k=k, v=v)


def _fill_symbol(
    name: str,
    rgb: Sequence[int],
    *,
    fill_alpha: int = 50,
    width_mm: float = 0.6,
    brush: str = "solid",
    outline_style: str = "solid",
) -> ET.Element:
    sym = ET.Element("symbol", type="fill", name=name, alpha="1", clip_to_extent="1", force_rhr="0")
    layer = ET.SubElement(sym, "layer", {"class": "SimpleFill", "enabled": "1", "locked": "0"})
    layer.set("pass", "0")
    _props(
        layer,
        {
            "color": _rgba(rgb, fill_alpha if brush == "solid" else 255),
            "style": brush,
            "outline_color": _rgba(rgb),
            "outline_style": outline_style,
            "outline_width": f"{width_mm:g}",
            "outline_width_unit": "MM",
            "joinstyle": "round",
            "offset": "0,0",
            "offset_unit": "MM",
        },
    )
    return sym


def _marker_symbol(name: str, rgb: Sequence[int], shape: str, size_mm: float = 3.0) -> ET.Element:
    sym = ET.Element(
        "symbol", type="marker", name=name, alpha="1", clip_to_extent="1", force_rhr="0"
    )
    layer = ET.SubElement(sym, "layer", {"class": "SimpleMarker", "enabled": "1", "locked": "0"})
    layer.set("pass", "0")
    _props(
        layer,
        {
            "name": shape,
            "color": _rgba(rgb),
            "outline_color": "35,35,35,255",
            "outline_style": "solid",
            "outline_width": "0.3",
            "outline_width_unit": "MM",
            "size": f"{size_mm:g}",
            "size_unit": "MM",
            "angle": "0",
            "scale_method": "diameter",
            "vertical_anchor_point": "1",
            "horizontal_anchor_point": "1",
            "joinstyle": "bevel",
            "offset": "0,0",
            "offset_unit": "MM",
        },
    )
    return sym


def _renderer(kind: str, **attrs: str) -> ET.Element:
    r = ET.Element("renderer-v2", type=kind, symbollevels="0", enableorderby="0", forceraster="0")
    for k, v in attrs.items():
        r.set(k, v)
    return r


def _categorized(attr: str, classes: Sequence[tuple[str, str, ET.Element]]) -> ET.Element:
    """A categorised renderer: (value, legend label, symbol) per class; value "" = all others."""
    r = _renderer("categorizedSymbol", attr=attr)
    cats = ET.SubElement(r, "categories")
    syms = ET.SubElement(r, "symbols")
    for i, (value, label, sym) in enumerate(classes):
        ET.SubElement(cats, "category", render="true", symbol=str(i), value=value, label=label)
        sym.set("name", str(i))
        syms.append(sym)
    return r


def _single(sym: ET.Element) -> ET.Element:
    r = _renderer("singleSymbol")
    syms = ET.SubElement(r, "symbols")
    sym.set("name", "0")
    syms.append(sym)
    return r


# -- labels, forms ------------------------------------------------------------------------------


def _area_label(id_field: str) -> str:
    """Label expression: the id, then the area in hectares (planar, layer CRS units m²)."""
    return (
        f"\"{id_field}\" || '\\n' || format_number(area($geometry) / 10000, 2) || ' ha'"
        if id_field
        else "format_number(area($geometry) / 10000, 2) || ' ha'"
    )


def _labeling(expression: str, placement: str = "1") -> ET.Element:
    lab = ET.Element("labeling", type="simple")
    settings = ET.SubElement(lab, "settings", calloutType="simple")
    ts = ET.SubElement(
        settings,
        "text-style",
        fieldName=expression,
        isExpression="1",
        fontFamily="Sans Serif",
        fontSize="8",
        fontSizeUnit="Point",
        textColor="20,20,20,255",
        textOpacity="1",
        fontWeight="50",
        fontItalic="0",
        multilineHeight="1",
        allowHtml="0",
        blendMode="0",
        namedStyle="Regular",
    )
    ET.SubElement(
        ts,
        "text-buffer",
        bufferDraw="1",
        bufferSize="0.8",
        bufferSizeUnits="MM",
        bufferColor="255,255,255,255",
        bufferOpacity="0.85",
        bufferNoFill="1",
        bufferJoinStyle="128",
        bufferBlendMode="0",
    )
    ET.SubElement(settings, "text-format", multilineAlign="1", wrapChar="", plussign="0")
    ET.SubElement(
        settings,
        "placement",
        placement=placement,
        dist="1",
        distUnits="MM",
        fitInPolygonOnly="0",
        centroidWhole="0",
        centroidInside="1",
        priority="5",
    )
    ET.SubElement(
        settings,
        "rendering",
        obstacle="1",
        obstacleType="1",
        displayAll="0",
        upsidedownLabels="0",
        limitNumLabels="0",
        mergeLines="0",
        fontLimitPixelSize="0",
        scaleVisibility="0",
        drawLabels="1",
    )
    return lab


def _value_map(entries: Sequence[tuple[str, str]]) -> ET.Element:
    """A ``ValueMap`` edit widget: (shown description, stored value) per entry."""
    widget = ET.Element("editWidget", type="ValueMap")
    config = ET.SubElement(widget, "config")
    root = ET.SubElement(config, "Option", type="Map")
    lst = ET.SubElement(root, "Option", type="List", name="map")
    for description, value in entries:
        one = ET.SubElement(lst, "Option", type="Map")
        ET.SubElement(one, "Option", type="QString", name=description, value=value)
    return widget


def _qml(
    renderer: ET.Element,
    *,
    labeling: ET.Element | None = None,
    widgets: Mapping[str, ET.Element] | None = None,
    read_only: Iterable[str] = (),
    geometry: str = "polygon",
) -> str:
    root = ET.Element(
        "qgis",
        version="3.22.0",
        styleCategories="AllStyleCategories",
        labelsEnabled="1" if labeling is not None else "0",
    )
    root.append(renderer)
    if labeling is not None:
        root.append(labeling)
    if widgets:
        fc = ET.SubElement(root, "fieldConfiguration")
        for name, widget in widgets.items():
            field = ET.SubElement(fc, "field", name=name, configurationFlags="None")
            field.append(widget)
    ro = list(read_only)
    if ro:
        editable = ET.SubElement(root, "editable")
        for name in ro:
            ET.SubElement(editable, "field", name=name, editable="0")
    code = {"point": "0", "line": "1", "polygon": "2"}.get(geometry, "4")
    ET.SubElement(root, "layerGeometryType").text = code
    ET.indent(root)
    return _QML_HEAD + ET.tostring(root, encoding="unicode") + "\n"


# -- the layers' styles ---------------------------------------------------------------------------


def candidates_style(layer: str = "candidates") -> VectorStyle:
    """Candidates by review status, labelled ``candidate_id`` and area."""
    classes = [
        (status, status.replace("_", " "), _fill_symbol("", rgb, fill_alpha=40))
        for status, rgb in STATUS_COLOURS.items()
    ]
    classes.append(("", "other", _fill_symbol("", (60, 60, 60), fill_alpha=0, width_mm=0.4)))
    qml = _qml(_categorized("status", classes), labeling=_labeling(_area_label("candidate_id")))
    return VectorStyle(layer, qml, description="candidates by review status")


def inventory_style(layer: str = "inventory") -> VectorStyle:
    """Inventory features by probability class, labelled ``inventory_id`` and area."""
    classes = [
        (p, f"{p} probability", _fill_symbol("", rgb, fill_alpha=110, width_mm=0.5))
        for p, rgb in PROBABILITY_COLOURS.items()
    ]
    classes.append(
        ("", "known / unclassified", _fill_symbol("", (102, 51, 0), fill_alpha=70, width_mm=0.5))
    )
    qml = _qml(
        _categorized("probability", classes), labeling=_labeling(_area_label("inventory_id"))
    )
    return VectorStyle(layer, qml, description="inventory by probability class")


def _plain_style(layer: str, sym: ET.Element, description: str) -> VectorStyle:
    return VectorStyle(layer, _qml(_single(sym)), description=description)


def review_style(
    part_of_targets: Sequence[str] = (), layer: str = "review", *, edit_fields: Sequence[str] = ()
) -> VectorStyle:
    """The review export: by ``decision`` (blank = to review), with its attribute form.

    Args:
        part_of_targets: ids a ``part_of`` may name (inventory features, exported candidates),
            offered in a drop-down.
        layer: the layer name.
        edit_fields: the editable fields; every other attribute is made read-only.
    """
    from thawdetect.core.run.ledger import DECISIONS, PROBABILITIES

    classes = [
        (d, d.replace("_", " "), _fill_symbol("", STATUS_COLOURS[d], fill_alpha=40))
        for d in DECISIONS
    ]
    classes.append(("", "to review", _fill_symbol("", STATUS_COLOURS["pending"], fill_alpha=40)))
    blank = ("(not decided)", "")
    described = {
        "confirmed": "confirmed: a slope failure",
        "rejected": "rejected: not a slope failure",
        "unsure": "unsure",
        "part_of": "part of another feature (set part_of)",
    }
    widgets = {
        "decision": _value_map([blank, *((described.get(d, d), d) for d in DECISIONS)]),
        "probability": _value_map([("(none)", ""), *((p, p) for p in PROBABILITIES)]),
        "part_of": _value_map([("(none)", ""), *((t, t) for t in dict.fromkeys(part_of_targets))]),
    }
    read_only = [f for f in ("candidate_id", "iteration", "detectors", "n_detectors", "score")]
    read_only += ["status"]
    if edit_fields:
        read_only = [f for f in read_only if f not in edit_fields]
    qml = _qml(
        _categorized("decision", classes),
        labeling=_labeling(_area_label("candidate_id")),
        widgets=widgets,
        read_only=read_only,
    )
    return VectorStyle(layer, qml, description="review export: decision forms")


def validation_style(label_column: str | None, layer: str = "validation") -> VectorStyle:
    """Validation points by label (the accuracy report's vocabularies); all one class without."""
    from thawdetect.core.accuracy.metrics import NEGATIVE_LABELS, POSITIVE_LABELS

    pos = _marker_symbol("0", (215, 25, 28), "triangle", 3.4)
    neg = _marker_symbol("1", (44, 123, 182), "circle", 2.6)
    other = _marker_symbol("2", (160, 160, 160), "diamond", 2.6)
    if label_column is None:
        return VectorStyle(layer, _qml(_single(pos), geometry="point"), "point")
    value = f'lower(trim(to_string("{label_column}")))'

    def _in(words: Iterable[str]) -> str:
        quoted = ", ".join("'" + w.replace("'", "''") + "'" for w in sorted(words))
        return f"{value} IN ({quoted})"

    r = _renderer("RuleRenderer")
    rules = ET.SubElement(r, "rules", key="root")
    ET.SubElement(rules, "rule", key="pos", filter=_in(POSITIVE_LABELS), symbol="0",
                  label="landslide")  # fmt: skip
    ET.SubElement(rules, "rule", key="neg", filter=_in(NEGATIVE_LABELS), symbol="1",
                  label="not landslide")  # fmt: skip
    ET.SubElement(rules, "rule", key="else", filter="ELSE", symbol="2", label="other label")
    syms = ET.SubElement(r, "symbols")
    syms.extend([pos, neg, other])
    return VectorStyle(
        layer, _qml(r, geometry="point"), geometry="point", description="points by label"
    )


def ledger_styles() -> dict[str, VectorStyle]:
    """The styles of the ledger's feature layers, by layer name."""
    return {
        "candidates": candidates_style(),
        "inventory": inventory_style(),
        "positives": _plain_style(
            "positives",
            _fill_symbol("", (26, 152, 80), brush="b_diagonal", width_mm=0.5),
            "training positives",
        ),
        "negatives": _plain_style(
            "negatives",
            _fill_symbol("", (69, 117, 180), fill_alpha=25, width_mm=0.4, outline_style="dash"),
            "training negatives",
        ),
        "proposals": _plain_style(
            "proposals",
            _fill_symbol("", (0, 188, 212), brush="no", width_mm=0.3, outline_style="dash"),
            "raw detector proposals",
        ),
    }


#: The ledger layers :func:`ledger_styles` styles.
LEDGER_STYLE_LAYERS = ("candidates", "inventory", "positives", "negatives", "proposals")


def style_for(layer: str) -> VectorStyle | None:
    """The ledger style of ``layer`` (None for a layer thawdetect does not style)."""
    return ledger_styles().get(layer)


# -- the layer_styles table -----------------------------------------------------------------------

_CREATE = (
    "CREATE TABLE IF NOT EXISTS layer_styles ("
    "id INTEGER PRIMARY KEY AUTOINCREMENT, f_table_catalog TEXT(256), f_table_schema TEXT(256), "
    "f_table_name TEXT(256), f_geometry_column TEXT(256), styleName TEXT(30), styleQML TEXT, "
    "styleSLD TEXT, useAsDefault BOOLEAN, description TEXT, owner TEXT(30), ui TEXT(30), "
    "update_time DATETIME DEFAULT CURRENT_TIMESTAMP)"
)


def _geometry_columns(con: sqlite3.Connection) -> dict[str, str]:
    return {
        str(t): str(c)
        for t, c in con.execute("SELECT table_name, column_name FROM gpkg_geometry_columns")
    }


def styles_current(con: sqlite3.Connection, styles: Iterable[VectorStyle]) -> bool:
    """Whether every style is stored, identical, as its layer's default."""
    has = con.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'layer_styles'"
    ).fetchone()[0]
    if not has:
        return False
    for st in styles:
        row = con.execute(
            "SELECT styleQML FROM layer_styles WHERE f_table_name = ? AND styleName = ? "
            "AND useAsDefault",
            (st.layer, STYLE_NAME),
        ).fetchone()
        if row is None or row[0] != st.qml:
            return False
    return True


def store_styles_con(
    con: sqlite3.Connection, styles: Iterable[VectorStyle], geometry_column: str = "geom"
) -> None:
    """Write ``styles`` into ``layer_styles`` on an open GeoPackage connection (no commit).

    Each layer's style becomes its only default; other rows (a user's own styles) are kept.
    Layers not created yet get ``geometry_column`` (QGIS matches it when the layer appears).
    """
    con.execute(_CREATE)
    registered = con.execute(
        "SELECT count(*) FROM gpkg_contents WHERE table_name = 'layer_styles'"
    ).fetchone()[0]
    if not registered:
        con.execute(
            "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, "
            "last_change) VALUES ('layer_styles', 'attributes', 'layer_styles', "
            "'QGIS layer styles', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
        )
    geoms = _geometry_columns(con)
    for st in styles:
        con.execute(
            "DELETE FROM layer_styles WHERE f_table_name = ? AND styleName = ?",
            (st.layer, STYLE_NAME),
        )
        con.execute("UPDATE layer_styles SET useAsDefault = 0 WHERE f_table_name = ?", (st.layer,))
        geom_col = "" if st.geometry == "none" else geoms.get(st.layer, geometry_column)
        con.execute(
            "INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, "
            "f_geometry_column, styleName, styleQML, styleSLD, useAsDefault, description, "
            "owner, ui) VALUES ('', '', ?, ?, ?, ?, '', 1, ?, 'thawdetect', '')",
            (st.layer, geom_col, STYLE_NAME, st.qml, st.description),
        )


def store_styles(path: str | Path, styles: Iterable[VectorStyle]) -> None:
    """Write ``styles`` into the GeoPackage at ``path`` (one transaction).

    For a file nothing else writes (an export being made); the run ledger is styled through
    :func:`thawdetect.core.qgis_project.style_ledger`, under the ledger's lock.
    """
    import contextlib

    with contextlib.closing(sqlite3.connect(path)) as con, con:
        store_styles_con(con, list(styles))
