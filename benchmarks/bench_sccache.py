"""Benchmark: a cell built twice, in two clean build dirs, against one shared sccache in Redis;
then a JIT build in a fresh cache dir against the same cache.

    python benchmarks/bench_sccache.py [--python PY] [--device cpu|cuda|all] [--arch-list 9.0a]
                                       [--jit-spec NAME] [--json PATH]

It starts its own `redis-server` (memory only) and `sccache` server, each on a free loopback
port, and stops both at the end: what CI does with a shared backend, on one machine. Every build
runs with `TORCHWHEEL_COMPILER_LAUNCHER=sccache`, as `torchwheel build minfer` under `PY` (the
torch a cell builds against: `.venvs/torch-2.14.1/bin/python --device all --arch-list 9.0a` is
the cu130 cell, CUDA units included). The first build fills the cache, the second (a new build
dir: ninja has nothing to reuse) should be served by it; the hit rate of each is sccache's own
count, zeroed between them. The libraries of the two builds are compared byte for byte.

Target (issue 13): the second build at least 5x faster than the first, and the JIT build hits.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _ninja_log import summarise  # noqa: E402
from _servers import Sccache, redis_server, sccache_server  # noqa: E402

JIT = """
import sys, time
from torchwheel import Loader
from torchwheel.project import load_project
loader = Loader(load_project("minfer"))
started = time.perf_counter()
loaded = loader.load(sys.argv[1])
print(f"{loaded.origin} {time.perf_counter() - started:.2f}")
"""


def _launcher_env(server: Sccache, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in server.env.items() if not k.startswith(("MINFER_", "TORCHWHEEL_"))}
    env["PATH"] = os.pathsep.join([os.path.dirname(server.binary), env.get("PATH", "")])
    env["TORCHWHEEL_COMPILER_LAUNCHER"] = "sccache"
    return {**env, **extra}


def _run(command: list[str], env: dict[str, str], label: str) -> tuple[float, list[str]]:
    """Run `command`, printing its progress lines under `label`; return wall seconds and output."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        print(f"  {label}: {lines[-1]}", flush=True)
    if process.wait() != 0:
        raise SystemExit(f"{label} failed (exit {process.returncode})")
    return time.perf_counter() - started, lines


def build(args: argparse.Namespace, server: Sccache, out: Path, scratch: Path, label: str) -> dict[str, object]:
    command = [args.python, "-m", "torchwheel", "build", "minfer", "--device", args.device, "--out", str(out)]
    if args.arch_list:
        command += ["--arch-list", args.arch_list]
    if args.jobs:
        command += ["--jobs", str(args.jobs)]
    server.zero()
    env = _launcher_env(server, {"TORCHWHEEL_CACHE_DIR": str(scratch / "unused-cache")})
    seconds, _ = _run(command, env, label)
    stats = server.stats()
    log = summarise(out / "build", args.jobs or len(os.sched_getaffinity(0))).as_dict()
    print(f"{label}: {seconds:.1f} s, sccache {stats}", flush=True)
    print(f"  ninja: {log['wall_s']} s, compiles {log['compile_s']} core-s, links {log['link_s']} core-s", flush=True)
    return {"seconds": round(seconds, 2), **stats, "ninja": log}


def jit(args: argparse.Namespace, server: Sccache, scratch: Path, spec: str) -> dict[str, object]:
    server.zero()
    env = _launcher_env(
        server,
        {
            "MINFER_CACHE_DIR": str(scratch / "fresh-jit-cache"),
            "MINFER_LOCK_DIR": str(scratch / "locks"),
            "MINFER_FORCE_JIT": "1",
            **({"MINFER_CUDA_ARCH_LIST": args.arch_list} if args.arch_list else {}),
        },
    )
    seconds, lines = _run([args.python, "-c", JIT, spec], env, "jit")
    stats = server.stats()
    origin, load_seconds = lines[-1].split()
    print(f"jit {spec}: {origin} in {load_seconds} s, sccache {stats}", flush=True)
    return {"spec": spec, "origin": origin, "seconds": float(load_seconds), **stats}


def same_libraries(first: Path, second: Path) -> tuple[int, int]:
    """(identical, all): the .so files of two prebuilt dirs compared byte for byte."""
    names = sorted(p.relative_to(first) for p in first.rglob("*.so"))
    same = sum(filecmp.cmp(first / n, second / n, shallow=False) for n in names if (second / n).is_file())
    return same, len(names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default=sys.executable, help="interpreter with torch, torchwheel and minfer")
    parser.add_argument("--device", choices=("cpu", "cuda", "all"), default="cpu")
    parser.add_argument("--arch-list", default=None)
    parser.add_argument("--jit-spec", default=None, help="default: rmsnorm_fp16_cuda with CUDA, else _cpu")
    parser.add_argument("--json", type=Path, help="write every number here")
    parser.add_argument("--jobs", type=int, default=None, help="ninja -j (default: every core)")
    parser.add_argument(
        "--direct",
        action="store_true",
        help="sccache's preprocessor cache mode (SCCACHE_DIRECT): hits skip the preprocessor, but its "
        "records live on this machine's disk, so across CI runners it helps only with a persisted SCCACHE_DIR",
    )
    args = parser.parse_args()
    if args.direct:
        os.environ["SCCACHE_DIRECT"] = "true"  # read by the server at its start
    jit_spec = args.jit_spec or ("rmsnorm_fp16_cuda" if args.device != "cpu" else "rmsnorm_fp16_cpu")
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        with redis_server(scratch / "redis") as endpoint, sccache_server(endpoint, scratch) as server:
            print(f"cores: {len(os.sched_getaffinity(0))}; redis at {endpoint}; python {args.python}", flush=True)
            first = build(args, server, scratch / "first", scratch, "first build (cold cache)")
            second = build(args, server, scratch / "second", scratch, "second build (clean dir, warm cache)")
            jitted = jit(args, server, scratch, jit_spec)
        same, total = same_libraries(scratch / "first" / "data" / "aot", scratch / "second" / "data" / "aot")
    speedup = float(first["seconds"]) / float(second["seconds"])  # type: ignore[arg-type]
    hit_rate = int(second["hits"]) / max(1, int(second["hits"]) + int(second["misses"]))  # type: ignore[call-overload]
    jit_rate = int(jitted["hits"]) / max(1, int(jitted["hits"]) + int(jitted["misses"]))  # type: ignore[call-overload]
    print(f"second build: {speedup:.1f}x faster, hit rate {hit_rate:.0%}; identical libraries: {same}/{total}")
    print(f"JIT build in a fresh cache dir: hit rate {jit_rate:.0%}")
    if args.json:
        record = {
            "device": args.device,
            "direct": args.direct,
            "arch_list": args.arch_list,
            "cores": len(os.sched_getaffinity(0)),
            "first": first,
            "second": second,
            "jit": jitted,
            "speedup": round(speedup, 2),
            "hit_rate": round(hit_rate, 4),
            "jit_hit_rate": round(jit_rate, 4),
            "identical_libraries": [same, total],
        }
        args.json.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
