#!/usr/bin/env bash
# The GPU rows of docs/benchmarks.md: run on the GPU machine from the repository root, with this
# checkout's two wheels in .whl/ (`pip wheel --no-deps -w .whl packages/torchwheel packages/minfer`).
# Results go to $OUT (or /tmp/gpu-run).
set -uo pipefail
OUT=${OUT:-/tmp/gpu-run}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; nproc
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } | tee "$OUT/machine.txt"
timeout 300 python3 -m pytest -q -rs -p no:cacheprovider tests/test_minfer_ops.py 2>&1 | tail -15 | tee "$OUT/tests.txt"
TORCH_CUDA_ARCH_LIST=9.0a timeout 300 python3 benchmarks/bench_load.py --spec rmsnorm_bf16_cuda --runs 7 2>&1 | tee "$OUT/bench_load_cuda.txt"
timeout 330 python3 benchmarks/bench_build.py --device cuda --arch-list 9.0a 2>&1 | tee "$OUT/bench_build_cuda.txt"
