"""Run every benchmark script in ``bench/`` in turn (``make bench``), one at a time.

    .venv/bin/python bench/run_all.py [--only NAME ...] [--skip NAME ...]

Each script runs with its defaults in its own process; its output is printed as it comes. The exit
status is non-zero when any script failed, and a summary lists each script's status and duration.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def scripts(only: list[str], skip: list[str]) -> list[Path]:
    found = sorted(p for p in BENCH.glob("*.py") if p.name != Path(__file__).name and not p.name.startswith("_"))
    names = {p.stem for p in found}
    unknown = sorted(set(only + skip) - names)
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; known: {sorted(names)}")
    return [p for p in found if (not only or p.stem in only) and p.stem not in skip]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=[], metavar="NAME", help="run only these (file stems)")
    parser.add_argument("--skip", nargs="+", default=[], metavar="NAME", help="skip these (file stems)")
    args = parser.parse_args()
    results = []
    for script in scripts(args.only, args.skip):
        print(f"\n=== {script.name} ===", flush=True)
        start = time.perf_counter()
        code = subprocess.call([sys.executable, str(script)], cwd=BENCH.parent)
        results.append((script.name, code, time.perf_counter() - start))
    print("\n=== summary ===")
    for name, code, seconds in results:
        print(f"{name:<32} {'ok' if code == 0 else f'FAILED (exit {code})':<18} {seconds:8.1f} s")
    return 0 if all(code == 0 for _, code, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
