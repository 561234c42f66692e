"""Benchmark (b): the time to load one prebuilt spec, against raw `torch.ops.load_library` of
the same file and against a warm `torch.utils.cpp_extension.load` cache hit.

    python benchmarks/bench_load.py [--spec rmsnorm_fp16_cpu] [--runs 15] [--against DIR]

`--against DIR` also times the loader of another checkout (e.g. `git worktree add DIR <rev>`),
its sources put first on PYTHONPATH, in turn with this one's (A B A B ...), on the same file.

Each sample is a fresh process (a real first load), timed inside it after `import torch`;
medians are reported. torchwheel's load is timed from the call to the op being registered;
importing torchwheel and the project (which a library does at its own import) is shown apart.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# A CUDA op is first called on a CUDA tensor, so CUDA is initialised before the spec loads; the
# loader then asks for the GPU's capability at no cost. Both sides start from that state.
INIT = "import torch\nif sys.argv[2].endswith('_cuda'): torch.zeros(1, device='cuda')\n"

RAW = """
import sys, time, torch
INIT
t = time.perf_counter()
torch.ops.load_library(sys.argv[1])
print(time.perf_counter() - t)
"""

TORCHWHEEL = """
import sys, time, torch
INIT
t = time.perf_counter()
from torchwheel import Loader
from torchwheel.project import load_project; PROJECT = load_project("minfer")
imported = time.perf_counter()
loaded = Loader(PROJECT).load(sys.argv[2])
assert loaded.origin == "prebuilt", loaded
print(imported - t, time.perf_counter() - imported)
"""

CPP_EXTENSION = """
import sys, time, torch
from pathlib import Path
from torchwheel.project import load_project; PROJECT = load_project("minfer")
spec = {s.name: s for s in PROJECT.make_specs()}[sys.argv[2]]
INIT
t = time.perf_counter()
from _cpp_extension import load_with_cpp_extension
load_with_cpp_extension(spec, Path(sys.argv[3]))
print(time.perf_counter() - t)
"""


def sample(code: str, args: list[str], env: dict[str, str], runs: int) -> list[float]:
    """Median milliseconds of each figure the code prints, over `runs` fresh processes."""
    return paired(code, args, [env], runs)[0]


def paired(code: str, args: list[str], envs: list[dict[str, str]], runs: int) -> list[list[float]]:
    """`sample` for several environments in turn (A B A B ...), so drift hits all alike."""
    code = code.replace("INIT", INIT)
    rows: list[list[list[float]]] = [[] for _ in envs]
    for _ in range(runs):
        for index, env in enumerate(envs):
            result = subprocess.run(
                [sys.executable, "-c", code, *args], check=True, capture_output=True, text=True, env=env
            )
            rows[index].append([float(x) for x in result.stdout.strip().splitlines()[-1].split()])
    return [[statistics.median(column) * 1e3 for column in zip(*r, strict=True)] for r in rows]


def source_path(checkout: Path) -> str:
    return os.pathsep.join(str(checkout / "packages" / p / "src") for p in ("torchwheel", "minfer"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default="rmsnorm_fp16_cpu")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--against", type=Path, help="another checkout whose loader to time beside this one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "aot"
        subprocess.run(
            [sys.executable, "-m", "torchwheel", "build", "minfer", "--spec", args.spec, "--out", str(out)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        aot = out / "data" / "aot"
        library = aot / args.spec / f"{args.spec}.so"
        env = {
            **os.environ,
            "MINFER_AOT_PATH": str(aot),
            "MINFER_DISABLE_JIT": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")])),
        }
        warm = Path(scratch) / "cpp_extension"
        warm.mkdir()
        sample(CPP_EXTENSION, ["", args.spec, str(warm)], env, 1)  # compile once: later runs hit
        print(f"median of {args.runs} fresh processes, spec {args.spec}", flush=True)
        (raw,) = sample(RAW, [str(library), args.spec], env, args.runs)
        print(f"raw torch.ops.load_library:         {raw:7.2f} ms", flush=True)
        envs = [env]
        if args.against:
            here = Path(__file__).resolve().parents[1]
            envs = [
                {**env, "PYTHONPATH": f"{source_path(c)}{os.pathsep}{env['PYTHONPATH']}"} for c in (here, args.against)
            ]
        for (imports, ours), name in zip(
            paired(TORCHWHEEL, ["", args.spec], envs, args.runs), ("this", "against"), strict=False
        ):
            label = "torchwheel Loader.load (prebuilt)" if not args.against else f"Loader.load, {name} checkout"
            print(f"{label + ':':<36}{ours:7.2f} ms  ({ours - raw:+.2f} ms over raw)")
            print(
                f"  (once per process, before it: importing torchwheel and the project {imports:.2f} ms)",
                flush=True,
            )
        (hit,) = sample(CPP_EXTENSION, ["", args.spec, str(warm)], env, args.runs)
        print(f"cpp_extension.load warm cache hit:  {hit:7.2f} ms")


if __name__ == "__main__":
    main()
