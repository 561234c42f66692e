"""Benchmark: how big each cell's variant wheel is, and what each CUDA arch adds to it.

    python benchmarks/bench_wheel_sizes.py [--python PY] [--accel cu130] [--archs '8.0;9.0'] [--json PATH]

Builds minfer's wheels with `torchwheel wheel` from a copy of ci/matrix.toml whose only torch
series is the one of `--python` (so the cells build against the torch at hand): the cpu cell,
the accelerator's cell with its whole arch list, then that cell once per arch alone. All share one
build root, so the CPU specs compile once. `--archs` measures only these archs alone and skips
the whole cell (each arch is one more nvcc pass over all 15 CUDA units: minutes on 2 cores).
The sizes are the wheels' (what an index stores and pip downloads) and the sum of their `.so`
files; the matrix's max_wheel_mb is the limit a cell must stay under (PyPI's default is 100 MB).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def torch_version(python: str) -> str:
    code = "import torch; print(torch.__version__.split('+')[0])"
    return subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout.strip()


def matrix_text(accel_arch: dict[str, str], series: str, version: str) -> str:
    """ci/matrix.toml with one torch series and the accelerators' arch lists replaced."""
    data = tomllib.loads((REPO / "ci" / "matrix.toml").read_text())
    lines = ["[project]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in data["project"].items()]
    lines += ["", "[torch]", f'"{series}" = "{version}"']
    for accel, table in data["accelerators"].items():
        lines += ["", f"[accelerators.{accel}]"]
        for key, value in table.items():
            if key in ("min_torch", "max_torch"):
                continue  # the one series at hand is the cell's, whatever the real range
            lines.append(f"{key} = {json.dumps(accel_arch.get(accel, value) if key == 'arch_list' else value)}")
    return "\n".join(lines) + "\n"


def build(label: str, cell: str, matrix: str, python: str, root: Path) -> dict[str, object]:
    (root / f"{label}.toml").write_text(matrix)
    out = root / "dist" / label
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "torchwheel", "wheel", "--cell", cell, "--python", python, "--project", "minfer",
         "--matrix", str(root / f"{label}.toml"), "--build-dir", str(root / "cells"), "--out", str(out)],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    (wheel,) = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        so_bytes = sum(i.file_size for i in archive.infolist() if i.filename.endswith(".so"))
    row: dict[str, object] = {"label": label, "cell": cell, "wheel": wheel.name}
    row |= {"wheel_bytes": wheel.stat().st_size, "so_bytes": so_bytes, "seconds": round(seconds, 1)}
    print(
        f"{label:<28} {wheel.stat().st_size / 1e6:8.2f} MB wheel  {so_bytes / 1e6:8.2f} MB .so  "
        f"{seconds:6.1f} s  {wheel.name}",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default=sys.executable, help="interpreter with the torch to build against")
    parser.add_argument("--accel", default="cu130")
    parser.add_argument("--archs", help="only these archs alone, ';'-separated (default: all, and the whole cell)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    version = torch_version(args.python)
    series = ".".join(version.split(".")[:2])
    accelerators = tomllib.loads((REPO / "ci" / "matrix.toml").read_text())["accelerators"]
    archs = args.archs.split(";") if args.archs else accelerators[args.accel]["arch_list"].split(";")
    print(f"minfer wheels against torch {version}; {args.accel} archs {';'.join(archs)}", flush=True)
    limit = float(tomllib.loads((REPO / "ci" / "matrix.toml").read_text())["project"]["max_wheel_mb"])
    rows: list[dict[str, object]] = []

    def record(row: dict[str, object]) -> None:
        rows.append(row)
        if args.json:  # after every wheel: a run cut short keeps what it measured
            args.json.write_text(json.dumps({"torch": version, "accel": args.accel, "limit_mb": limit, "rows": rows}))

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        record(build("cpu", "cpu", matrix_text({}, series, version), args.python, root))
        if not args.archs:
            whole = matrix_text({}, series, version)
            record(build(f"{args.accel} (all archs)", args.accel, whole, args.python, root))
        for arch in archs:
            text = matrix_text({args.accel: arch}, series, version)
            record(build(f"{args.accel} {arch} alone", args.accel, text, args.python, root))
    largest = max(rows, key=lambda r: int(r["wheel_bytes"]))
    print(
        f"limit {limit:g} MB per wheel: the largest here, {largest['label']}, is "
        f"{int(largest['wheel_bytes']) / 1e6 / limit:.0%} of it"
    )


if __name__ == "__main__":
    main()
