"""Benchmark: minfer's CUDA kernels against the memory roofline, eager torch and torch.compile.

    python benchmarks/bench_kernels.py [--aot DIR] [--quick] [--ops OP ...] [--dtypes fp16 ...]
                                       [--json PATH] [--markdown PATH]

For every op x dtype x size, side by side in one process: minfer's op; a device-to-device copy
of the same byte count (`dst.copy_(src)`, the roofline this run measures); the eager torch
reference (`F.rms_norm`, `F.silu(x1) * x2`, ... where torch has the op, else minfer's plain-torch
reference); and `torch.compile` of minfer's reference (`minfer.reference`, fp32 math; for rope
the same math with the inverse frequencies passed in as a device tensor, as a model caches
them). Bandwidth counts each byte read and each byte written once. Every minfer result is first
checked against the reference at the tests' tolerances.

Large sizes are timed with CUDA events around a loop of calls (each call moves hundreds of MB,
so launch gaps do not count); small sizes by replaying a CUDA graph of many calls, which gives
device time without the host's launch cost (that is measured apart, first: host time per call
at decode size 1x4096, every minfer op against `F.rms_norm`, in this one process).

Targets (issue 13): at the large sizes every minfer op reaches >= 92% of the copy bandwidth and
is at least as fast as torch.compile; at small sizes it is never slower than eager torch.

Without `--aot`, the 15 CUDA specs are first built with `python -m torchwheel build minfer` into
a temporary directory (about 20 s on 16 cores) and loaded prebuilt from there.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch._dynamo
import torch.nn.functional as F

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
TOLERANCE = {torch.float32: (1e-5, 1e-5), torch.float16: (2e-3, 1e-3), torch.bfloat16: (1.6e-2, 1e-2)}
OPS = ("rmsnorm", "fused_add_rmsnorm", "silu_and_mul", "gelu_tanh_and_mul", "apply_rope")
COPY_TARGET = 0.92
DEVICE = torch.device("cuda")
EPS = 1e-6
THETA = 1e4

# (shape, large): norms (rows, hidden); gated (rows, 2d); rope (tokens, q_heads, k_heads, head_dim).
# (4, 40000) rows are past the register path of the norms (their two-pass kernel), head_dim 2048
# past rope's shared-memory table (its chunked kernel).
SIZES: dict[str, list[tuple[tuple[int, ...], bool]]] = {
    "rmsnorm": [((16384, 8192), True), ((1, 4096), False), ((64, 4096), False), ((64, 4099), False),
                ((16, 7), False), ((64, 16384), False), ((4, 40000), False)],
    "silu_and_mul": [((8192, 2 * 14336), True), ((1, 2 * 14336), False), ((64, 2 * 4099), False), ((16, 14), False)],
    "apply_rope": [((16384, 32, 8, 128), True), ((1, 32, 8, 128), False), ((64, 32, 8, 64), False),
                   ((64, 8, 2, 256), False), ((16, 4, 1, 96), False), ((4, 2, 1, 2048), False)],
}  # fmt: skip
SIZES["fused_add_rmsnorm"] = SIZES["rmsnorm"]
SIZES["gelu_tanh_and_mul"] = SIZES["silu_and_mul"]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- contenders ---------------------------------------------------------------------------------


def inv_freq_of(head_dim: int, device: torch.device) -> torch.Tensor:
    """minfer.reference's inverse frequencies (float64 power, fp32 exponent), once per size."""
    exponents = -(torch.arange(head_dim // 2, dtype=torch.float32) * 2 / head_dim)
    return torch.pow(THETA, exponents.double()).float().to(device)


def rope_reference(
    q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor, inv_freq: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """minfer.reference.apply_rope with the inverse frequencies given (no host work per call)."""
    half = q.shape[-1] // 2
    angles = positions.float()[:, None] * inv_freq[None, :]
    cos, sin = angles.cos()[:, None, :], angles.sin()[:, None, :]

    def rotate(x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x.float()[..., :half], x.float()[..., half:]
        return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).to(x.dtype)

    return rotate(q), rotate(k)


def fused_eager(x: torch.Tensor, residual: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    total = x + residual
    return F.rms_norm(total, (x.shape[-1],), w, EPS), total


def silu_eager(x: torch.Tensor) -> torch.Tensor:
    d = x.shape[-1] // 2
    return F.silu(x[..., :d]) * x[..., d:]


def gelu_eager(x: torch.Tensor) -> torch.Tensor:
    d = x.shape[-1] // 2
    return F.gelu(x[..., :d], approximate="tanh") * x[..., d:]


@dataclass
class Row:
    op: str
    dtype: str
    shape: tuple[int, ...]
    large: bool
    bytes: int
    check: str = ""
    times: dict[str, float] = field(default_factory=dict)  # seconds per call
    methods: dict[str, str] = field(default_factory=dict)  # how each was timed

    def bandwidth(self, who: str) -> float:
        return self.bytes / self.times[who]

    def of_copy(self) -> float:
        return self.bandwidth("minfer") / self.bandwidth("copy")

    def vs(self, who: str) -> float:
        """How many times faster minfer is than `who` (> 1: minfer wins)."""
        return self.times[who] / self.times["minfer"]

    def passed(self) -> bool:
        if self.check != "ok":
            return False
        if self.large:
            return self.of_copy() >= COPY_TARGET and self.vs("compile") >= 1.0
        return self.vs("eager") >= 1.0


def make_case(op: str, dtype: torch.dtype, shape: tuple[int, ...], large: bool, device: torch.device) -> dict[str, Any]:
    """Inputs, the byte count, and each contender as a zero-argument callable. torch.compile is
    static at the large sizes (its best kernel for the shape) and dynamic at the small ones (one
    compile serves them all; they are latency-bound either way)."""
    import minfer
    from minfer import reference

    def compile_(fn: Callable[..., Any]) -> Callable[..., Any]:
        return torch.compile(fn, dynamic=not large)

    es = torch.empty((), dtype=dtype).element_size()

    def rand(*size: int, scale: float = 1.0) -> torch.Tensor:
        return (scale * torch.randn(size, device=device, dtype=torch.float32)).to(dtype)

    if op in ("rmsnorm", "fused_add_rmsnorm"):
        rows, hidden = shape
        x, w = rand(rows, hidden), rand(hidden)
        if op == "rmsnorm":
            compiled = compile_(reference.rmsnorm)
            return {
                "bytes": (2 * rows * hidden + hidden) * es,
                "minfer": lambda: minfer.rmsnorm(x, w, EPS),
                "eager": lambda: F.rms_norm(x, (hidden,), w, EPS),
                "compile": lambda: compiled(x, w, EPS),
                "check": lambda: [(minfer.rmsnorm(x, w, EPS), reference.rmsnorm(x, w, EPS))],
            }
        r = rand(rows, hidden)
        compiled = compile_(reference.fused_add_rmsnorm)

        def check_fused() -> list[tuple[torch.Tensor, torch.Tensor]]:
            gx, gr = x.clone(), r.clone()
            want_x, want_r = reference.fused_add_rmsnorm(gx, gr, w, EPS)
            minfer.fused_add_rmsnorm(gx, gr, w, EPS)
            return [(gx, want_x), (gr, want_r)]

        return {
            "bytes": (4 * rows * hidden + hidden) * es,
            "minfer": lambda: minfer.fused_add_rmsnorm(x, r, w, EPS),
            "eager": lambda: fused_eager(x, r, w),
            "compile": lambda: compiled(x, r, w, EPS),
            "check": check_fused,
        }
    if op in ("silu_and_mul", "gelu_tanh_and_mul"):
        rows, two_d = shape
        x = rand(rows, two_d, scale=3.0)
        ours, ref = getattr(minfer, op), getattr(reference, op)
        compiled = compile_(ref)
        eager = silu_eager if op == "silu_and_mul" else gelu_eager
        return {
            "bytes": rows * (two_d + two_d // 2) * es,
            "minfer": lambda: ours(x),
            "eager": lambda: eager(x),
            "compile": lambda: compiled(x),
            "check": lambda: [(ours(x), ref(x))],
        }
    tokens, q_heads, k_heads, head_dim = shape
    q, k = rand(tokens, q_heads, head_dim), rand(tokens, k_heads, head_dim)
    positions = torch.randint(0, 4096, (tokens,), device=device)
    inv_freq = inv_freq_of(head_dim, device)
    compiled = compile_(rope_reference)

    def check_rope() -> list[tuple[torch.Tensor, torch.Tensor]]:
        gq, gk = q.clone(), k.clone()
        want_q, want_k = reference.apply_rope(gq, gk, positions, THETA)
        minfer.apply_rope(gq, gk, positions, THETA)
        return [(gq, want_q), (gk, want_k)]

    return {
        "bytes": 2 * tokens * (q_heads + k_heads) * head_dim * es + tokens * 8,
        "minfer": lambda: minfer.apply_rope(q, k, positions, THETA),
        "eager": lambda: rope_reference(q, k, positions, inv_freq),
        "compile": lambda: compiled(q, k, positions, inv_freq),
        "check": check_rope,
    }


# --- timing -------------------------------------------------------------------------------------


def time_events(fn: Callable[[], object], reps: int) -> float:
    """Seconds per call: events around a loop sized to about 20 ms, the median of `reps` loops."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    once = max(time.perf_counter() - start, 1e-6)
    calls = max(3, min(200, int(0.02 / once)))
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples = []
    for _ in range(reps):
        begin.record()
        for _ in range(calls):
            fn()
        end.record()
        end.synchronize()
        samples.append(begin.elapsed_time(end) / 1e3 / calls)
    return statistics.median(samples)


def time_graph(fn: Callable[[], object], reps: int, calls: int = 100) -> float:
    """Seconds per call of device time: a CUDA graph of `calls` calls, replayed `reps` times."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls):
            fn()
    graph.replay()
    torch.cuda.synchronize()
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples = []
    for _ in range(reps):
        begin.record()
        graph.replay()
        end.record()
        end.synchronize()
        samples.append(begin.elapsed_time(end) / 1e3 / calls)
    del graph
    return statistics.median(samples)


def measure(fn: Callable[[], object], large: bool, reps: int) -> tuple[float, str]:
    fn()  # warm: compiles, loads, allocator
    torch.cuda.synchronize()
    if large:
        return time_events(fn, reps), "events"
    try:
        return time_graph(fn, reps), "graph"
    except Exception as error:  # noqa: BLE001 - a contender that cannot be captured is timed plainly
        torch.cuda.synchronize()
        log(f"    (graph capture failed: {type(error).__name__}: {str(error).splitlines()[0][:120]}; events)")
        return time_events(fn, reps), "events"


def run_row(op: str, dtype_name: str, shape: tuple[int, ...], large: bool, reps: int) -> Row:
    device = DEVICE
    dtype = DTYPES[dtype_name]
    case = make_case(op, dtype, shape, large, device)
    row = Row(op, dtype_name, shape, large, case["bytes"])
    try:
        rtol, atol = TOLERANCE[dtype]
        for got, want in case["check"]():
            torch.testing.assert_close(got, want, rtol=rtol, atol=atol)
        row.check = "ok"
    except AssertionError as error:
        row.check = "MISMATCH: " + " ".join(str(error).split())[:200]
    half = max(16, case["bytes"] // 2 // 16 * 16)
    src = torch.empty(half, dtype=torch.uint8, device=device).random_()
    dst = torch.empty_like(src)
    row.bytes = case["bytes"]
    contenders = {
        "minfer": case["minfer"],
        "copy": lambda: dst.copy_(src),
        "eager": case["eager"],
        "compile": case["compile"],
    }
    copy_bytes = 2 * half
    for name, fn in contenders.items():
        seconds, method = measure(fn, large, reps)
        # The copy moves 2 * half bytes; scale its time to the op's byte count for the ratio.
        row.times[name] = seconds * row.bytes / copy_bytes if name == "copy" else seconds
        row.methods[name] = method
    return row


# --- host time ----------------------------------------------------------------------------------


def host_times(dtype: torch.dtype, hidden: int = 4096, calls: int = 100, trials: int = 31) -> dict[str, float]:
    """Host seconds per call at decode size [1, hidden]: the loop's time without the final wait
    for the GPU (100 calls stay far below the launch queue's depth), median of interleaved trials.
    Every minfer op at its decode size beside `F.rms_norm` (the target: no more host time), then
    what `minfer.rmsnorm` is made of."""
    import minfer
    from minfer import ops

    device = DEVICE
    x = torch.randn(1, hidden, device=device).to(dtype)
    w = torch.randn(hidden, device=device).to(dtype)
    r = torch.randn(1, hidden, device=device).to(dtype)
    gated = torch.randn(1, 2 * hidden, device=device).to(dtype)
    q = torch.randn(1, 32, 128, device=device).to(dtype)
    k = torch.randn(1, 8, 128, device=device).to(dtype)
    positions = torch.zeros(1, dtype=torch.int64, device=device)
    out = torch.empty_like(x)
    op = ops._op("rmsnorm", x)
    alone = f"torch.ops.{op} (the op alone, out given)"
    allocation = "  of which: torch.empty_like (minfer.rmsnorm's one allocation)"
    for name in ("fused_add_rmsnorm", "silu_and_mul", "gelu_tanh_and_mul"):
        ops._op(name, x)
    ops._op("apply_rope", q)
    contenders: dict[str, Callable[[], object]] = {
        "F.rms_norm": lambda: F.rms_norm(x, (hidden,), w, EPS),
        "minfer.rmsnorm": lambda: minfer.rmsnorm(x, w, EPS),
        "minfer.fused_add_rmsnorm": lambda: minfer.fused_add_rmsnorm(x, r, w, EPS),
        f"minfer.silu_and_mul (1x{2 * hidden})": lambda: minfer.silu_and_mul(gated),
        f"minfer.gelu_tanh_and_mul (1x{2 * hidden})": lambda: minfer.gelu_tanh_and_mul(gated),
        "minfer.apply_rope (1 token, 32+8 heads x 128)": lambda: minfer.apply_rope(q, k, positions, THETA),
        alone: lambda: op(out, x, w, EPS),
        allocation: lambda: torch.empty_like(x),
        "  of which: the op's lookup (the checks' first step)": lambda: ops._RMSNORM.get((x.dtype, x.device)),
        "x.add_(0) (one plain aten op, for scale)": lambda: x.add_(0),
    }
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for fn in contenders.values():
        for _ in range(10):
            fn()
    torch.cuda.synchronize()
    for _ in range(trials):
        for name, fn in contenders.items():
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            samples[name].append((time.perf_counter() - start) / calls)
    torch.cuda.synchronize()
    times = {name: statistics.median(values) for name, values in samples.items()}
    # The checks are written inline in minfer.rmsnorm (one condition, no call of their own), so
    # they are timed as what is left of it once the op and the allocation are taken away.
    rest = times["minfer.rmsnorm"] - times[alone] - times[allocation]
    rows = list(times.items())
    at = list(times).index(allocation) + 1
    return dict([*rows[:at], ("  of which: the checks, lookup and glue (the rest)", rest), *rows[at:]])


def all_host_times(dtypes: list[str]) -> dict[str, dict[str, float]]:
    log("host time per call at decode size ...")
    host = {name: host_times(DTYPES[name]) for name in ("bf16", "fp16") if name in dtypes}
    for name, times in host.items():
        log(f"  {name}: " + ", ".join(f"{k.strip()} {v * 1e6:.2f} us" for k, v in times.items()))
    return host


# --- output -------------------------------------------------------------------------------------


def shape_text(op: str, shape: tuple[int, ...]) -> str:
    if op == "apply_rope":
        tokens, qh, kh, hd = shape
        return f"{tokens} tok x ({qh}+{kh}) x {hd}"
    return "x".join(str(s) for s in shape)


def markdown(rows: list[Row], host: dict[str, dict[str, float]]) -> str:
    lines = [
        "| op | dtype | size | minfer | GB/s | % of copy | copy GB/s | eager | minfer vs eager "
        "| torch.compile | minfer vs compile | target |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.large:
            verdict = f"{'met' if r.passed() else '**missed**'} (>= {COPY_TARGET:.0%} of copy, >= compile)"
        else:
            verdict = f"{'met' if r.passed() else '**missed**'} (>= eager)"
        if r.check != "ok":
            verdict = f"**{r.check}**"
        lines.append(
            f"| {r.op} | {r.dtype} | {shape_text(r.op, r.shape)} | {r.times['minfer'] * 1e6:.1f} us "
            f"| {r.bandwidth('minfer') / 1e9:.0f} | {r.of_copy():.1%} | {r.bandwidth('copy') / 1e9:.0f} "
            f"| {r.times['eager'] * 1e6:.1f} us | {r.vs('eager'):.2f}x | {r.times['compile'] * 1e6:.1f} us "
            f"| {r.vs('compile'):.2f}x | {verdict} |"
        )
    for dtype, times in host.items():
        lines += ["", f"Host time per call at 1x4096, {dtype} (median of interleaved trials):", ""]
        lines += ["| call | host us per call |", "|---|---|"]
        lines += [f"| {name} | {seconds * 1e6:.2f} |" for name, seconds in times.items()]
    return "\n".join(lines)


def write_json(path: Path, header: str, rows: list[Row], host: dict[str, dict[str, float]]) -> None:
    payload = {
        "header": header,
        "rows": [
            {
                "op": r.op,
                "dtype": r.dtype,
                "shape": r.shape,
                "large": r.large,
                "bytes": r.bytes,
                "check": r.check,
                "times_s": r.times,
                "methods": r.methods,
                "of_copy": r.of_copy(),
                "vs_compile": r.vs("compile"),
                "vs_eager": r.vs("eager"),
                "passed": r.passed(),
            }
            for r in rows
        ],
        "host_s": host,
    }
    path.write_text(json.dumps(payload, indent=1))


def build(out: Path) -> Path:
    major, minor = torch.cuda.get_device_capability()
    arch = "9.0a" if (major, minor) == (9, 0) else f"{major}.{minor}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINFER_", "TORCHWHEEL_"))}
    env["TORCHWHEEL_CACHE_DIR"] = str(out / "cache")
    command = [sys.executable, "-m", "torchwheel", "build", "minfer", "--device", "cuda", "--arch-list", arch]
    log(f"building minfer's CUDA specs for {arch}: {' '.join(command[1:])}")
    start = time.perf_counter()
    result = subprocess.run([*command, "--out", str(out)], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    log(f"built in {time.perf_counter() - start:.1f} s")
    return out / "data" / "aot"


def render(path: Path) -> None:
    """Print the table of an earlier run's --json file."""
    saved = json.loads(path.read_text())
    rows = []
    for item in saved["rows"]:
        row = Row(item["op"], item["dtype"], tuple(item["shape"]), item["large"], item["bytes"], item["check"])
        row.times, row.methods = item["times_s"], item["methods"]
        rows.append(row)
    print(saved["header"] + "\n\n" + markdown(rows, saved["host_s"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--aot", type=Path, help="prebuilt minfer dir (data/aot of a build); default: build one")
    parser.add_argument("--quick", action="store_true", help="large sizes only")
    parser.add_argument("--ops", nargs="+", choices=OPS, default=list(OPS))
    parser.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=list(DTYPES))
    parser.add_argument("--reps", type=int, default=7, help="timed samples per contender (median)")
    parser.add_argument("--json", type=Path, help="write every number here")
    parser.add_argument("--markdown", type=Path, help="write the table here too")
    parser.add_argument("--render", type=Path, help="print the table of an earlier run's --json file, and stop")
    args = parser.parse_args()
    if args.render:
        render(args.render)
        return
    if not torch.cuda.is_available():
        sys.exit("bench_kernels needs a CUDA GPU")

    with tempfile.TemporaryDirectory(prefix="minfer-bench-") as tmp:
        aot = args.aot or build(Path(tmp))
        os.environ["MINFER_AOT_PATH"] = str(aot)
        os.environ["MINFER_DISABLE_JIT"] = "1"
        # A compiled function per large size and dtype: raise dynamo's recompile limits.
        for limit in ("cache_size_limit", "recompile_limit", "accumulated_cache_size_limit"):
            if hasattr(torch._dynamo.config, limit):
                setattr(torch._dynamo.config, limit, 1024)

        cases = [
            (op, dtype, shape, large)
            for op in args.ops
            for dtype in args.dtypes
            for shape, large in SIZES[op]
            if large or not args.quick
        ]
        rows: list[Row] = []
        begin = time.perf_counter()
        # Host time first (a short step), so that a sweep cut short still leaves it in the JSON.
        host = all_host_times(args.dtypes)
        if args.json:
            write_json(args.json, "partial", rows, host)
        for index, (op, dtype, shape, large) in enumerate(cases, 1):
            start = time.perf_counter()
            row = run_row(op, dtype, shape, large, args.reps)
            rows.append(row)
            log(
                f"[{index}/{len(cases)}] {op} {dtype} {shape_text(op, shape)}: "
                f"minfer {row.times['minfer'] * 1e6:.1f} us = {row.of_copy():.1%} of copy, "
                f"{row.vs('compile'):.2f}x compile, {row.vs('eager'):.2f}x eager,"
                f" check {row.check[:60]} ({time.perf_counter() - start:.1f} s)"
            )
            torch.cuda.empty_cache()
            if args.json:  # as it goes, so that an interrupted run keeps its rows
                write_json(args.json, "partial", rows, host)
        log(f"done in {time.perf_counter() - begin:.0f} s")

    header = (
        f"{datetime.date.today().isoformat()}, {torch.cuda.get_device_name()}, torch {torch.__version__}, "
        f"`python {' '.join(sys.argv)}`"
    )
    table = markdown(rows, host)
    print(header + "\n\n" + table)
    if args.markdown:
        args.markdown.write_text(header + "\n\n" + table + "\n")
    if args.json:
        write_json(args.json, header, rows, host)
    missed = [r for r in rows if not r.passed()]
    log(f"{len(rows) - len(missed)}/{len(rows)} rows meet their target")


if __name__ == "__main__":
    main()
