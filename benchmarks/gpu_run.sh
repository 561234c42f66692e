#!/usr/bin/env bash
# The GPU rows of docs/benchmarks.md: run on the GPU machine from the repository root, with this
# checkout's two wheels in .whl/ (`pip wheel --no-deps -w .whl packages/torchwheel packages/minfer`).
# Results go to $OUT (or /tmp/gpu-run).
#
#     bash benchmarks/gpu_run.sh [tests] [kernels] [build] [sizes]   (default: the first three, in this order)
#
# `tests`: tests/test_minfer_ops.py (about 1 minute). `kernels`: the host time per call and the
# kernel sweep (bench_kernels.py, given $KERNELS_ARGS; its JSON feeds the roofline plot:
# `python benchmarks/run_all.py --only kernels --kernels-json $OUT/kernels.json`), about 5
# minutes, cut at $KERNELS_TIMEOUT s (default 480; the JSON keeps what was measured). `build`: the
# build benchmark (one ninja vs a thread pool of one ninja per spec vs cpp_extension one by one)
# and the load benchmark, about 4 minutes. `sizes`: minfer's wheel per cell and per arch
# (bench_wheel_sizes.py, cut at $SIZES_TIMEOUT s, default 420; it needs auditwheel and pyelftools
# in .whl/ too). `tests kernels` and `build` each fit one 10-minute call; all four fit one with
# shorter limits ($TESTS_TIMEOUT, $KERNELS_TIMEOUT, $BUILD_TIMEOUT, $LOAD_TIMEOUT, $SIZES_TIMEOUT:
# 80, 170, 120, 50 and 150 took 333 s on the H100, 2026-12-07, the sizes step cut before its last row).
set -uo pipefail
OUT=${OUT:-/tmp/gpu-run}
mkdir -p "$OUT"
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(tests kernels build)
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; nproc
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } | tee "$OUT/machine.txt"
for step in "${steps[@]}"; do
  case $step in
    tests)
      timeout "${TESTS_TIMEOUT:-200}" python3 -m pytest -q -rs -p no:cacheprovider tests/test_minfer_ops.py 2>&1 | tail -15 | tee "$OUT/tests.txt" ;;
    kernels)
      timeout "${KERNELS_TIMEOUT:-480}" python3 benchmarks/bench_kernels.py ${KERNELS_ARGS:-} --json "$OUT/kernels.json" \
        --markdown "$OUT/kernels.md" 2>&1 | tee "$OUT/bench_kernels.txt" | grep -v '^|' ;;
    build)
      timeout "${BUILD_TIMEOUT:-300}" python3 benchmarks/bench_build.py --device cuda --arch-list 9.0a --json "$OUT/bench_build.json" \
        2>&1 | tee "$OUT/bench_build_cuda.txt"
      TORCH_CUDA_ARCH_LIST=9.0a timeout "${LOAD_TIMEOUT:-120}" python3 benchmarks/bench_load.py --spec rmsnorm_bf16_cuda --runs "${LOAD_RUNS:-7}" \
        2>&1 | tee "$OUT/bench_load_cuda.txt" ;;
    sizes)
      timeout "${SIZES_TIMEOUT:-420}" python3 benchmarks/bench_wheel_sizes.py --python python3 --json "$OUT/wheel_sizes.json" \
        2>&1 | tee "$OUT/wheel_sizes.txt" ;;
    *) echo "unknown step $step (tests, kernels, build, sizes)"; exit 2 ;;
  esac
done
