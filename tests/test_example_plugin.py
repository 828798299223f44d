"""The example third-party plugin, installed with pip and run through the CLI."""

from __future__ import annotations

import json

from click.testing import CliRunner

from thawdetect.core.ledger import Ledger


def _cli():
    # imported after the plugin is installed so the entry point is seen
    from thawdetect.cli.main import cli

    return cli


def test_example_plugin_listed(example_plugin_installed):
    result = CliRunner().invoke(_cli(), ["plugins", "--json"])
    data = {p["name"]: p for p in json.loads(result.output)}
    assert data["dndvi"]["distribution"] == "thawdetect-dndvi"
    assert data["dndvi"]["detectors"] == ["dndvi"]


def test_example_plugin_runs_alone(example_plugin_installed, tmp_path):
    run = tmp_path / "run"
    result = CliRunner().invoke(
        _cli(),
        [
            "run",
            "--detector",
            "dndvi",
            "--region",
            "dndvi_demo",
            "--reviewer",
            "reference",
            "--output-dir",
            str(run),
        ],
    )
    assert result.exit_code == 0, result.output
    it = Ledger(run).read("iterations")
    assert it["iteration"].tolist() == [1, 2, 3]
    assert it["newly_confirmed"].iloc[0] >= 2
    assert (it["newly_confirmed"] > 0).all()
    assert "every detector finished its schedule" in result.output
    # review evidence was made for every candidate: NDVI frames as chips + GIF
    cands = Ledger(run).read("candidates")
    assert len(list((run / "iterations").glob("*/evidence/**/*.gif"))) == len(cands)
