"""The llm_pretrain stage: a from-scratch decoder on tokenized shards, through the shared loop.

Output (a Model artifact folder): ``model.safetensors``, ``config.json`` (``{"kind": "llm", "model":
{...}, "tokenizer": "tokenizer"}``), ``tokenizer/``, ``metrics.jsonl``, ``train_summary.json``,
``checkpoints/``.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

import torch

from vlaforge import storage
from vlaforge.artifacts import check_input, check_output
from vlaforge.config import load
from vlaforge.data.mixture import Mixture, MixtureSource, check_weights
from vlaforge.data.text_shards import TokenWindows
from vlaforge.data.tokenize import load_tokenizer
from vlaforge.models.llm import LLMConfig, Transformer
from vlaforge.stages import write_summary
from vlaforge.train import checkpoint as ckpt
from vlaforge.train.config import TrainConfig
from vlaforge.train.loop import train

log = logging.getLogger(__name__)


@dataclass
class LLMStageConfig:
    model: LLMConfig = field(default_factory=LLMConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample_prompt: str = "The robot"  # prompt of the sample generation printed at the end
    data_weight: float = 1.0  # sampling weight of the input dataset when mixture lists more
    mixture: list[MixtureSource] = field(default_factory=list)  # more tokenized datasets (same tokenizer), weighted


class TextTask:
    """Next-token prediction on windows of ``seq_len + 1`` tokens, from one dataset or a weighted mixture."""

    stage = "llm_pretrain"

    def __init__(self, data_uri: str, seed: int, mixture: list[MixtureSource] = (), data_weight: float = 1.0):
        self.train_data = TokenWindows(storage.join(data_uri, "train"), seed)
        self.val_data = TokenWindows(storage.join(data_uri, "val"), seed)
        self.tokens_per_sample = self.train_data.seq_len
        self.mixture = None
        if mixture:
            weights = check_weights([data_weight] + [m.weight for m in mixture], "llm.data_weight/llm.mixture")
            sources = [self.train_data] + [mixture_source(data_uri, m.uri, f"llm.mixture[{i}].uri", seed)
                                           for i, m in enumerate(mixture)]
            for i, windows in enumerate(sources[1:]):
                if windows.seq_len != self.tokens_per_sample:
                    raise ValueError(f"llm.mixture[{i}].uri: windows of {windows.seq_len} tokens, the input "
                                     f"dataset's are {self.tokens_per_sample}")
            self.mixture = Mixture(lambda j, start: sources[j].stream(start), weights, seed)

    def train_batches(self, start_sample, rank, world, micro_batch):
        if self.mixture is None:
            return self.train_data.batches(micro_batch, start_sample, rank, world)
        stream = self.mixture.stream(start_sample, rank, world)
        return iter(lambda: torch.tensor([next(stream) for _ in range(micro_batch)], dtype=torch.long), None)

    def val_batches(self, micro_batch):
        return self.val_data.batches(micro_batch, shuffle=False)

    def loss(self, model, batch):
        return model(batch[:, :-1], batch[:, 1:])


def mixture_source(data_uri: str, uri: str, key: str, seed: int) -> TokenWindows:
    """The train split of another tokenize output, checked to use the input dataset's tokenizer."""
    if not uri or not storage.exists(storage.join(uri, "train")):
        raise FileNotFoundError(f"{key}: no tokenized dataset at {uri!r} (expected a tokenize stage output "
                                f"with a train/ split)")
    vocab = [storage.join(u, "tokenizer", "tokenizer.json") for u in (data_uri, uri)]
    if all(storage.exists(v) for v in vocab) and storage.read_bytes(vocab[0]) != storage.read_bytes(vocab[1]):
        raise ValueError(f"{key}: {uri} was tokenized with another tokenizer than the input dataset {data_uri}")
    return TokenWindows(storage.join(uri, "train"), seed)


def load_llm(uri: str) -> tuple[Transformer, dict]:
    """An LLM (weights + config) written by this stage, and its config mapping."""
    config = ckpt.read_config(uri)
    if config.get("kind") != "llm":
        raise ValueError(f"{uri} holds a '{config.get('kind')}' model, expected an llm_pretrain output")
    model = Transformer(LLMConfig(**config["model"]))
    ckpt.load_weights(model, uri)
    return model, config


def llm_pretrain(cfg: LLMStageConfig, data_uri: str, out_uri: str) -> dict:
    """Train the LLM on the tokenize stage's output at ``data_uri``; write the model to ``out_uri``."""
    tokenizer = load_tokenizer(storage.join(data_uri, "tokenizer"))
    torch.manual_seed(cfg.train.seed)
    task = TextTask(data_uri, cfg.train.seed, cfg.mixture, cfg.data_weight)
    model_cfg = dataclasses.replace(cfg.model, vocab_size=len(tokenizer),
                                    max_seq_len=max(cfg.model.max_seq_len, task.tokens_per_sample))
    model = Transformer(model_cfg)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("LLM: %.2fM parameters, %d layers, d=%d, vocab %d", n_params / 1e6, model_cfg.n_layers,
             model_cfg.d_model, model_cfg.vocab_size)
    config = {"kind": "llm", "model": dataclasses.asdict(model_cfg), "tokenizer": "tokenizer",
              "train": dataclasses.asdict(cfg.train), "data": data_uri}
    summary = train(model, task, cfg.train, out_uri, config)
    if summary:
        storage.copy_dir(storage.join(data_uri, "tokenizer"), storage.join(out_uri, "tokenizer"))
        summary["parameters"] = n_params
        if cfg.train.strategy == "fsdp":  # the trained model here is sharded: read back the written one
            model, _ = load_llm(out_uri)
        summary["sample"] = sample_text(model.cpu().eval(), tokenizer, cfg.sample_prompt)
        log.info("sample: %r", summary["sample"])
        write_summary(out_uri, summary)
    return summary


def sample_text(model: Transformer, tokenizer, prompt: str, max_new_tokens: int = 32) -> str:
    ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]], dtype=torch.long)
    out = model.generate(ids, max_new_tokens, eos_id=tokenizer.eos_token_id)
    return tokenizer.decode(out[0].tolist(), skip_special_tokens=True)


def run(preset: str, overrides: str | list[str] | None, data_uri: str, out_uri: str) -> dict:
    """Stage entry point (CLI and component): the ``llm`` section of ``preset`` + overrides."""
    cfg = load(LLMStageConfig, preset, overrides, "llm")
    check_output(out_uri, "llm_pretrain")
    check_input(data_uri, "tokenized", "llm_pretrain data")
    for i, source in enumerate(cfg.mixture):
        check_input(source.uri, "tokenized", f"llm.mixture[{i}].uri")
    return llm_pretrain(cfg, data_uri, out_uri)
