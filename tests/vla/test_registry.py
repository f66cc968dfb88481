"""Backbones and expert heads by name (vlaforge.models.registry)."""

import json

import pytest

from vlaforge.models.heads import ActionExpert, ActionExpertConfig, MLPActionHead, VLMFeatureHead
from vlaforge.models.hf_vlm import HFVLMBackbone
from vlaforge.models.registry import BACKBONES, HEADS, Registry
from vlaforge.models.vla import VLA, load_backbone
from vlaforge.models.vlm_backbone import VLMBackbone


def test_built_in_backbones_and_heads_resolve_by_name():
    assert BACKBONES.names() == ["hf_vlm", "vlm"]
    assert BACKBONES.get("vlm") is VLMBackbone and BACKBONES.get("hf_vlm") is HFVLMBackbone
    assert HEADS.names() == ["mlp", "transformer", "vlm_mlp"]
    assert HEADS.get("transformer") is ActionExpert and HEADS.get("mlp") is MLPActionHead
    assert HEADS.get("vlm_mlp") is VLMFeatureHead


def test_a_registered_class_is_found_and_a_name_is_taken_once():
    registry = Registry("widget", ())

    @registry.register("plain")
    class Plain:
        pass

    assert registry.get("plain") is Plain
    assert registry.register("plain")(Plain) is Plain  # the same class again (a module re-imported) is fine
    with pytest.raises(ValueError, match="widget 'plain' is already registered by .*Plain"):
        registry.register("plain")(type("Other", (), {}))
    with pytest.raises(ValueError, match="unknown widget 'fancy'; known: plain"):
        registry.get("fancy")


def test_an_unknown_head_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown expert head 'conv'; known: mlp, transformer, vlm_mlp"):
        VLA(None, ActionExpertConfig(head="conv"), 4, 4, 1, 4)


def test_a_model_that_is_no_backbone_lists_the_known_ones(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"kind": "llm"}))
    with pytest.raises(ValueError, match=r"a 'llm' model cannot be a VLA backbone \(unknown backbone 'llm'; "
                                         r"known: hf_vlm, vlm\)"):
        load_backbone(str(tmp_path))
