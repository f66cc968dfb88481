"""The pipeline stages' entry points, one module per stage; components/ and the CLI call these.

Each stage module has ``run(preset, overrides, <input URIs>, <output URI>)`` (step_analysis: its
inputs and outputs), a thin function over the library packages. A training stage returns its
summary and also leaves it in its output (:mod:`vlaforge.train.summary`).
"""

from vlaforge.train.summary import SUMMARY, read_summary, write_summary

__all__ = ["SUMMARY", "read_summary", "write_summary"]
