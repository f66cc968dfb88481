"""Typed configuration: dataclasses filled from YAML presets and ``key.sub=value`` overrides.

Unknown or misspelled keys, values of the wrong type and numbers outside their key's range
(:data:`LIMITS`: signs, fractions, ports, worker counts; NaN and infinities anywhere) are errors that
name the key and the file they came from; nothing is dropped silently.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

PRESET_DIR = Path(__file__).parent / "presets"
T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or key is wrong; the message names key and source."""


@dataclasses.dataclass(frozen=True)
class Limit:
    """The allowed range of a numeric setting: ``low`` / ``high`` inclusive unless ``*_open``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def violated(self, value: float) -> str:
        """What the value must be, when it is outside the range; else an empty string."""
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if not (too_low or too_high):
            return ""
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return (f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}")


POSITIVE, NON_NEGATIVE, FRACTION = Limit(0, low_open=True), Limit(0), Limit(0, 1)
# Ranges of numeric settings by key name, wherever the key appears (every stage section, serve, analysis);
# a config class checks what depends on other keys (and serve its own limits) in __post_init__/validate.
LIMITS: dict[str, Limit] = {
    **dict.fromkeys(["lr", "global_batch_size", "micro_batch_size", "val_every", "ckpt_every", "log_every",
                     "ckpt_retries", "d_model", "n_heads", "n_layers", "patch_size", "pixel_shuffle", "mlp_ratio",
                     "mlp_width", "map_channels", "norm_eps", "rope_theta", "max_seq_len", "seq_len",
                     "samples_per_shard", "flow_steps", "execute_steps", "last_k_layers", "future_steps",
                     "max_caption_tokens", "max_expert_steps", "scenes_per_task", "episodes_per_task",
                     "external_timeout_s", "video_fps",
                     "action_scale"], POSITIVE),
    **dict.fromkeys(["max_steps", "budget_tokens", "budget_samples", "max_minutes", "warmup_steps",
                     "weight_decay", "grad_clip", "num_threads", "val_batches", "keep_checkpoints", "seed",
                     "workers", "num_workers", "image_size", "shuffle_buffer", "image_shift", "d_ff", "n_kv_heads",
                     "vocab_size", "proprio_dim", "action_dim", "action_noise", "max_sample_size_per_model",
                     "videos_per_task", "steps_after_success", "data_weight", "past_steps", "min_frequency",
                     "gripper_open", "weight"], NON_NEGATIVE),
    **dict.fromkeys(["min_lr_ratio", "val_fraction", "robot_fraction"], FRACTION),
    **dict.fromkeys(["beta1", "beta2", "ema_decay"], Limit(0, 1, high_open=True)),
    "jpeg_quality": Limit(1, 100),
    "policy_port": Limit(0, 65535),  # 0: any free port
}


def check_limit(key: str, value: Any, source: str) -> None:
    """Raise :class:`ConfigError` naming ``key`` when the number ``value`` is NaN, infinite or out of range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{source}: '{key}' must be a finite number, got {value!r}")
    limit = LIMITS.get(key.rsplit(".", 1)[-1].split("[", 1)[0])
    wanted = limit.violated(value) if limit else ""
    if wanted:
        raise ConfigError(f"{source}: '{key}' must be {wanted}, got {value!r}")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _yaml11_number(value: Any) -> Any:
    """YAML 1.1 reads ``3e-4`` or ``1e+30`` (no dot) as a string; a number field takes the number it spells."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{key}' must be a mapping, got {value!r}")
        return from_dict(tp, value, source, prefix=key + ".")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, source)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[-1] if errors else f"{source}: bad value for '{key}'")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: '{key}' must be a list, got {value!r}")
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        items = [_coerce(v, item_tp, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{key}' must be a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{source}: '{key}' must be true/false, got {value!r}")
    if tp in (int, float):
        value = _yaml11_number(value)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            check_limit(key, float(value), source)
            return float(value)
        raise ConfigError(f"{source}: '{key}' must be a number, got {value!r}")
    if tp is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            check_limit(key, value, source)
            return value
        raise ConfigError(f"{source}: '{key}' must be an integer, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{source}: '{key}' must be a string, got {value!r}")
    raise ConfigError(f"{source}: '{key}' has unsupported type {_type_name(tp)}")


def from_dict(cls: type[T], data: dict, source: str = "<dict>", prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys raise :class:`ConfigError`."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            raise ConfigError(f"{source}: unknown key '{prefix}{key}'{hint}; "
                              f"known keys: {', '.join(sorted(fields))}")
    kwargs = {name: _coerce(value, hints[name], prefix + name, source) for name, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"{source}: {prefix or cls.__name__}: {err}") from err


def to_dict(obj: Any) -> Any:
    return dataclasses.asdict(obj)


def merge(base: dict, over: dict) -> dict:
    """Mappings merged key by key (recursively); anything else in ``over`` replaces."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def named_yaml(name_or_path: str, directory: Path, what: str) -> Path:
    """A name resolves to ``<directory>/<name>.yaml``; a ``.yaml``/``.yml`` path is used as is."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(f"{what} file not found: {path}")
        return path
    path = directory / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in directory.glob("*.yaml"))
        raise ConfigError(f"unknown {what} '{name_or_path}'; known {what}s: {', '.join(known)}")
    return path


def preset_path(name_or_path: str) -> Path:
    """A preset name (``tiny``) resolves to the packaged YAML; anything else is a file path."""
    return named_yaml(name_or_path, PRESET_DIR, "preset")


def load_preset_dict(name_or_path: str) -> tuple[dict, str]:
    """The merged mapping of a preset (following ``extends:``) and a description of its files."""
    path = preset_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a preset must be a mapping")
    parent = data.pop("extends", None)
    if parent is None:
        return data, str(path)
    base, base_src = load_preset_dict(parent)
    return merge(base, data), f"{path} (extends {base_src})"


def parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"override '{item}' must look like key.sub=value")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    out = merge({}, data)
    for item in overrides:
        keys, value = parse_override(item)
        node = out
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}': '{k}' is not a section")
        node[keys[-1]] = value
    return out


def split_overrides(overrides: str | list[str] | None) -> list[str]:
    """Overrides from a component parameter: a list, or one string separated by newlines/semicolons."""
    if not overrides:
        return []
    if isinstance(overrides, str):
        overrides = overrides.replace(";", "\n").splitlines()
    return [o.strip() for o in overrides if o.strip()]


def load(cls: type[T], preset: str, overrides: str | list[str] | None = None,
         section: str | None = None) -> T:
    """Config ``cls`` from a preset (or one ``section`` of it) with overrides applied on top."""
    data, source = load_preset_dict(preset)
    if section is not None:
        if section not in data:
            raise ConfigError(f"{source}: preset has no section '{section}'")
        data = data[section] or {}
    items = split_overrides(overrides)
    if items:
        source = f"{source} with overrides {items}"
    return from_dict(cls, apply_overrides(data, items), source, prefix=f"{section}." if section else "")
