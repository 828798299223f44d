"""The command line: one-line errors, config template, plugins/regions listings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from thawdetect.cli.main import cli


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


class TestErrors:
    def test_unknown_detector_lists_installed(self, tmp_path):
        msg = one_line_error(
            invoke(
                "run",
                "--detector",
                "nope",
                "--region",
                "qilian",
                "--output-dir",
                str(tmp_path / "r"),
            )
        )
        assert "unknown detector 'nope'; installed detectors:" in msg
        assert "insar_sbas" in msg and "optical_dl" in msg

    def test_unknown_region_lists_known(self, tmp_path):
        msg = one_line_error(
            invoke(
                "run",
                "--detector",
                "insar_sbas",
                "--region",
                "atlantis",
                "--output-dir",
                str(tmp_path / "r"),
            )
        )
        assert "unknown region 'atlantis'; known regions: beiluhe" in msg

    def test_config_typo_names_file_and_field(self, tmp_path):
        cfg = tmp_path / "run.yaml"
        cfg.write_text("region: qilian\nmax_iteration: 3\ndetectors:\n  insar_sbas: {}\n")
        msg = one_line_error(invoke("run", "--config", str(cfg), "--output-dir", str(tmp_path)))
        assert msg == f"Error: {cfg}: max_iteration: Extra inputs are not permitted"

    def test_config_bad_value(self, tmp_path):
        cfg = tmp_path / "run.yaml"
        cfg.write_text("region: qilian\nmin_mapping_unit_ha: -1\n")
        msg = one_line_error(invoke("run", "--config", str(cfg)))
        assert f"{cfg}: min_mapping_unit_ha: Input should be greater than or equal to 0" in msg

    def test_detector_section_typo(self, tmp_path):
        cfg = tmp_path / "run.yaml"
        cfg.write_text("region: qilian\ndetectors:\n  insar_sbas:\n    no_such_key_mm: 3\n")
        msg = one_line_error(
            invoke("run", "--config", str(cfg), "--output-dir", str(tmp_path / "r"))
        )
        assert (
            msg
            == f"Error: {cfg}: detectors.insar_sbas: no_such_key_mm: Extra inputs are not permitted"
        )

    def test_missing_config_file(self, tmp_path):
        msg = one_line_error(invoke("run", "--config", str(tmp_path / "none.yaml")))
        assert msg == f"Error: {tmp_path / 'none.yaml'}: config file does not exist"

    def test_not_yaml(self, tmp_path):
        cfg = tmp_path / "run.yaml"
        cfg.write_text("region: [qilian\n")
        msg = one_line_error(invoke("run", "--config", str(cfg)))
        assert f"{cfg}: is not valid YAML" in msg

    def test_no_detector(self, tmp_path):
        msg = one_line_error(invoke("run", "--region", "qilian", "--output-dir", str(tmp_path)))
        assert "no detector selected" in msg

    def test_status_of_non_run(self, tmp_path):
        msg = one_line_error(invoke("status", str(tmp_path)))
        assert "is not a thawdetect run directory" in msg

    def test_traceback_flag_reraises(self, tmp_path):
        from thawdetect.core.errors import InputError

        with pytest.raises(InputError):
            invoke("--traceback", "run", "--config", str(tmp_path / "none.yaml"))


class TestListings:
    def test_plugins_lists_builtins_json(self):
        result = invoke("plugins", "--json")
        assert result.exit_code == 0
        data = {p["name"]: p for p in json.loads(result.output)}
        for name in ("terrain", "insar_sbas", "optical_dl"):
            assert data[name]["distribution"] == "thawdetect"
        assert data["insar_sbas"]["detectors"] == ["insar_sbas"]
        assert data["optical_dl"]["dependencies_ok"] is True

    def test_plugins_table_and_regions(self):
        assert "insar_sbas" in invoke("plugins").output
        out = invoke("regions").output
        for name in ("qtec", "qilian", "beiluhe"):
            assert name in out

    def test_config_template_round_trips(self, tmp_path):
        result = invoke("config", "template", "--detector", "insar_sbas")
        assert result.exit_code == 0
        data = yaml.safe_load(result.output)
        assert data["region"] == "qilian"
        assert data["min_mapping_unit_ha"] == 0.05
        assert "insar_sbas" in data["detectors"]
        path = tmp_path / "run.yaml"
        path.write_text(result.output)
        from thawdetect.core.config import load_run_config

        cfg = load_run_config(path)
        from thawdetect.core.models import validate_section
        from thawdetect.core.plugin_api.host import PluginHost

        cls = PluginHost().detector("insar_sbas")
        validate_section(cls.config_model, cfg.detectors["insar_sbas"], "template")

    def test_help_has_examples(self):
        out = invoke("run", "--help").output
        assert "thawdetect run --detector insar_sbas --region qilian" in out


def test_console_script_runs(tmp_path):
    exe = Path(sys.executable).with_name("thawdetect")
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("thawdetect, version")
    bad = subprocess.run(
        [str(exe), "run", "--detector", "nope", "--region", "qilian"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert bad.returncode == 1
    assert bad.stderr.strip().count("\n") == 0 and "unknown detector 'nope'" in bad.stderr
