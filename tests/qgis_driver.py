"""Drive real QGIS (PyQGIS) for tests/test_qgis_real.py; run by Debian's /usr/bin/python3.

Not a test module (no ``test_`` prefix): the tests run it as a subprocess with
``QT_QPA_PLATFORM=offscreen``, because PyQGIS lives in the system Python, not the project's venv.

    qgis_driver.py layers GPKG LAYER...          -> JSON: each layer's validity, renderer, style
    qgis_driver.py project PROJECT PNG           -> JSON: the project's layers; PNG rendered
    qgis_driver.py edit GPKG CANDIDATE_ID        -> JSON: an outline and a decision edited, saved

Every answer is one JSON object on the last line of stdout.
"""

import json
import sys

from qgis.core import (
    QgsApplication,
    QgsGeometry,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsPointXY,
    QgsProject,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor


def _describe(layer):
    out = {"name": layer.name(), "valid": layer.isValid(), "type": layer.type()}
    if isinstance(layer, QgsVectorLayer):
        r = layer.renderer()
        out["renderer"] = r.type() if r is not None else None
        out["features"] = layer.featureCount()
        out["labels"] = bool(layer.labelsEnabled())
        if r is not None and r.type() == "categorizedSymbol":
            out["attr"] = r.classAttribute()
            out["categories"] = [str(c.value()) for c in r.categories()]
        if r is not None and r.type() == "singleSymbol":
            out["colour"] = r.symbol().color().name()
        widgets = {}
        for f in layer.fields():
            setup = layer.editorWidgetSetup(layer.fields().indexOf(f.name()))
            widgets[f.name()] = setup.type()
        out["widgets"] = widgets
        vm = layer.editorWidgetSetup(layer.fields().indexOf("decision"))
        if vm.type() == "ValueMap":
            out["decision_values"] = [next(iter(d.values())) for d in vm.config().get("map", [])]
    else:
        r = layer.renderer()
        out["renderer"] = r.type() if r is not None else None
    return out


def cmd_layers(path, names):
    layers = []
    for name in names:
        lyr = QgsVectorLayer(f"{path}|layername={name}", name, "ogr")
        layers.append(_describe(lyr))
        del lyr
    return {"layers": layers}


def cmd_project(project_path, png):
    project = QgsProject.instance()
    ok = project.read(project_path)
    root = project.layerTreeRoot()
    order = [n.name() for n in root.findLayers()]
    visible = [n.layer() for n in root.findLayers() if n.isVisible() and n.layer() is not None]
    layers = [_describe(lyr) for lyr in project.mapLayers().values()]
    extent = QgsRectangle()
    extent.setMinimal()
    for name in ("candidates", "inventory"):
        for lyr in project.mapLayersByName(name):
            if lyr.featureCount():
                extent.combineExtentWith(lyr.extent())
    if extent.isEmpty():
        for lyr in visible:
            extent.combineExtentWith(lyr.extent())
    extent.scale(1.15)
    settings = QgsMapSettings()
    settings.setLayers(visible)
    settings.setDestinationCrs(project.crs())
    settings.setExtent(extent)
    settings.setOutputSize(QSize(900, 700))
    settings.setBackgroundColor(QColor(255, 255, 255))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage()
    image.save(png, "PNG")
    colours = set()
    for x in range(0, image.width(), 7):
        for y in range(0, image.height(), 7):
            colours.add(image.pixel(x, y))
    out = {
        "read": ok,
        "crs": project.crs().authid(),
        "order": order,
        "visible": [lyr.name() for lyr in visible],
        "layers": layers,
        "distinct_colours": len(colours),
        "errors": [e.message for e in job.errors()],
    }
    project.clear()
    return out


def cmd_edit(path, candidate_id):
    lyr = QgsVectorLayer(f"{path}|layername=review", "review", "ogr")
    assert lyr.isValid(), "review layer not valid"
    feat = next(f for f in lyr.getFeatures() if str(f["candidate_id"]) == candidate_id)
    geom = feat.geometry()
    c = geom.centroid().asPoint()
    # enlarge the outline by 20 % about its centroid (a reviewer dragging vertices outward)
    moved = QgsGeometry(geom)
    moved.transform(_scale_about(c, 1.2))
    lyr.startEditing()
    idx = lyr.fields().indexOf
    lyr.changeGeometry(feat.id(), moved)
    lyr.changeAttributeValue(feat.id(), idx("decision"), "confirmed")
    lyr.changeAttributeValue(feat.id(), idx("probability"), "high")
    lyr.changeAttributeValue(feat.id(), idx("note"), "edited in QGIS")
    ok = lyr.commitChanges()
    errors = lyr.commitErrors()
    area = moved.area()
    del lyr
    return {"committed": ok, "errors": errors, "area": area, "centroid": [c.x(), c.y()]}


def _scale_about(c, k):
    from qgis.PyQt.QtGui import QTransform

    return QTransform().translate(c.x(), c.y()).scale(k, k).translate(-c.x(), -c.y())


def main():
    app = QgsApplication([], False)
    app.initQgis()
    try:
        cmd, *args = sys.argv[1:]
        if cmd == "layers":
            out = cmd_layers(args[0], args[1:])
        elif cmd == "project":
            out = cmd_project(args[0], args[1])
        elif cmd == "edit":
            out = cmd_edit(args[0], args[1])
        else:
            raise SystemExit(f"unknown command {cmd}")
        print(json.dumps(out))
    finally:
        QgsProject.instance().clear()
        app.exitQgis()


if __name__ == "__main__":
    _ = QgsPointXY
    main()
