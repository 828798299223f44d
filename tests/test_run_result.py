"""One run, one typed result (issue 22): the engine, ``thawdetect.run`` and ``open_run`` return the
same :class:`RunResult`; accuracy is a :class:`RunAccuracy`; one config builder for API and CLI."""

from __future__ import annotations

import pytest
from tests.test_core_engine import _config, _host, scene  # noqa: F401 (the scene fixture)

import thawdetect
from thawdetect.api import build_run_config
from thawdetect.core.accuracy import AccuracyReport, RunAccuracy
from thawdetect.core.errors import ConfigError
from thawdetect.core.run.engine import Engine


def test_engine_returns_the_public_result_with_typed_accuracy(scene, tmp_path):  # noqa: F811
    cfg = _config(scene, validation=str(scene["ref"]))
    result = Engine(cfg, tmp_path / "run", _host()).run()
    assert type(result) is thawdetect.RunResult
    scores = result.accuracy_scores
    assert isinstance(scores, RunAccuracy)
    assert isinstance(result.accuracy, AccuracyReport)
    assert scores.overall == result.accuracy
    assert scores.table.splitlines()[1].startswith("overall")
    # the same figures read back from accuracy.json by a later session
    again = thawdetect.open_run(tmp_path / "run")
    assert again.accuracy_scores == scores
    assert again.accuracy == result.accuracy
    # the mapping the engine used to return still answers (scripts written against it)
    assert scores["report"] == scores.overall and scores["dict"] is scores.scores
    with pytest.raises(KeyError):
        scores["overall"]


def test_build_run_config_takes_the_scheduler():
    cfg, source = build_run_config({"region": "qilian"}, scheduler="Processes")
    assert cfg.compute.scheduler == "processes" and source == "arguments"
    with pytest.raises(ConfigError, match="scheduler"):
        build_run_config({"region": "qilian"}, scheduler="gpu-cluster")
    with pytest.raises(ConfigError, match=r"^command line: max_iterations"):
        build_run_config(None, max_iterations=0, overrides_source="command line")
