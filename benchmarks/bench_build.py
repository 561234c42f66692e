"""Benchmark (a): one ninja run for all of minfer's specs of a device, against building the
same specs one by one with `torch.utils.cpp_extension.load` (same sources and flags).

    python benchmarks/bench_build.py [--device cpu|cuda] [--arch-list 9.0a]

Both start cold (fresh build dirs) in this one run, side by side, so their ratio is what counts
on a shared, noisy machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def torchwheel_build(device: str, out: Path, arch_list: str | None) -> float:
    command = [sys.executable, "-m", "torchwheel", "build", "minfer", "--device", device, "--out", str(out)]
    if arch_list:
        command += ["--arch-list", arch_list]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


ONE_BY_ONE = """
import sys, time
from pathlib import Path
from _cpp_extension import load_with_cpp_extension
from torchwheel.project import load_project; PROJECT = load_project("minfer")
device, root = sys.argv[1], Path(sys.argv[2])
started = time.perf_counter()
for spec in PROJECT.make_specs():
    if spec.device == device:
        load_with_cpp_extension(spec, root / spec.name)
print(time.perf_counter() - started)
"""


def cpp_extension_one_by_one(device: str, root: Path, arch_list: str | None) -> float:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")])),
    }
    if arch_list:
        env["TORCH_CUDA_ARCH_LIST"] = arch_list
    result = subprocess.run(
        [sys.executable, "-c", ONE_BY_ONE, device, str(root)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--arch-list", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch_path = Path(scratch)
        (scratch_path / "cpp_extension").mkdir()
        print(f"cores: {len(os.sched_getaffinity(0))}, device: {args.device}", flush=True)
        ours = torchwheel_build(args.device, scratch_path / "torchwheel", args.arch_list)
        print(f"torchwheel build, one ninja run:        {ours:7.1f} s", flush=True)
        theirs = cpp_extension_one_by_one(args.device, scratch_path / "cpp_extension", args.arch_list)
        print(f"cpp_extension.load, spec by spec:       {theirs:7.1f} s", flush=True)
        print(f"speed-up: {theirs / ours:.2f}x")


if __name__ == "__main__":
    main()
