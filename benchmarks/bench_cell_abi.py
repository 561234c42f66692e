"""A whole cell's build, full ABI against stable ABI, side by side: minfer as it was just before
its bindings moved to the stable ABI (the parent of commit a426bc3) and right after (a426bc3),
each tree with its own torchwheel, built from scratch by `torchwheel build` (fresh --out and cache
dir every time). The kernels are the same in both trees; only the binding units differ.

    python benchmarks/bench_cell_abi.py --python .venvs/torch-2.14.1/bin/python --device cpu
    # the GPU machine has no git history: export the trees here, carry build/cell-abi, then there
    python benchmarks/bench_cell_abi.py --export build/cell-abi
    python benchmarks/bench_cell_abi.py --trees build/cell-abi --python python3 --device cuda --arch-list 9.0

Builds alternate (full, stable, full, ...) so that load from other jobs falls on both alike; the
ratio of medians is the figure to read. Each build prints its wall time as it ends.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TREES = {"full": "a426bc3^", "stable": "a426bc3"}


def export(commit: str, into: Path) -> Path:
    """The files of `commit` that a build reads (csrc/, packages/, ci/), written under `into`."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit, "csrc", "packages", "ci"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def build_seconds(tree: Path, python: str, device: str, arch_list: str | None, scratch: Path) -> float:
    out = Path(tempfile.mkdtemp(dir=scratch))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINFER_", "TORCHWHEEL_"))}
    env.update(
        PYTHONPATH=f"{tree}/packages/torchwheel/src{os.pathsep}{tree}/packages/minfer/src",
        TORCHWHEEL_CACHE_DIR=str(out / "cache"),
    )
    command = [python, "-m", "torchwheel", "build", "--device", device, "--out", str(out / "out")]
    if arch_list:
        command += ["--arch-list", arch_list]
    started = time.perf_counter()
    subprocess.run(command, cwd=tree / "packages" / "minfer", env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default="python3", help="an interpreter with the torch to build against")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--arch-list", help="for --device cuda, e.g. 9.0")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--export", type=Path, help="only write the two trees into this dir")
    parser.add_argument("--trees", type=Path, help="build the trees written by --export here")
    args = parser.parse_args()
    python = str(Path(shutil.which(args.python) or args.python).absolute())  # builds run in other dirs
    if args.export:
        for kind, commit in TREES.items():
            print(f"{kind}: {commit} -> {export(commit, args.export / kind)}")
        return
    with tempfile.TemporaryDirectory() as scratch:
        if args.trees:
            trees = {kind: args.trees.absolute() / kind for kind in TREES}
        else:
            trees = {kind: export(commit, Path(scratch) / kind) for kind, commit in TREES.items()}
        times: dict[str, list[float]] = {kind: [] for kind in trees}
        for round_ in range(args.rounds):
            for kind, tree in trees.items():
                times[kind].append(build_seconds(tree, python, args.device, args.arch_list, Path(scratch)))
                print(f"round {round_ + 1}/{args.rounds} {kind}: {times[kind][-1]:.1f} s", flush=True)
    full, stable = (statistics.median(times[k]) for k in TREES)
    cores = len(os.sched_getaffinity(0))
    print(f"{args.device} cell, {cores} cores: median full {full:.1f} s, stable {stable:.1f} s", end="")
    print(f", ratio {full / stable:.2f}x")


if __name__ == "__main__":
    main()
