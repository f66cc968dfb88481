"""Helpers of the component tests: the interface check, and tiny upstream artifacts written by the stages'
entry points (a few steps each)."""

import json
from pathlib import Path
from types import SimpleNamespace

import yaml
from kfp import compiler

from vlaforge.data.corpus import robot_sentences
from vlaforge.kube.images import image

# A few steps of a one-layer model: the components' plumbing, not what the models learn (tests/ checks that).
STEPS = ["train.max_steps=2", "train.val_every=2", "train.val_batches=1", "train.ckpt_every=2", "train.log_every=1",
         "train.warmup_steps=1", "train.global_batch_size=8", "train.micro_batch_size=8", "train.num_threads=1"]
LLM = ["model.d_model=32", "model.n_layers=1", "model.n_heads=2", *STEPS]
VLM = ["vit.image_size=32", "vit.patch_size=8", "vit.d_model=32", "vit.n_layers=1", "vit.n_heads=2", *STEPS]
VLA = ["expert.d_model=32", "expert.n_layers=1", "expert.n_heads=2", "expert.last_k_layers=1", *STEPS]


def write_upstream(root: Path) -> SimpleNamespace:
    """Paths of tiny stage outputs under ``root``: tokenize -> llm, captions -> vlm, demos -> robotics -> policy."""
    from vlaforge.stages import (caption_data, llm_pretrain, preprocess_robotics, record_demos, tokenize,
                                 vla_finetune, vlm_pretrain)

    out = SimpleNamespace(**{name: str(root / name) for name in
                             ("tok", "llm", "captions", "vlm", "demos", "robotics", "policy")})
    corpus = Path(root, "corpus.txt")
    corpus.write_text("\n".join(robot_sentences(300, seed=1)), encoding="utf-8")
    tokenize.run("tiny", [f"corpus={corpus}", "vocab_size=280", "seq_len=16", "robot_fraction=0"], out.tok)
    llm_pretrain.run("tiny", LLM, out.tok, out.llm)
    caption_data.run("tiny", ["tasks=[reach-v3]", "scenes_per_task=4", "cameras=[corner]", "image_size=32"],
                     out.captions)
    vlm_pretrain.run("tiny", VLM, out.llm, out.captions, out.vlm)
    record_demos.run("tiny", ["tasks=[reach-v3]", "episodes_per_task=2", "image_size=32", "workers=0"], out.demos)
    preprocess_robotics.run("tiny", ["num_workers=0", "val_fraction=0.5"], [out.demos], out.robotics)
    vla_finetune.run("tiny", VLA, out.vlm, out.robotics, out.policy)
    return out


def assert_interface(component, inputs: dict[str, str], outputs: dict[str, str], family: str, tmp_path: Path) -> None:
    """Input and output types as given, every input described (the KFP UI shows the docstring's Args), and the
    component compiled on its own runs in the ``family`` image with nothing pip-installed at run time."""
    spec = component.component_spec
    assert {k: v.type for k, v in spec.inputs.items()} == inputs
    assert {k: v.type for k, v in spec.outputs.items()} == outputs
    assert all(v.description for v in spec.inputs.values())
    compiler.Compiler().compile(component, str(tmp_path / "component.yaml"))
    (executor,) = yaml.safe_load((tmp_path / "component.yaml").read_text())["deploymentSpec"]["executors"].values()
    assert executor["container"]["image"] == image(family)
    assert "kfp-package" not in json.dumps(executor)
