#!/bin/bash
# On the GPU machine (issue 10): the project tests/test_adopt.py writes, with a torch 2.11 row in
# its matrix, built as its cu130-torch211 variant wheel, installed, and tested with JIT disabled.
# Needs, under .whl/: wheels of torchwheel, pyelftools, auditwheel and ninja (the GPU machine has
# no network), e.g. `pip wheel --no-deps packages/torchwheel pyelftools auditwheel ninja -w .whl`.
# Results: docs/benchmarks.md, "An adopted project's CUDA wheel on the H200".
set -euo pipefail
repo=$PWD
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
export PATH=/tmp/site/bin:$PATH
project=/tmp/tinyext
rm -rf "$project"
PYTHONPATH=/tmp/site:$repo/tests python3 -c "
from pathlib import Path
from test_adopt import write_project
root = write_project(Path('$project'), 'setuptools') / 'pyproject.toml'
root.write_text(root.read_text().replace('\"2.13\" = \"2.13.0\"', '\"2.11\" = \"2.11.0\"\n\"2.13\" = \"2.13.0\"'))
"
cd "$project"
start=$(date +%s.%N)
PYTHONPATH=/tmp/site python3 -m torchwheel wheel --cell cu130-torch211 --python python3 \
    --out /tmp/dist --build-dir /tmp/cells --envs-dir /tmp/envs
echo "wheel build wall: $(python3 -c "import time; print(round(time.time() - $start, 1))") s"
python3 -m pip install -q --no-index --no-deps --target /tmp/site2 /tmp/dist/*.whl
run() { PYTHONPATH=/tmp/site2:/tmp/site:$project TINYEXT_DISABLE_JIT=1 TORCHWHEEL_CACHE_DIR=/tmp/emptycache "$@"; }
run python3 -m pytest -q -p no:cacheprovider tests
run python3 -m torchwheel doctor
echo "cache dir after the run: $(ls -A /tmp/emptycache 2>/dev/null | wc -l) entries"
