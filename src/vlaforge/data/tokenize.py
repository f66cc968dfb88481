"""The tokenize stage: corpus -> byte-level BPE tokenizer -> tokenized WebDataset shards.

Output layout::

    <out>/tokenizer/          Hugging Face tokenizer files (tokenizer.json, tokenizer_config.json, ...)
    <out>/train/, <out>/val/  shards of samples ``<key>.json.gz`` (seq_len + 1 token ids) + manifest.jsonl
    <out>/tokenize_stats.json counts and throughput

Three steps, which a fanned-out pipeline runs as separate tasks (docs/fanout.md) and
:func:`tokenize_corpus` runs in one process: :func:`prepare_tokenizer` trains (or loads) the tokenizer on
the whole corpus and lists its input files; :func:`tokenize_part` tokenizes the documents of one group of
input files (``part``), each document whole or cut into its train and val pieces; :func:`pack_parts`
packs the parts' documents, in the split's seeded order, into windows of ``seq_len + 1`` tokens (windows
cross document and file boundaries) and writes the shards. Packing only reads finished token ids, so
any grouping of the files gives the same shards.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import logging
import random
import tempfile
import time
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from vlaforge import storage
from vlaforge.data.corpus import corpus_files, file_documents, robot_documents
from vlaforge.data.shards import ShardWriter
from vlaforge.fanout import part_range

log = logging.getLogger(__name__)

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
CORPUS_FILE = "corpus.json"  # beside the tokenizer: the input files and their document counts
PART_FILE = "part.json"  # a tokenized part: its files, token count and seconds
SPLITS = ("val", "train")


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
    part: str = ""  # "k/n": tokenize the k-th of n groups of the corpus's input files (a fan-out slice); "": all


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


def split_indices(n_docs: int, val_fraction: float, seed: int) -> dict[str, list[int]] | None:
    """Document indices of each split: a seeded choice of whole documents, or None when fewer than one
    document would go to validation (then every document's tail is validation: :func:`split_text`)."""
    order = list(range(n_docs))
    random.Random(seed).shuffle(order)
    n_val = int(n_docs * val_fraction)
    return {"val": order[:n_val], "train": order[n_val:]} if n_val >= 1 else None


def split_text(doc: str, val_fraction: float) -> dict[str, str]:
    """A document's training text and, after it, its last ``val_fraction`` cut at a line break."""
    cut = int(len(doc) * (1 - val_fraction))
    line_break = doc.rfind("\n", 0, cut)
    cut = line_break + 1 if line_break > cut // 2 else cut
    return {"val": doc[cut:], "train": doc[:cut]}


def _check(cfg: TokenizeConfig) -> None:
    if cfg.seq_len < 2:
        raise ValueError(f"tokenize.seq_len must be >= 2, got {cfg.seq_len}")
    if not 0 < cfg.val_fraction < 1:
        raise ValueError(f"tokenize.val_fraction must be between 0 and 1, got {cfg.val_fraction}")


def prepare_tokenizer(cfg: TokenizeConfig, out_uri: str) -> dict:
    """Train a BPE tokenizer on the whole corpus (or load ``tokenizer_path``) into ``<out>/tokenizer`` and
    write ``<out>/corpus.json``: the input files, their document counts and the character counts."""
    _check(cfg)
    files = corpus_files(cfg.corpus)
    per_file = [file_documents(f, cfg.text_field) for f in files]
    docs = [d for file_docs in per_file for d in file_docs]
    if not docs:
        raise ValueError(f"corpus {cfg.corpus} is empty: no non-blank documents")
    corpus_chars = sum(len(d) for d in docs)
    docs += robot_documents(corpus_chars, cfg.robot_fraction, cfg.seed)
    log.info("corpus %s: %d files, %d documents, %d characters", cfg.corpus, len(files), len(docs),
             sum(len(d) for d in docs))
    start = time.perf_counter()
    if cfg.tokenizer_path:
        tok = load_tokenizer(cfg.tokenizer_path)
    else:
        tok = train_bpe(docs, cfg.vocab_size, cfg.min_frequency)
        log.info("trained byte-level BPE: %d tokens in %.1fs", len(tok), time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        backend = _backend_encoder(tmp, tok, docs[:3])
        storage.upload_dir(tmp, storage.join(out_uri, "tokenizer"))
    corpus = {"corpus": cfg.corpus, "files": files, "file_documents": [len(d) for d in per_file],
              "corpus_characters": corpus_chars, "documents": len(docs), "characters": sum(len(d) for d in docs),
              "vocab_size": len(tok), "eos_token_id": tok.eos_token_id, "backend_encoder": backend}
    storage.write_text(storage.join(out_uri, CORPUS_FILE), json.dumps(corpus, indent=1))
    return corpus


def _backend(folder: str):
    """The tokenizers-library tokenizer of a saved fast tokenizer (``tokenizer.json``), no truncation or padding."""
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(storage.read_text(storage.join(folder, "tokenizer.json")))
    backend.no_truncation()
    backend.no_padding()
    return backend


def _backend_encoder(folder: str, tok, samples: list[str]) -> bool:
    """Whether the tokenizers library alone, on the saved ``tokenizer.json``, gives ``tok``'s ids (checked on
    the start of ``samples``): then the tokenize slices use it and skip importing transformers."""
    if not storage.exists(storage.join(folder, "tokenizer.json")):
        return False
    backend = _backend(folder)
    return all(backend.encode(text[:4000], add_special_tokens=False).ids ==
               tok(text[:4000], add_special_tokens=False)["input_ids"] for text in samples)


def _encoder(tokenizer_uri: str, backend: bool):
    """Text -> ids without special tokens, with the tokenizer :func:`prepare_tokenizer` saved."""
    if backend:
        tokenizer = _backend(tokenizer_uri)
        return lambda text: tokenizer.encode(text, add_special_tokens=False).ids
    tok = load_tokenizer(tokenizer_uri)
    return lambda text: tok(text, add_special_tokens=False)["input_ids"]


def _save_arrays(uri: str, arrays: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    storage.write_bytes(uri, buffer.getvalue())


def tokenize_part(cfg: TokenizeConfig, tokenizer_uri: str, out_uri: str) -> dict:
    """Tokenize the documents of the input files ``cfg.part`` selects (the generated robot language goes
    with the last files), with the tokenizer :func:`prepare_tokenizer` wrote to ``tokenizer_uri``.

    Writes ``<out>/<split>.npz`` (``ids``: every document's tokens and EOS, concatenated; ``docs``: their
    corpus-wide indices; ``lengths``), ``part.json`` and a copy of the tokenizer; returns ``part.json``.
    """
    _check(cfg)
    corpus = json.loads(storage.read_text(storage.join(tokenizer_uri, CORPUS_FILE)))
    files, counts = corpus["files"], corpus["file_documents"]
    mine = part_range(cfg.part, len(files), "tokenize_slices", "corpus files")
    docs = [d for f in files[mine.start:mine.stop] for d in file_documents(f, cfg.text_field)]
    if len(docs) != sum(counts[mine.start:mine.stop]):
        raise ValueError(f"corpus {cfg.corpus} changed since its tokenizer was trained: files {mine.start}:{mine.stop} "
                         f"hold {len(docs)} documents, {CORPUS_FILE} says {sum(counts[mine.start:mine.stop])}")
    if mine.stop == len(files):
        docs += robot_documents(corpus["corpus_characters"], cfg.robot_fraction, cfg.seed)
    splits = split_indices(corpus["documents"], cfg.val_fraction, cfg.seed)
    val = set(splits["val"]) if splits else set()
    encode = _encoder(storage.join(tokenizer_uri, "tokenizer"), corpus["backend_encoder"])
    out: dict[str, dict[str, list]] = {split: {"ids": [], "docs": [], "lengths": []} for split in SPLITS}
    start = time.perf_counter()
    first = sum(counts[:mine.start])
    for index, doc in enumerate(tqdm(docs, desc=f"tokenize files {mine.start}:{mine.stop}", unit="doc",
                                     mininterval=2.0), first):
        pieces = split_text(doc, cfg.val_fraction) if splits is None else {"val" if index in val else "train": doc}
        for split, text in pieces.items():
            ids = encode(text) + [corpus["eos_token_id"]]
            out[split]["ids"] += ids
            out[split]["docs"].append(index)
            out[split]["lengths"].append(len(ids))
    seconds = time.perf_counter() - start
    for split, arrays in out.items():
        _save_arrays(storage.join(out_uri, f"{split}.npz"), {"ids": np.array(arrays["ids"], np.int32),
                                                             "docs": np.array(arrays["docs"], np.int64),
                                                             "lengths": np.array(arrays["lengths"], np.int64)})
    storage.copy_dir(storage.join(tokenizer_uri, "tokenizer"), storage.join(out_uri, "tokenizer"))
    tokens = sum(len(arrays["ids"]) for arrays in out.values())
    part = {"files": [mine.start, mine.stop], "documents": corpus["documents"], "characters": corpus["characters"],
            "vocab_size": corpus["vocab_size"], "tokens": tokens, "seconds": round(seconds, 3)}
    storage.write_text(storage.join(out_uri, PART_FILE), json.dumps(part, indent=1))
    log.info("tokenized files %d:%d (%d documents): %d tokens in %.1fs", mine.start, mine.stop, len(docs), tokens,
             seconds)
    return part


def _split_tokens(split: str, part_uris: list[str], order: list[int] | None) -> np.ndarray:
    """The tokens of a split's documents from every part, in ``order`` (None: corpus order)."""
    ids, docs, lengths = [], [], []
    for uri in part_uris:
        with np.load(io.BytesIO(storage.read_bytes(storage.join(uri, f"{split}.npz")))) as arrays:
            ids.append(arrays["ids"])
            docs.append(arrays["docs"])
            lengths.append(arrays["lengths"])
    ids, docs, lengths = np.concatenate(ids), np.concatenate(docs), np.concatenate(lengths)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    where = dict(zip(docs.tolist(), range(len(docs))))
    wanted = sorted(where) if order is None else order
    missing = [d for d in wanted if d not in where]
    if missing or len(where) != len(docs) or len(wanted) != len(docs):
        raise ValueError(f"tokenized parts {part_uris} do not hold each {split} document once "
                         f"(missing {missing[:5]}, {len(docs)} held, {len(wanted)} expected)")
    picks = [where[d] for d in wanted]
    return np.concatenate([ids[starts[i]:starts[i] + lengths[i]] for i in picks]) if picks else ids[:0]


def pack_parts(cfg: TokenizeConfig, part_uris: list[str], out_uri: str) -> dict:
    """The tokenized parts (in file order) packed into the stage's shards, tokenizer and ``tokenize_stats.json``
    under ``out_uri``; returns the stats."""
    parts = [json.loads(storage.read_text(storage.join(uri, PART_FILE))) for uri in part_uris]
    covered = [f for p in parts for f in range(*p["files"])]
    if covered != list(range(len(covered))):
        raise ValueError(f"tokenized parts {part_uris} do not cover the corpus files in order: {[p['files'] for p in parts]}")
    first = parts[0]
    storage.copy_dir(storage.join(part_uris[0], "tokenizer"), storage.join(out_uri, "tokenizer"))
    splits = split_indices(first["documents"], cfg.val_fraction, cfg.seed)
    window = cfg.seq_len + 1
    stats: dict = {key: first[key] for key in ("documents", "characters", "vocab_size")}
    stats["seq_len"] = cfg.seq_len
    for split in SPLITS:
        tokens = _split_tokens(split, part_uris, splits[split] if splits else None)
        n_samples = len(tokens) // window
        if n_samples == 0:
            raise ValueError(f"corpus {cfg.corpus} is too small: no {split} window of {window} tokens "
                             f"(lower tokenize.seq_len or tokenize.val_fraction)")
        with ShardWriter(storage.join(out_uri, split), prefix=split, samples_per_shard=cfg.samples_per_shard) as writer:
            for i, sample in enumerate(tqdm(tokens[:n_samples * window].reshape(n_samples, window),
                                            desc=f"pack {split}", unit="window", mininterval=2.0)):
                payload = gzip.compress(json.dumps(sample.tolist()).encode(), mtime=0)
                writer.write({"__key__": f"{split}{i:08d}", "json.gz": payload})
        stats[f"{split}_samples"] = n_samples
    tokens = sum(p["tokens"] for p in parts)
    stats.update(tokens=tokens, tokens_per_s=tokens / max(sum(p["seconds"] for p in parts), 1e-9))
    log.info("packed %d tokens from %d part(s) (%.0f tokens/s of tokenizing): %d train / %d val windows of %d",
             tokens, len(parts), stats["tokens_per_s"], stats["train_samples"], stats["val_samples"], window)
    storage.write_text(storage.join(out_uri, "tokenize_stats.json"), json.dumps(stats, indent=2))
    return stats


def tokenize_corpus(cfg: TokenizeConfig, out_uri: str) -> dict:
    """Run the stage in this process: write tokenizer + shards under ``out_uri``; returns counts and throughput."""
    with tempfile.TemporaryDirectory(prefix="vlaforge-tokenize-") as tmp:
        prepare_tokenizer(cfg, f"{tmp}/tokenizer")
        tokenize_part(dataclasses.replace(cfg, part=""), f"{tmp}/tokenizer", f"{tmp}/part")
        return pack_parts(cfg, [f"{tmp}/part"], out_uri)
