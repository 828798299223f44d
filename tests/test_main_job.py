"""The README's main job: ``thawdetect run --detector insar_sbas --region qilian``."""

from __future__ import annotations

import json

from click.testing import CliRunner

from thawdetect.cli.main import cli
from thawdetect.core.run.ledger import Ledger


def test_main_job_runs_five_iterations_with_accuracy(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["run", "--detector", "insar_sbas", "--region", "qilian"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    run = tmp_path / "thawdetect-runs" / "qilian_insar_sbas"
    it = Ledger(run).read("iterations").sort_values("iteration")
    assert it["iteration"].tolist() == [1, 2, 3, 4, 5]
    assert (it["newly_confirmed"] > 0).all()  # every row of the schedule finds new ones
    thresholds = [json.loads(t)["insar_sbas"] for t in it["thresholds_json"]]
    assert [t["abs_rate_mm_yr"] for t in thresholds] == [">=50", ">=40", ">=30", ">=20", ">=10"]
    assert "SYNTHETIC" in result.output
    assert "every detector finished its schedule" in result.output
    assert "TPR = TP/N" in result.output
    acc = json.loads((run / "accuracy.json").read_text())
    overall = acc["overall"]
    assert overall["n"] >= 10 and overall["tpr"] >= 0.8
    assert overall["n_negatives"] >= 1  # the sample's checked-not-landslide points are used
    assert set(acc["per_iteration"]) == {"1", "2", "3", "4", "5"}
    tprs = [acc["per_iteration"][k]["tpr"] for k in ("1", "2", "3", "4", "5")]
    assert tprs == sorted(tprs)  # the inventory only grows
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["synthetic"] is True and manifest["status"] == "finished"
    # Running the same command again resumes a finished run: nothing is redone.
    stages_before = Ledger(run).read("stages")
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert Ledger(run).read("stages").equals(stages_before)
