"""Helpers for the simulator tests that worker processes must be able to import."""

from vlaforge.sim.env import make_env


def reset_state(job: tuple[str, int]):
    """The full simulator state right after resetting ``task`` with ``seed``."""
    task, seed = job
    return make_env(task, [], 32).reset(seed).state


def die_on_three(job: int) -> int:
    """Kill this worker process outright for job 3, else return ``job * 10``."""
    if job == 3:
        import os

        os._exit(7)
    return job * 10


def fail_on_two(job: int) -> int:
    if job == 2:
        raise ValueError("job two is bad")
    return job * 10


def pretrain_vlm(root, tasks: list[str], cameras: list[str], image_size: int, scenes_per_task: int, llm_layers: int,
                 steps: int, warmup_steps: int = 2, conv_stem: bool = False) -> str:
    """Captions of ``tasks`` -> tokenizer -> tiny LLM -> tiny VLM under ``root``; returns the VLM folder."""
    from vlaforge.data.tokenize import TokenizeConfig, tokenize_corpus
    from vlaforge.models.llm import LLMConfig
    from vlaforge.models.vit import ViTConfig
    from vlaforge.sim.env import TASKS
    from vlaforge.sim.scene_captions import CaptionConfig, make_caption_data
    from vlaforge.stages.llm_pretrain import LLMStageConfig, llm_pretrain
    from vlaforge.stages.vlm_pretrain import VLMStageConfig, vlm_pretrain
    from vlaforge.train.config import TrainConfig

    train = TrainConfig(global_batch_size=16, micro_batch_size=16, lr=3e-3, warmup_steps=warmup_steps,
                        max_steps=steps, val_every=steps, ckpt_every=10_000, log_every=steps)
    make_caption_data(CaptionConfig(tasks=tasks, scenes_per_task=scenes_per_task, cameras=cameras,
                                    image_size=image_size), str(root / "captions"))
    (root / "corpus").mkdir()
    for i in range(6):
        (root / "corpus" / f"d{i}.txt").write_text(" ".join(t.instruction + "." for t in TASKS.values()) * 20)
    tokenize_corpus(TokenizeConfig(corpus=str(root / "corpus"), robot_fraction=0.0, vocab_size=300, seq_len=32,
                                   val_fraction=0.2), str(root / "tok"))
    llm_pretrain(LLMStageConfig(model=LLMConfig(d_model=32, n_layers=llm_layers, n_heads=2, max_seq_len=128),
                                train=train), str(root / "tok"), str(root / "llm"))
    vit = ViTConfig(image_size=image_size, patch_size=8, d_model=32, n_layers=1, n_heads=2, conv_stem=conv_stem)
    vlm_pretrain(VLMStageConfig(vit=vit, train=train), str(root / "llm"), str(root / "captions"), str(root / "vlm"))
    return str(root / "vlm")
