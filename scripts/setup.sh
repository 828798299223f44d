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

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV"
    "$PY" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"

if ! "$VENV/bin/python" -c "import torch, torchvision" >/dev/null 2>&1; then
    echo "[setup] torch==2.14.1 torchvision==0.29.1 (the only pair that loads together here)"
    $PIP install -q torch==2.14.1 torchvision==0.29.1
fi

if ! "$VENV/bin/python" -c "from osgeo import gdal" >/dev/null 2>&1; then
    echo "[setup] GDAL Python bindings $GDAL_VERSION (matching the system library)"
    $PIP install -q "numpy<2.3" setuptools wheel
    $PIP install -q --no-build-isolation "gdal==$GDAL_VERSION"
fi

echo "[setup] thawdetect[all,test]"
$PIP install -q -e ".[all,test]"

# The example third-party plugin is installed by the tests themselves; nothing else to do.
echo "[setup] done: $("$VENV/bin/thawdetect" --version)"
