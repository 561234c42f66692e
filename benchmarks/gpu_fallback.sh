#!/usr/bin/env bash
# Issue 5's GPU rows of docs/benchmarks.md, on the GPU machine (an H100, sm_90), from the
# repository root, with this checkout's two wheels in .whl/
# (`pip wheel --no-deps -w .whl packages/torchwheel packages/minfer`). Results go to $OUT.
#   1. minfer's rmsnorm CUDA specs prebuilt for 8.0 only: loading them JIT-builds 9.0a code, logs
#      why, and matches the torch reference; `python -m minfer doctor` says so beforehand.
#   2. prebuilt for 9.0a: they load prebuilt, nothing compiles.
#   3. prebuilt for 8.0+PTX: refused (PTX only) unless MINFER_ACCEPT_PTX=1, then loaded.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-fallback}
WORK=$(mktemp -d)
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
unset TORCH_CUDA_ARCH_LIST MINFER_CUDA_ARCH_LIST TORCHWHEEL_CUDA_ARCH_LIST MINFER_AOT_PATH MINFER_DISABLE_JIT
{ nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader; nproc
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } | tee "$OUT/machine.txt"

# Every rmsnorm dtype on the GPU against the reference; then where each spec came from, and why.
CHECK=$(cat <<'PY'
import time, torch, minfer
from minfer import reference
started = time.perf_counter()
for dtype in (torch.float16, torch.bfloat16, torch.float32):
    x, w = torch.randn(64, 4096, device="cuda", dtype=dtype), torch.randn(4096, device="cuda", dtype=dtype)
    torch.testing.assert_close(minfer.rmsnorm(x, w).float(), reference.rmsnorm(x, w).float(), rtol=2e-2, atol=2e-2)
print(f"3 dtypes match the reference; first calls took {time.perf_counter() - started:.1f} s")
for name, spec in sorted(minfer.loaded_specs().items()):
    print(f"{name:<20} {spec.origin:<10} {spec.seconds:6.2f} s  {spec.reason or ''}")
PY
)

build() {  # build NAME ARCHS: minfer's rmsnorm CUDA specs for ARCHS, prebuilt into $WORK/NAME
  timeout 300 python3 -m torchwheel build minfer --device cuda --spec 'rmsnorm_*_cuda' --arch-list "$2" \
    --out "$WORK/$1" > "$OUT/build_$1.txt" 2>&1 || { echo "build $1 failed"; tail "$OUT/build_$1.txt"; return 1; }
}

check() {  # check NAME LABEL [VAR=VALUE...]: doctor, then load and compare, from a fresh cache
  local name=$1 label=$2; shift 2
  local run=(env MINFER_AOT_PATH="$WORK/$name/data/aot" MINFER_CACHE_DIR="$WORK/cache-$label" "$@")
  "${run[@]}" timeout 120 python3 -m minfer doctor 2>&1 | grep -E '^(GPU|driver|nvcc)|^  prebuilt|^    rmsnorm_[a-z0-9]+_cuda ' \
    > "$OUT/doctor_$label.txt"
  "${run[@]}" timeout 400 python3 -c "$CHECK" > "$OUT/load_$label.txt" 2>&1
  echo "== $label: prebuilt for $(grep -o 'archs [^ ]*' "$OUT/build_$name.txt" | head -1)${*:+, $*}"
  cat "$OUT/doctor_$label.txt" "$OUT/load_$label.txt"
}

{
  build sm80 "8.0" && check sm80 sm80
  build sm90a "9.0a" && check sm90a sm90a
  build ptx80 "8.0+PTX" && check ptx80 ptx80 && check ptx80 ptx80-accepted MINFER_ACCEPT_PTX=1
} 2>&1 | tee "$OUT/summary.txt"
rm -rf "$WORK"
