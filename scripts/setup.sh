#!/usr/bin/env bash
# One-stop set-up: system GDAL (for MintPy's HyP3 reader), a virtual environment in .venv,
# the pinned torch/torchvision pair, GDAL's Python bindings, and thawdetect with every extra.
# Idempotent: re-running skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${THAWDETECT_VENV:-.venv}
PY=${PYTHON:-python3}

SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

if ! command -v gdal-config >/dev/null 2>&1; then
    echo "[setup] installing system GDAL (libgdal-dev, gdal-bin)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libgdal-dev gdal-bin >/dev/null
fi
GDAL_VERSION=$(gdal-config --version)

# The review page's browser tests drive Debian's chromium through Playwright (the test extra);
# Playwright's own browser download is not used.
if ! command -v chromium >/dev/null 2>&1; then
    echo "[setup] installing Debian's chromium (browser tests of 'thawdetect review serve')"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

# Real QGIS (PyQGIS under Debian's /usr/bin/python3, not the venv): 'thawdetect qgis' projects
# and tests/test_qgis_real.py open runs in it. THAWDETECT_NO_QGIS=1 skips it (those tests skip).
if [ -z "${THAWDETECT_NO_QGIS:-}" ] && [ -x /usr/bin/python3 ] \
    && ! QT_QPA_PLATFORM=offscreen /usr/bin/python3 -c "import qgis.core" >/dev/null 2>&1; then
    echo "[setup] installing Debian's qgis and python3-qgis (real-QGIS tests; ~2 min)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        qgis python3-qgis >/dev/null \
        || echo "[setup] warning: QGIS not installed; the real-QGIS tests will be skipped"
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV"
    "$PY" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"

# Checked by installed versions (importing torch costs seconds on every re-run).
if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys
sys.exit(m.version('torch') != '2.14.1' or m.version('torchvision') != '0.29.1')" >/dev/null 2>&1
then
    echo "[setup] torch==2.14.1 torchvision==0.29.1 (the only pair that loads together here)"
    $PIP install -q torch==2.14.1 torchvision==0.29.1
fi

if ! "$VENV/bin/python" -c "from osgeo import gdal" >/dev/null 2>&1; then
    echo "[setup] GDAL Python bindings $GDAL_VERSION (matching the system library)"
    $PIP install -q "numpy<2.3" setuptools wheel
    $PIP install -q --no-build-isolation "gdal==$GDAL_VERSION"
fi

# The editable install only needs redoing when pyproject.toml (dependencies, entry points)
# changes: a stamp of its checksum makes a re-run with nothing changed take seconds.
STAMP="$VENV/.thawdetect-pyproject.sha256"
WANT=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ] \
    || ! "$VENV/bin/python" -c "import thawdetect" >/dev/null 2>&1; then
    echo "[setup] thawdetect[all,test]"
    $PIP install -q -e ".[all,test]"
    echo "$WANT" > "$STAMP"
else
    echo "[setup] thawdetect[all,test] already installed (pyproject.toml unchanged)"
fi

# The example third-party plugin is installed by the tests themselves; nothing else to do.
echo "[setup] done: $("$VENV/bin/thawdetect" --version)"
