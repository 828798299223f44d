"""Input or output is decided by a config field's type (issue 22): ``OutputPath`` fields are
written by the detector and need not exist; every other path must."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from thawdetect import DetectorConfig, InputPath, OutputPath
from thawdetect.core.run.manifest import missing_input_files


class Section(DetectorConfig):
    scratch: OutputPath | None = Field(None, description="the detector writes here")
    results: OutputPath = Path("nowhere/results")
    flagged: Path | None = Field(None, json_schema_extra={"output": True})
    legacy_work_dir: Path | None = None  # untyped: the old name rule still applies
    raster: InputPath | None = None
    plain: Path | None = None


def test_outputs_by_type_inputs_checked(tmp_path):
    cfg = Section(
        scratch=tmp_path / "a",
        flagged=tmp_path / "b",
        legacy_work_dir=tmp_path / "c",
        raster=tmp_path / "in.tif",
        plain=tmp_path / "in.gpkg",
    )
    assert missing_input_files(cfg) == [("raster", tmp_path / "in.tif"),
                                        ("plain", tmp_path / "in.gpkg")]  # fmt: skip
    # the type changes nothing else: the YAML holds the same text
    assert cfg.model_dump(mode="json")["scratch"] == str(tmp_path / "a")
