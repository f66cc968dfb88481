"""The console of ``vlaforge run``: one line per stage on the terminal, each stage's full log in a file.

kfp.local prints every task's executor input, streamed output and outputs on stdout, and its own
progress through the root logger. For the length of the run :class:`StageConsole` takes both (and
stderr), writes each task's lines to ``<logs>/<task>.log`` (lines outside any task to
``pipeline.log``) and prints one line per task as it ends: its position, status, wall time and key
figures, read from the metadata of its output artifacts (``executor_output.json``). On a terminal
the line of the running task shows its latest progress-bar percentage.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import time
from pathlib import Path
from typing import TextIO

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_START = re.compile(r"Executing task '([\w.-]+)'")
_END = re.compile(r"Task '([\w.-]+)' finished with status (\w+)")
_CACHED = re.compile(r"Task ([\w.-]+) cache hit")
_OUTPUT_FILE = re.compile(r'"outputFile": "([^"]+)"')
_PERCENT = re.compile(r"(\d+)%\|")

# task -> (metadata key as a regular expression, format of its "{name}" group and "{value}") of the figures
# shown on its line
FIGURES: dict[str, list[tuple[str, str]]] = {
    "tokenize": [("train_samples", "{value:.0f} training sequences"), ("tokens", "{value:.0f} tokens")],
    "llm-pretrain": [("steps", "{value:.0f} steps"), ("final_val_loss", "val loss {value:.3f}")],
    "caption-data": [("num_samples", "{value:.0f} captioned images")],
    "vlm-pretrain": [("steps", "{value:.0f} steps"), ("final_val_loss", "val loss {value:.3f}")],
    "record-demos": [("kept", "{value:.0f} demos kept"), ("success_rate", "expert success {value:.0%}")],
    "preprocess-robotics": [("train_samples", "{value:.0f} training samples"), ("samples", "{value:.0f} samples")],
    "vla-finetune": [("steps", "{value:.0f} steps"), ("final_loss", "loss {value:.3f}")],
    "sim-eval": [(r"(?P<name>[^/]+)/success_rate", "{name} {value:.0%}")],  # per task
    "sim-eval-baselines": [(r"(?P<name>[^/]+)/success_rate", "{name} {value:.0%}")],  # per baseline
    "step-analysis": [(r"(?P<name>[^.]+)\.balanced_pct", "{name} {value:.0f}%")],
    "merge-slices": [("train_samples", "{value:.0f} training samples")],  # tokenize's and preprocess's merges
}


def key_figures(task: str, metadata: dict[str, float]) -> str:
    """The figures of ``task`` found in ``metadata``, comma-separated."""
    shown = []
    for pattern, fmt in FIGURES.get(re.sub(r"-\d+$", "", task), []):  # merge-slices-2 is a merge-slices
        for key in sorted(metadata):
            if (match := re.fullmatch(pattern, key)) and isinstance(metadata[key], (int, float)):
                shown.append(fmt.format(value=metadata[key], **match.groupdict()))
    return ", ".join(shown)


def output_metadata(executor_output: Path) -> dict[str, float]:
    """Every numeric metadata entry of the output artifacts in one ``executor_output.json``."""
    if not executor_output.exists():
        return {}
    merged: dict[str, float] = {}
    for entry in json.loads(executor_output.read_text()).get("artifacts", {}).values():
        for artifact in entry.get("artifacts", []):
            merged.update({k: v for k, v in artifact.get("metadata", {}).items() if isinstance(v, (int, float))})
    return merged


class _Lines(io.TextIOBase):
    """A text stream that hands each complete line to a callback."""

    def __init__(self, on_line):
        self._on_line = on_line
        self._buffer = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._buffer += text
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            self._on_line(line)
        return len(text)

    def flush(self) -> None:
        if self._buffer:
            line, self._buffer = self._buffer, ""
            self._on_line(line)


class StageConsole:
    """Routes the run's output into per-task log files and prints one line per task (a context manager)."""

    def __init__(self, log_dir: Path, total: int, out: TextIO | None = None):
        self.log_dir = Path(log_dir)
        self.total = total
        self.out = out or sys.stdout
        self.lines: list[str] = []  # the lines printed, in order
        self.failed: list[str] = []
        self._live = self.out.isatty()
        self._done = 0
        self._task: str | None = None
        self._started = 0.0
        self._output_file: Path | None = None
        self._file: TextIO | None = None
        self._shown_percent = ""

    def log_path(self, task: str) -> Path:
        return self.log_dir / f"{task}.log"

    def __enter__(self) -> StageConsole:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._pipeline_log = self.log_path("pipeline").open("a", buffering=1)
        self._stream = _Lines(self._line)
        self._saved = sys.stdout, sys.stderr, logging.root.handlers[:], logging.root.level
        handler = logging.StreamHandler(self._stream)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        terminal = (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
        sys.stdout = sys.stderr = self._stream
        logging.root.handlers = [h for h in logging.root.handlers  # others (a log file, pytest's capture) stay
                                 if not (type(h) is logging.StreamHandler and h.stream in terminal)] + [handler]
        logging.root.setLevel(logging.INFO)  # kfp.local reports cache hits at INFO
        return self

    def __exit__(self, *exc) -> None:
        self._stream.flush()
        sys.stdout, sys.stderr, logging.root.handlers, level = self._saved
        logging.root.setLevel(level)
        if self._task:  # the run stopped inside a task
            self._finish("INTERRUPTED")
        self._pipeline_log.close()

    def _print(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def _line(self, raw: str) -> None:
        line = _ANSI.sub("", raw)
        if (match := _START.search(line)) and not self._task:
            self._begin(match[1])
        (self._file or self._pipeline_log).write(line + "\n")
        if match := _OUTPUT_FILE.search(line):
            self._output_file = Path(match[1])
        elif (match := _END.search(line)) and match[1] == self._task:
            self._finish(match[2])
        elif match := _CACHED.search(line):
            self._done += 1
            self._emit(f"{self._position()} {match[1]:<20} cached")
        elif self._live and self._task and (percents := _PERCENT.findall(line.rsplit("\r", 1)[-1])):
            if percents[-1] != self._shown_percent:
                self._shown_percent = percents[-1]
                self._print(f"\r{self._running()} {self._shown_percent}%")

    def _position(self) -> str:
        width = len(str(self.total))
        return f"[{self._done:>{width}}/{self.total}]"

    def _running(self) -> str:
        return f"{self._position()} {self._task:<20} running {time.perf_counter() - self._started:5.0f} s"

    def _begin(self, task: str) -> None:
        self._task, self._started, self._output_file, self._shown_percent = task, time.perf_counter(), None, ""
        self._done += 1
        self._file = self.log_path(task).open("w", buffering=1)
        if self._live:
            self._print(self._running())

    def _finish(self, status: str) -> None:
        task, seconds = self._task, time.perf_counter() - self._started
        self._file.close()
        self._task = self._file = None
        figures = key_figures(task, output_metadata(self._output_file)) if self._output_file else ""
        word = "done" if status == "SUCCESS" else status.lower()
        if status != "SUCCESS":
            self.failed.append(task)
            figures = f"log: {self.log_path(task)}"
        self._emit(f"{self._position()} {task:<20} {word:<6} {seconds:6.1f} s  {figures}".rstrip())

    def _emit(self, line: str) -> None:
        self.lines.append(line)
        self._print(("\r\x1b[K" if self._live else "") + line + "\n")
