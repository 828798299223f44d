"""The typed run manifest: old manifests load and are written back unchanged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from thawdetect.core.errors import InputError
from thawdetect.core.run.manifest import (
    GuardRecord,
    Manifest,
    RunStatus,
    continue_as_new_iteration,
    read_manifest,
    save_manifest,
)

#: written by thawdetect before the Manifest model (tests/data/manifest_before_model/make_data.py)
OLD = Path(__file__).parent / "data" / "manifest_before_model" / "manifest.json"


@pytest.fixture
def old_run(tmp_path: Path) -> Path:
    shutil.copy(OLD, tmp_path / "manifest.json")
    return tmp_path


class TestOldManifest:
    def test_loads_typed(self, old_run):
        m = read_manifest(old_run)
        assert m.status is RunStatus.FINISHED
        assert m.stop_reason == "every detector finished its schedule"
        assert sorted(m.iterations) == [1, 2, 3, 4, 5]
        assert m.configs(5) == {"toy_a": None}
        assert m.last_config("toy_a", 5)["index"] == 2
        assert m.offset == 3
        assert m.input_updates is not None and m.input_updates[0].continues_as_iteration == 4
        assert m.input_checksums["/data/a.tif"].bytes == 40390
        assert m.review is not None and m.review[1]["outline"] == "reference"
        assert m.plugins["toy"].distribution == "(registered in-process)"
        assert m.region_model().name == "toy"
        assert m.warnings is None and m.configs(9) == {}

    def test_written_back_unchanged(self, old_run):
        raw = json.loads(OLD.read_text())
        save_manifest(old_run, read_manifest(old_run))
        assert json.loads((old_run / "manifest.json").read_text()) == raw

    def test_dict_style_reading_for_old_scripts(self, old_run):
        m = read_manifest(old_run)
        assert m["status"] == "finished"
        assert m["iterations"]["5"] == {"toy_a": None}
        assert m.get("warnings") is None and m.get("nothing", 1) == 1
        assert "run_id" in m and "warnings" not in m


class TestManifest:
    def test_unknown_keys_are_kept(self, tmp_path):
        save_manifest(tmp_path, Manifest.model_validate({"iterations": {}, "future_key": [1]}))
        assert json.loads((tmp_path / "manifest.json").read_text())["future_key"] == [1]

    def test_unset_optional_keys_are_not_written(self, tmp_path):
        m = Manifest(iterations={1: {"a": {"x": 1}}})
        assert not {"stop_reason", "run_id", "warnings", "review"} & set(m.to_json())
        m.mark(RunStatus.FAILED, "boom")
        assert m.to_json()["stop_reason"] == "boom" and m.to_json()["status"] == "failed"
        m.mark(RunStatus.RUNNING)
        assert "stop_reason" not in m.to_json()
        assert m.to_json()["iterations"] == {"1": {"a": {"x": 1}}}

    def test_continue_as_new_iteration(self):
        m = Manifest(
            status=RunStatus.FINISHED,
            stop_reason="done",
            iterations={1: {"a": {"i": 0}, "b": {"i": 5}}, 2: {"a": {"i": 1}, "b": None}},
        )
        assert continue_as_new_iteration(m, 2, ["a", "b"]) == 3
        assert m.configs(3) == {"a": {"i": 1}, "b": {"i": 5}}
        assert m.offset == 2 and m.status is RunStatus.RUNNING and m.stop_reason is None

    def test_guard_records(self):
        rec = {"iteration": 2, "stage": "merge", "detectors": "a,b", "candidate_id": "c1",
               "n_parts": 3, "span_m": 4000.0, "area_ha": 12.5, "region_share": None,
               "short": "c1: 3 parts", "message": "a,b: candidate c1 ..."}  # fmt: skip
        m = Manifest(warnings=[GuardRecord.model_validate(rec)])
        assert [w.candidate_id for w in m.guard_records(2)] == ["c1"] and not m.guard_records(1)
        assert m.to_json()["warnings"] == [rec]  # region_share null is written, as before

    def test_missing(self, tmp_path):
        assert read_manifest(tmp_path, missing_ok=True) == Manifest()
        with pytest.raises(InputError, match=r"no manifest\.json"):
            read_manifest(tmp_path)

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("{not json", r"run manifest is corrupt \(not JSON\)"),
            ("[1, 2]", r"run manifest is corrupt \(not a JSON object\)"),
            ('{"iterations": [1]}', r"run manifest is corrupt \(iterations: Input should be"),
            ('{"status": "paused"}', r"run manifest is corrupt \(status: Input should be"),
        ],
    )
    def test_corrupt_is_one_line(self, tmp_path, text, message):
        (tmp_path / "manifest.json").write_text(text)
        with pytest.raises(InputError, match=message) as err:
            read_manifest(tmp_path)
        assert "\n" not in str(err.value)
