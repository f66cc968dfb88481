"""Text corpora: user files (local or s3://) and the built-in offline corpus.

The built-in corpus (``corpus: builtin``) is the English prose of the Python language reference
that ships with every CPython (``pydoc_data.topics``, ~465 kB, PSF licence), mixed with generated
robot-task language of the kind the VLM and VLA stages train on.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

from vlaforge import storage

TEXT_SUFFIXES = (".txt", ".jsonl")

COLOURS = ["red", "green", "blue", "yellow", "black", "white", "grey", "orange"]
OBJECTS = ["puck", "block", "button", "drawer", "handle", "goal", "mug", "cube", "lever", "door"]
PLACES = ["on the left", "on the right", "near the robot", "far from the robot", "in the middle of the table"]
TASK_TEMPLATES = [
    "reach the {c} goal with the gripper",
    "move the gripper to the {c} {o}",
    "push the {c} puck to the goal",
    "press the {c} button from the top",
    "open the drawer by pulling its handle",
    "close the drawer",
    "pick up the {c} {o} and place it {p}",
    "the {c} {o} is {p} of the table",
    "the robot arm moves toward the {c} {o}",
    "slide the {o} {p}",
]


def robot_sentences(n: int, seed: int = 0) -> list[str]:
    """``n`` instruction/scene sentences about tabletop manipulation, deterministic in ``seed``."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        text = rng.choice(TASK_TEMPLATES).format(c=rng.choice(COLOURS), o=rng.choice(OBJECTS), p=rng.choice(PLACES))
        out.append(text[0].upper() + text[1:] + ".")
    return out


def builtin_documents() -> list[str]:
    import pydoc_data.topics as topics

    return [topics.topics[k] for k in sorted(topics.topics)]


def corpus_files(uri: str) -> list[str]:
    """The input files of a corpus in sorted order (a file is itself; ``builtin`` is one input)."""
    if uri == "builtin":
        return [uri]
    fs, path = storage.filesystem(uri)
    if not fs.exists(path):
        raise FileNotFoundError(f"corpus not found: {uri}")
    if fs.isfile(path):
        return [uri]
    found = sorted(p for p in fs.find(path) if p.endswith(TEXT_SUFFIXES))
    if not found:
        raise ValueError(f"corpus folder {uri} holds no {'/'.join(TEXT_SUFFIXES)} files")
    prefix = uri.split("://", 1)[0] + "://" if storage.is_remote(uri) else ""
    return [prefix + p for p in found]


def _read_file(file_uri: str, text_field: str) -> Iterator[str]:
    """Documents of one corpus file: a .txt file is one document, a .jsonl line is one."""
    try:
        text = storage.read_text(file_uri)
    except UnicodeDecodeError as err:
        raise ValueError(f"{file_uri}: not UTF-8 text (byte {err.start}: {err.reason})") from err
    if file_uri.endswith(".jsonl"):
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{file_uri}:{lineno}: invalid JSON: {err}") from err
            if not isinstance(record, dict) or text_field not in record:
                raise ValueError(f"{file_uri}:{lineno}: record has no '{text_field}' field")
            yield str(record[text_field])
    else:
        yield text


def file_documents(file_uri: str, text_field: str = "text") -> list[str]:
    """Non-blank documents of one input of :func:`corpus_files` (``builtin``: the built-in prose)."""
    docs = builtin_documents() if file_uri == "builtin" else _read_file(file_uri, text_field)
    return [d for d in docs if d.strip()]


def robot_documents(n_chars: int, robot_fraction: float, seed: int = 0) -> list[str]:
    """Generated robot language of about ``robot_fraction`` of a corpus of ``n_chars`` characters,
    8 sentences a document; none when the fraction is 0."""
    if robot_fraction <= 0:
        return []
    sentences = robot_sentences(max(1, int(n_chars * robot_fraction / 40)), seed)
    return [" ".join(sentences[i:i + 8]) for i in range(0, len(sentences), 8)]


def load_corpus(uri: str, text_field: str = "text", robot_fraction: float = 0.0, seed: int = 0) -> list[str]:
    """Non-empty documents of ``uri`` (or the built-in corpus), plus robot language if asked."""
    docs = [d for f in corpus_files(uri) for d in file_documents(f, text_field)]
    if not docs:
        raise ValueError(f"corpus {uri} is empty: no non-blank documents")
    return docs + robot_documents(sum(len(d) for d in docs), robot_fraction, seed)
