"""Make ``manifest.json``: a run manifest written before the typed ``Manifest`` model existed.

Generated once with thawdetect at commit 49deb73 (manifest.json still a plain dict) and committed,
so that ``tests/test_core_manifest.py`` proves old runs still load and round-trip unchanged. It is
the toy engine run of ``tests/test_core_engine.py`` (reference reviewer), finished, then resumed
after its input raster changed (``input_updates``, ``iteration_offset``, a continued iteration).
Run from the repository root: ``python tests/data/manifest_before_model/make_data.py``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from tests.plugins import toy_detectors  # noqa: E402
from tests.test_core_engine import _config, _write, scene  # noqa: E402

from thawdetect.core.plugin_api.host import PluginHost  # noqa: E402
from thawdetect.core.run.engine import Engine  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        files = scene.__wrapped__(tmp_path)  # the pytest fixture's function
        host = PluginHost(plugins=[("toy", toy_detectors)])
        run = tmp_path / "run"
        Engine(_config(files), run, host).run()
        import rasterio

        with rasterio.open(files["a"]) as src:
            arr = src.read(1)
        arr[0:3, 0:3] = 0.95  # an input changed after the run finished
        _write(files["a"], arr)
        Engine(_config(files, max_iterations=1), run, host).run()
        text = (run / "manifest.json").read_text().replace(str(tmp_path), "/data")
    json.loads(text)
    (Path(__file__).parent / "manifest.json").write_text(text)


if __name__ == "__main__":
    main()
