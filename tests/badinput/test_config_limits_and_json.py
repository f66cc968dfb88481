"""Settings out of range are errors naming the key when the config is read; summaries and metrics are
strict JSON (a NaN loss is written as null, never as a bare NaN)."""

import json
import math

import pytest

from vlaforge.config import LIMITS, ConfigError, load
from vlaforge.data.tokenize import TokenizeConfig
from vlaforge.serve.server import load_serve_config
from vlaforge.sim.evaluate import EvalConfig
from vlaforge.stages.llm_pretrain import LLMStageConfig
from vlaforge.stages.vla_finetune import VLAStageConfig
from vlaforge.strict_json import dumps, finite
from vlaforge.train.metrics import MetricsLogger
from vlaforge.train.summary import write_summary


def _strict(text: str):
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("cls, section, override, message", [
    (LLMStageConfig, "llm", "train.max_steps=-5", "'llm.train.max_steps' must be >= 0, got -5"),
    (LLMStageConfig, "llm", "train.lr=-3e-4", "'llm.train.lr' must be > 0, got -0.0003"),
    (LLMStageConfig, "llm", "train.lr=.nan", "'llm.train.lr' must be a finite number"),
    (LLMStageConfig, "llm", "train.beta2=1.0", r"'llm.train.beta2' must be in \[0, 1\)"),
    (LLMStageConfig, "llm", "model.n_heads=0", "'llm.model.n_heads' must be > 0"),
    (LLMStageConfig, "llm", "mixture=[{uri: x, weight: -1}]", r"'llm.mixture\[0\].weight' must be >= 0"),
    (VLAStageConfig, "vla", "num_workers=-2", "'vla.num_workers' must be >= 0"),
    (VLAStageConfig, "vla", "train.max_minutes=.inf", "'vla.train.max_minutes' must be a finite number"),
    (EvalConfig, "sim_eval", "workers=-1", "'sim_eval.workers' must be >= 0, got -1"),
    (EvalConfig, "sim_eval", "policy_port=99999", r"'sim_eval.policy_port' must be in \[0, 65535\], got 99999"),
    (EvalConfig, "sim_eval", "policy_port=-1", r"'sim_eval.policy_port' must be in \[0, 65535\]"),
    (TokenizeConfig, "tokenize", "robot_fraction=1.5", r"'tokenize.robot_fraction' must be in \[0, 1\]"),
])
def test_out_of_range_settings_name_the_key(cls, section, override, message):
    with pytest.raises(ConfigError, match=message):
        load(cls, "tiny", [override], section)


def test_limits_name_real_settings_and_presets_keep_them():
    """Every limited key is a field of some config, and every packaged preset lies within the limits."""
    import dataclasses
    import importlib

    from vlaforge.config import PRESET_DIR, load_preset_dict
    from vlaforge.run import SECTIONS

    fields = set()
    classes = {section: getattr(importlib.import_module(ref.split(":")[0]), ref.split(":")[1])
               for section, ref in SECTIONS.items()}

    def collect(cls):
        for f in dataclasses.fields(cls):
            fields.add(f.name)
            for tp in [f.type] if isinstance(f.type, type) else []:
                if dataclasses.is_dataclass(tp):
                    collect(tp)

    for cls in classes.values():
        collect(cls)
    for sub in ("vlaforge.train.config:TrainConfig", "vlaforge.models.llm:LLMConfig", "vlaforge.models.vit:ViTConfig",
                "vlaforge.models.heads:ActionExpertConfig", "vlaforge.serve.mapping:MappingConfig",
                "vlaforge.data.mixture:MixtureSource", "vlaforge.serve.server:ServeConfig"):
        module, name = sub.split(":")
        collect(getattr(importlib.import_module(module), name))
    assert set(LIMITS) <= fields
    for preset in sorted(p.stem for p in PRESET_DIR.glob("*.yaml")):
        data, _ = load_preset_dict(preset)
        for section, cls in classes.items():
            if section in data:
                load(cls, preset, [], section)


def test_serve_settings_keep_their_own_checks():
    with pytest.raises(ConfigError, match="serve.max_batch must be at least 1, got 0"):
        load_serve_config("tiny", ["max_batch=0"])


def test_strict_json_writes_null_for_non_finite_numbers():
    value = {"loss": float("nan"), "rows": [1.5, float("inf"), (float("-inf"), 2)], "name": "x", "n": 3}
    assert _strict(dumps(value)) == {"loss": None, "rows": [1.5, None, [None, 2]], "name": "x", "n": 3}
    assert finite(math.nan) is None and finite(True) is True


def test_summary_and_metrics_files_are_strict_json(tmp_path):
    write_summary(str(tmp_path), {"final_loss": float("nan"), "steps": 0})
    assert _strict((tmp_path / "train_summary.json").read_text()) == {"final_loss": None, "steps": 0}
    metrics = MetricsLogger("llm_pretrain", str(tmp_path))
    metrics.log(1, {"loss": float("nan"), "lr": 1e-3})
    metrics.flush()
    rows = [_strict(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows and rows[-1]["loss"] is None
