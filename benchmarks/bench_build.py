"""Benchmark (a): one ninja run for all of minfer's specs of a device, against building the
same specs one by one with `torch.utils.cpp_extension.load` (same sources and flags), and
against a thread pool that runs one ninja per spec (the same per-spec ninja files torchwheel
writes, each run on its own: what a library that parallelises over specs, not over units, gets).

    python benchmarks/bench_build.py [--device cpu|cuda] [--arch-list 9.0a] [--json PATH]

All three start cold (fresh build dirs) in this one run, side by side, so their ratios are what
count on a shared, noisy machine. Each is timed as the whole command a user waits for, from the
process's start to its exit: interpreter, imports (torch's too, where the contender needs it) and
the build. The one-ninja build's critical path (its slowest library's
slowest object, then its link, from `.ninja_log`) is the lower bound of any schedule.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _ninja_log import summarise  # noqa: E402


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    """(wall seconds from the process's start to its exit, its stdout)."""
    started = time.perf_counter()
    result = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    return time.perf_counter() - started, result.stdout


def torchwheel_build(device: str, out: Path, arch_list: str | None) -> float:
    command = [sys.executable, "-m", "torchwheel", "build", "minfer", "--device", device, "--out", str(out)]
    if arch_list:
        command += ["--arch-list", arch_list]
    return timed(command)[0]


ONE_BY_ONE = """
import sys
from pathlib import Path
from _cpp_extension import load_with_cpp_extension
from torchwheel.project import load_project; PROJECT = load_project("minfer")
device, root = sys.argv[1], Path(sys.argv[2])
for spec in PROJECT.make_specs():
    if spec.device == device:
        load_with_cpp_extension(spec, root / spec.name)
"""


# The third contender, in its own process like the others: torchwheel's per-spec ninja files, each
# written self-contained (its own objects dir, nothing shared with another spec's file), then one
# `ninja -j J` per spec from a pool of W threads. W = min(cores, specs) and J = max(1, cores // W):
# the pool keeps as many specs going as there are cores, and a spec's units (kernel, binding) run
# one after another unless cores are left over.
POOL = """
import os, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from torchwheel.arch import parse_arch_list
from torchwheel.compile.build_target import BuildTarget
from torchwheel.compile.ninja_files import spec_ninja_text, write_if_changed
from torchwheel.compile.ninja_run import ninja_executable
from torchwheel.compile.toolchain import find_toolchain
from torchwheel.project import load_project
from torchwheel.runtime.torch_install import TorchInstall
device, root, arch_list = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
project = load_project("minfer")
specs = [s for s in project.make_specs() if s.device == device]
need_cuda = device == "cuda"
archs = parse_arch_list(arch_list, "--arch-list") if need_cuda else ()
# The compilers as `torchwheel build` finds them without settings: CXX or c++, CUDA_HOME or nvcc's.
cuda_home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
toolchain = find_toolchain(os.environ.get("CXX") or "c++", Path(cuda_home) if cuda_home else None, need_cuda=need_cuda)
target = BuildTarget.make(TorchInstall.importable(), toolchain, archs)
cores = len(os.sched_getaffinity(0))
workers = min(cores, len(specs))
jobs = max(1, cores // workers)
files = []
for spec in specs:
    spec_dir = root / spec.name
    write_if_changed(spec_dir / "build.ninja", spec_ninja_text(spec, target, spec_dir, spec_dir / "objs", set()))
    files.append(spec_dir)
def run(spec_dir):
    subprocess.run([ninja_executable(), "-C", str(spec_dir), f"-j{jobs}"], check=True, stdout=subprocess.DEVNULL)
with ThreadPoolExecutor(workers) as pool:
    list(pool.map(run, files))
print(workers, jobs)
"""


def thread_pool_one_ninja_per_spec(device: str, root: Path, arch_list: str | None) -> tuple[float, int, int]:
    """(seconds, pool threads, ninja -j of each)."""
    seconds, stdout = timed([sys.executable, "-c", POOL, device, str(root), arch_list or ""])
    workers, jobs = stdout.strip().splitlines()[-1].split()
    return seconds, int(workers), int(jobs)


def ninja_binary() -> str:
    from ninja import BIN_DIR

    return os.path.join(BIN_DIR, "ninja")


def cpp_extension_one_by_one(device: str, root: Path, arch_list: str | None) -> float:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")])),
    }
    if arch_list:
        env["TORCH_CUDA_ARCH_LIST"] = arch_list
    return timed([sys.executable, "-c", ONE_BY_ONE, device, str(root)], env)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--arch-list", default=None)
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as scratch:
        scratch_path = Path(scratch)
        (scratch_path / "cpp_extension").mkdir()
        print(f"cores: {cores}, device: {args.device}", flush=True)
        ours = torchwheel_build(args.device, scratch_path / "torchwheel", args.arch_list)
        log = summarise(scratch_path / "torchwheel" / "build", cores, ninja_binary())
        print(f"torchwheel build, one ninja run:        {ours:7.1f} s", flush=True)
        print(
            f"  its ninja: {log.wall_s:.1f} s wall, {log.busy_s:.1f} busy core-s ({log.compile_s:.1f} compiling, "
            f"{log.link_s:.1f} linking), {log.utilisation:.0%} of {cores} cores; critical path "
            f"{log.critical_path_s:.1f} s ({' -> '.join(Path(p).name for p in log.critical_path)})",
            flush=True,
        )
        pool, workers, jobs = thread_pool_one_ninja_per_spec(args.device, scratch_path / "pool", args.arch_list)
        print(f"thread pool, one ninja per spec ({workers} threads, -j{jobs}): {pool:7.1f} s", flush=True)
        theirs = cpp_extension_one_by_one(args.device, scratch_path / "cpp_extension", args.arch_list)
        print(f"cpp_extension.load, spec by spec:       {theirs:7.1f} s", flush=True)
        print(f"speed-up: {theirs / ours:.2f}x over cpp_extension one by one, {pool / ours:.2f}x over the thread pool")
    if args.json:
        record = {
            "cores": cores,
            "device": args.device,
            "arch_list": args.arch_list,
            "one_ninja_s": round(ours, 2),
            "thread_pool_s": round(pool, 2),
            "thread_pool": {"threads": workers, "ninja_jobs": jobs},
            "cpp_extension_s": round(theirs, 2),
            "log": log.as_dict(),
        }
        args.json.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
