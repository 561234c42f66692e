"""Compile time of one binding unit on torch's full C++ API against the same unit on the stable
ABI, side by side: minfer's rmsnorm binding as it was before it moved to the stable ABI (a
commit of this repository, read with `git show`) and as it is now, each compiled with the flags
torchwheel gives its kind of spec.

    python benchmarks/bench_binding_abi.py --python .venvs/torch-2.14.1/bin/python --runs 5

(C++20: what torch 2.14 needs, and what torchwheel gives it.)

Runs alternate (full, stable, full, ...) so that load from other jobs falls on both alike; the
ratio of medians is the figure to read.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FULL_ABI_COMMIT = "10c9c08"  # the last commit whose bindings include ATen and torch/library.h


def torch_include(python: str) -> list[str]:
    code = "import json, torch.utils.cpp_extension as c; print(json.dumps(c.include_paths()))"
    paths: list[str] = json.loads(
        subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout
    )
    return [f"-I{p}" for p in paths]


def checkout_csrc(commit: str, into: Path) -> Path:
    """`csrc/` of `commit`, written under `into`."""
    names = subprocess.run(
        ["git", "-C", str(REPO), "ls-tree", "-r", "--name-only", commit, "csrc"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in names:
        target = into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(
            subprocess.run(["git", "-C", str(REPO), "show", f"{commit}:{name}"], capture_output=True, check=True).stdout
        )
    return into / "csrc"


def compile_seconds(csrc: Path, includes: list[str], extra: list[str], out: Path) -> float:
    command = [
        "c++", "-O3", "-fPIC", "-std=c++20", "-c", str(csrc / "bindings" / "rmsnorm.cpp"), "-o", str(out),
        f"-I{csrc / 'include'}", *includes, "-DMINFER_DTYPE_FP32", "-DMINFER_SPEC_NAME=rmsnorm_fp32_cpu", *extra,
    ]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", required=True, help="an interpreter whose torch's headers to compile against")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    includes = torch_include(args.python)
    with tempfile.TemporaryDirectory() as scratch:
        full_csrc = checkout_csrc(FULL_ABI_COMMIT, Path(scratch) / "full")
        kinds = {
            "full": (full_csrc, ["-D_GLIBCXX_USE_CXX11_ABI=1"]),
            "stable": (REPO / "csrc", ["-D_GLIBCXX_USE_CXX11_ABI=1", "-DTORCH_TARGET_VERSION=0x020b000000000000"]),
        }
        times: dict[str, list[float]] = {kind: [] for kind in kinds}
        for run in range(args.runs):
            for kind, (csrc, extra) in kinds.items():
                times[kind].append(compile_seconds(csrc, includes, extra, Path(scratch) / f"{kind}.o"))
                print(f"run {run + 1}/{args.runs} {kind}: {times[kind][-1]:.2f} s", flush=True)
    full, stable = (statistics.median(times[k]) for k in ("full", "stable"))
    print(f"median: full {full:.2f} s, stable {stable:.2f} s, ratio {full / stable:.1f}x")


if __name__ == "__main__":
    main()
