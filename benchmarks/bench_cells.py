"""Benchmark: the second cell of one toolkit costs a fraction of the first, because its
torch-free units are reused and only the binding units (and links) run again.

    python benchmarks/bench_cells.py --first cpu-torch213 --first-python PY \\
        --second cpu-torch214 --second-python PY2

Builds both cells cold into one fresh build root, one after the other, and reports each one's
wall time and the compile steps it ran (from ninja's shared log).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def build(cell: str, python: str, root: Path) -> tuple[float, list[str]]:
    log = root / "cells" / ".ninja_log"
    before = set(log.read_text().splitlines()) if log.exists() else set()
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "torchwheel", "wheel", "--cell", cell, "--python", python,
         "--build-dir", str(root / "cells"), "--out", str(root / "dist")],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    new = [line.split("\t")[3] for line in log.read_text().splitlines() if line not in before and "\t" in line]
    return seconds, [o for o in new if o.endswith(".o")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--first", default="cpu-torch213")
    parser.add_argument("--first-python", default=sys.executable)
    parser.add_argument("--second", default="cpu-torch214")
    parser.add_argument("--second-python", required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        first, first_units = build(args.first, args.first_python, root)
        second, second_units = build(args.second, args.second_python, root)
    bindings = sum("/bindings/" in o for o in second_units)
    print(f"{args.first}: {first:6.1f} s, {len(first_units)} units compiled")
    print(f"{args.second}: {second:6.1f} s, {len(second_units)} units compiled ({bindings} binding units)")
    print(f"second cell / first: {second / first:.0%}")


if __name__ == "__main__":
    main()
