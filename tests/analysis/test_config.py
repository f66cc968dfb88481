"""The step_analysis settings: preset section, overrides, `vlaforge run` sections and the pipelines' parameter."""

import pytest
import yaml

from vlaforge.analysis.run import load_config
from vlaforge.config import ConfigError


def test_preset_section_and_overrides():
    cfg = load_config("tiny")
    assert (cfg.alpha, cfg.guarantee, cfg.crashed, cfg.seed) == (0.05, "two-sided", "failure", 0)
    cfg = load_config("metaworld4", "guarantee=per-direction\ncrashed=refuse;alpha=0.1")
    assert (cfg.alpha, cfg.guarantee, cfg.crashed) == (0.1, "per-direction", "refuse")


@pytest.mark.parametrize("override, message", [
    ("guarantee=reference", "step_analysis.guarantee must be one of two-sided, per-direction"),
    ("crashed=skip", "step_analysis.crashed must be one of failure, refuse"),
    ("alpha=1.5", "step_analysis.alpha must lie in"),
    ("guarante=two-sided", "unknown key 'step_analysis.guarante'"),
])
def test_bad_settings_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("tiny", override)


def test_vlaforge_run_hands_the_section_to_step_analysis():
    from pipelines.full import STAGE_SECTIONS
    from vlaforge.run import resolve

    assert STAGE_SECTIONS["step_analysis"] == "step_analysis"
    section = resolve("tiny", ["step_analysis.guarantee=per-direction"])["step_analysis"]
    assert load_config("tiny", section).guarantee == "per-direction"
    assert 'crashed="failure"' in section.splitlines()


@pytest.mark.parametrize("name", ["vlaforge-full", "vlaforge-from-hf-vlm", "vlaforge-vla-from-vlm",
                                  "vlaforge-eval-compare"])
def test_compiled_pipelines_expose_step_analysis_overrides(name):
    from pathlib import Path

    spec, *_ = yaml.safe_load_all((Path(__file__).resolve().parents[2] / "pipelines" / "compiled" / f"{name}.yaml")
                                  .read_text())
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["step_analysis_overrides"]["defaultValue"] == ""
    assert "guarantee=per-direction" in params["step_analysis_overrides"]["description"]
