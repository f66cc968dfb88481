"""The tokenize stage: corpus -> byte-level BPE tokenizer -> tokenized WebDataset shards.

Output layout::

    <out>/tokenizer/          Hugging Face tokenizer files (tokenizer.json, tokenizer_config.json, ...)
    <out>/train/, <out>/val/  shards of samples ``<key>.json.gz`` (seq_len + 1 token ids) + manifest.jsonl
    <out>/tokenize_stats.json counts and throughput
"""

from __future__ import annotations

import gzip
import json
import logging
import random
import tempfile
import time
from dataclasses import dataclass

from tqdm import tqdm

from vlaforge import storage
from vlaforge.data.corpus import load_corpus
from vlaforge.data.shards import ShardWriter

log = logging.getLogger(__name__)

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"


@dataclass
class TokenizeConfig:
    corpus: str = "builtin"  # "builtin", or a file/folder URI of .txt / .jsonl files
    text_field: str = "text"  # field of a .jsonl record holding the text
    robot_fraction: float = 0.1  # share of generated robot-task language mixed in
    tokenizer_path: str = ""  # an existing Hugging Face tokenizer (local path); empty = train BPE
    vocab_size: int = 2048
    min_frequency: int = 2
    seq_len: int = 128
    val_fraction: float = 0.05
    samples_per_shard: int = 2000
    seed: int = 0


def train_bpe(docs: list[str], vocab_size: int, min_frequency: int):
    """A byte-level BPE tokenizer trained on ``docs``, as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=[EOS_TOKEN, PAD_TOKEN],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(docs, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN,
                                   bos_token=EOS_TOKEN, unk_token=None, clean_up_tokenization_spaces=False)


def load_tokenizer(path: str):
    """A Hugging Face tokenizer from a local folder or a URI (downloaded to a temporary folder)."""
    from transformers import AutoTokenizer

    with storage.local_dir(path) as local:
        tok = AutoTokenizer.from_pretrained(local)
    if tok.eos_token is None:
        raise ValueError(f"tokenizer at {path} has no eos token")
    return tok


def split_documents(docs: list[str], val_fraction: float, seed: int) -> dict[str, list[str]]:
    """Validation and training texts: whole documents (seeded choice) when there are enough of them,
    else the last ``val_fraction`` of every document, cut at a line break (e.g. a corpus of one file)."""
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    n_val = int(len(docs) * val_fraction)
    if n_val >= 1:
        return {"val": [docs[i] for i in order[:n_val]], "train": [docs[i] for i in order[n_val:]]}
    splits: dict[str, list[str]] = {"val": [], "train": []}
    for doc in docs:
        cut = int(len(doc) * (1 - val_fraction))
        line_break = doc.rfind("\n", 0, cut)
        cut = line_break + 1 if line_break > cut // 2 else cut
        splits["train"].append(doc[:cut])
        splits["val"].append(doc[cut:])
    return splits


def tokenize_corpus(cfg: TokenizeConfig, out_uri: str) -> dict:
    """Run the stage: write tokenizer + shards under ``out_uri``; returns counts and throughput."""
    if cfg.seq_len < 2:
        raise ValueError(f"tokenize.seq_len must be >= 2, got {cfg.seq_len}")
    if not 0 < cfg.val_fraction < 1:
        raise ValueError(f"tokenize.val_fraction must be between 0 and 1, got {cfg.val_fraction}")
    docs = load_corpus(cfg.corpus, cfg.text_field, cfg.robot_fraction, cfg.seed)
    n_chars = sum(len(d) for d in docs)
    log.info("corpus %s: %d documents, %d characters", cfg.corpus, len(docs), n_chars)
    start = time.perf_counter()
    if cfg.tokenizer_path:
        tok = load_tokenizer(cfg.tokenizer_path)
    else:
        tok = train_bpe(docs, cfg.vocab_size, cfg.min_frequency)
        log.info("trained byte-level BPE: %d tokens in %.1fs", len(tok), time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        storage.upload_dir(tmp, storage.join(out_uri, "tokenizer"))

    splits = split_documents(docs, cfg.val_fraction, cfg.seed)
    window = cfg.seq_len + 1
    stats: dict = {"documents": len(docs), "characters": n_chars, "vocab_size": len(tok), "seq_len": cfg.seq_len}
    t0 = time.perf_counter()
    n_tokens = 0
    for split, texts in splits.items():
        buffer: list[int] = []
        n_samples = 0
        with ShardWriter(storage.join(out_uri, split), prefix=split,
                         samples_per_shard=cfg.samples_per_shard) as writer:
            for text in tqdm(texts, desc=f"tokenize {split}", unit="doc", mininterval=2.0):
                ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
                n_tokens += len(ids)
                buffer.extend(ids)
                while len(buffer) >= window:
                    payload = gzip.compress(json.dumps(buffer[:window]).encode(), mtime=0)
                    writer.write({"__key__": f"{split}{n_samples:08d}", "json.gz": payload})
                    buffer = buffer[window:]
                    n_samples += 1
        if n_samples == 0:
            raise ValueError(f"corpus {cfg.corpus} is too small: no {split} window of {window} tokens "
                             f"(lower tokenize.seq_len or tokenize.val_fraction)")
        stats[f"{split}_samples"] = n_samples
    elapsed = time.perf_counter() - t0
    stats.update(tokens=n_tokens, tokens_per_s=n_tokens / max(elapsed, 1e-9))
    log.info("tokenized %d tokens in %.1fs (%.0f tokens/s): %d train / %d val windows of %d",
             n_tokens, elapsed, stats["tokens_per_s"], stats["train_samples"], stats["val_samples"], window)
    storage.write_text(storage.join(out_uri, "tokenize_stats.json"), json.dumps(stats, indent=2))
    return stats
