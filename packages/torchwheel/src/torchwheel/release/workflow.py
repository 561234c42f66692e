"""The GitHub Actions workflow that builds, tests and publishes every cell, made from the matrix.

It is generated, not written by hand, and checked in at ci/workflows/wheels.yml; a test fails
when the checked-in file differs from what the matrix says, another runs its `run:` steps for a
cpu cell in a clean copy of the repository (tests/test_workflow.py), and both GitHub's schema
(check-jsonschema's vendored copy) and zizmor must pass on it.

How it is read as a CI engineer would read it:
- Each cell is one job in the manylinux_2_28 image (torch's own wheels are manylinux_2_28, so the
  `.so` files need no newer glibc than torch). The job makes one venv, installs the cell's torch
  from the cell's index (the matrix's `torch_index`: torch's own `.../whl/cpu`, `.../whl/cu128`),
  installs torchwheel and the project into it, builds the variant wheel (`torchwheel wheel`,
  which refuses a torch of another CUDA before compiling), smoke-tests it with JIT disabled
  (`torchwheel doctor`, so a spec missing from the wheel fails the job) and makes the cell's
  conda packages from the same build (`torchwheel conda`: no second compile).
- The CUDA toolkit is installed per cell and `CUDA_HOME` is set to it (`TOOLKITS` below).
- Compiles go through sccache with GitHub's Actions cache as the shared backend
  (`TORCHWHEEL_COMPILER_LAUNCHER=sccache`), so a re-run compiles only what changed.
- Uploads run only for a `v*` tag, in jobs of their own that hold the artifacts and an OIDC
  token and nothing else: PyPI by trusted publishing (pypa/gh-action-pypi-publish), prefix.dev
  by trusted publishing too (rattler-build's upload uses the job's OIDC token when it has no key).
- Every action and the image are pinned by commit or digest; the workflow grants nothing by
  default and each job only what it needs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from torchwheel.errors import SettingsError
from torchwheel.release.matrix import Matrix, VariantCell

# Pins. Each was read from the action's own repository (the tag's commit); bump them together
# with the comment. The image digest is the manylinux_2_28_x86_64 build of late 2026 (AlmaLinux 8,
# gcc-toolset-14) as two independent public repositories pin it; quay.io itself could not be
# reached from the machine that wrote this, so check it with `docker buildx imagetools inspect`.
CHECKOUT = "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1"  # v7.0.1
SCCACHE_ACTION = "mozilla-actions/sccache-action@fc920bf0ec8de6ee65d409111f7ec508035751ba"  # v0.0.11
SCCACHE_VERSION = "v0.16.0"  # the sccache release the action installs (seen hitting here for gcc and nvcc)
UPLOAD_ARTIFACT = "actions/upload-artifact@bbbca2ddaa5d8feaa63e36b76fdaad77386f024f"  # v7.0.0
DOWNLOAD_ARTIFACT = "actions/download-artifact@3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c"  # v8.0.1
PYPI_PUBLISH = "pypa/gh-action-pypi-publish@81e9d935c883d0b210363ab89cf05f3894778450"  # v1.8.14
IMAGE = "quay.io/pypa/manylinux_2_28_x86_64@sha256:39df0042d5cc900b085aa25a0659368b42a0006c54c474299b785b44c1b4ff82"
PREFIX_URL = "https://prefix.dev"

# Where a cell's CUDA toolkit comes from.
# "pypi": NVIDIA's wheels. From CUDA 13 on, nvidia-cuda-nvcc holds nvcc and shares one tree,
#   nvidia/cu13/, with the runtime, CCCL, CRT and NVVM wheels (each pinned, as nvcc's own
#   requirements are not).
# "nvidia-rhel8": NVIDIA's RPM repository for RHEL 8, the base of manylinux_2_28. PyPI's CUDA 12
#   compiler wheel, nvidia-cuda-nvcc-cu12, holds ptxas and NVVM but no nvcc (seen in 12.8.93 and
#   12.9.86), so no CUDA 12 toolkit can come from PyPI.
ToolkitSource = Literal["pypi", "nvidia-rhel8"]
NVIDIA_RHEL8_REPO = "https://developer.download.nvidia.com/compute/cuda/repos/rhel8/x86_64/cuda-rhel8.repo"


@dataclass(frozen=True)
class Toolkit:
    """What a CUDA cell installs as its toolkit, and where CUDA_HOME then points."""

    source: ToolkitSource
    packages: tuple[str, ...]
    home: str  # as the step's shell expands it


def toolkit(cuda: str) -> Toolkit:
    """The toolkit packages of one CUDA major.minor that exist where the step installs them."""
    major, minor = cuda.split(".")
    if major == "12":
        # NVIDIA's RPMs are named cuda-<component>-<major>-<minor> and install to /usr/local/cuda-X.Y.
        rpms = ("cuda-nvcc", "cuda-cudart-devel", "cuda-cccl")
        return Toolkit("nvidia-rhel8", tuple(f"{n}-{major}-{minor}" for n in rpms), f"/usr/local/cuda-{cuda}")
    if major == "13":
        wheels = ("nvidia-cuda-nvcc", "nvidia-cuda-runtime", "nvidia-cuda-cccl", "nvidia-cuda-crt", "nvidia-nvvm")
        return Toolkit("pypi", tuple(f"{n}=={cuda}.*" for n in wheels), f"$RUNNER_TEMP/cuda-{cuda}")
    raise SettingsError(
        f"cuda = {cuda!r}: torchwheel knows where to get the toolkits of CUDA 12 and 13 only; "
        "build that cell outside the generated workflow, or update torchwheel"
    )


def workflow_matrix(matrix: Matrix) -> dict[str, list[dict[str, str]]]:
    """The matrix's cells as the workflow's jobs see them: the cell's facts and its toolkit."""
    include = []
    for cell, entry in zip(matrix.cells, matrix.github_matrix()["include"], strict=True):
        kit = _cell_toolkit(cell)
        entry = {
            **entry,
            "cuda_source": kit.source if kit else "",
            "cuda_packages": " ".join(kit.packages) if kit else "",
            "cuda_home": kit.home if kit else "",
        }
        include.append(entry)
    return {"include": include}


def _cell_toolkit(cell: VariantCell) -> Toolkit | None:
    return None if cell.cuda is None else toolkit(cell.cuda)


# The template: <<name>> marks a value filled in; everything else is verbatim, so the GitHub
# expressions and the shell's own `$` need no escaping. No `run:` script holds an expression:
# values reach the shell through `env:` (zizmor's template-injection rule), and every script
# runs with bash -e (a failing command fails the step).
_TEMPLATE = """\
# Generated by `torchwheel matrix workflow` from <<matrix_path>>: do not edit by hand.
name: wheels
on:
  push:
    branches: [main]  # fills the compile cache that later branch and manual runs share
    tags: ["v*"]  # builds, then publishes
  workflow_dispatch:

permissions: {}

jobs:
  variant:
    name: ${{ matrix.distribution }}
    runs-on: ubuntu-latest
    container: <<image>>
    permissions:
      contents: read  # the checkout; sccache's cache is reached with the runner's own token
    strategy:
      fail-fast: false
      matrix: <<matrix_json>>
    env:
      CELL: ${{ matrix.id }}
      CUDA: ${{ matrix.cuda }}
      CUDA_PACKAGES: ${{ matrix.cuda_packages }}
      TORCH_INDEX: ${{ matrix.torch_index }}
      TORCH_VERSION: ${{ matrix.torch_version }}
      # A release (a tag) compiles from its sources alone: a cache that other runs write could
      # carry a poisoned object into a published wheel. Other runs share compiles through sccache.
      TORCHWHEEL_COMPILER_LAUNCHER: ${{ !startsWith(github.ref, 'refs/tags/') && 'sccache' || '' }}
      SCCACHE_GHA_ENABLED: ${{ !startsWith(github.ref, 'refs/tags/') && 'true' || 'false' }}
    defaults:
      run:
        shell: bash
    steps:
      - uses: <<checkout>>
        with:
          fetch-depth: 0  # SOURCE_DATE_EPOCH comes from the last commit
          persist-credentials: false
      # zizmor cannot read this step's `if:`: a tag's build, the one that publishes, skips it.
      - uses: <<sccache_action>>  # zizmor: ignore[cache-poisoning]
        if: ${{ !startsWith(github.ref, 'refs/tags/') }}
        with:
          version: <<sccache_version>>
      - name: CUDA toolkit from PyPI
        if: matrix.cuda_source == 'pypi'
        run: |
          # The wheels share one tree (nvidia/cu13/): it becomes CUDA_HOME, with the lib64 and
          # unversioned libcudart.so that a toolkit installer would have made.
          read -ra packages <<< "$CUDA_PACKAGES"
          python3.11 -m pip install --no-cache-dir --target "$RUNNER_TEMP/cuda-wheels" "${packages[@]}"
          home="$RUNNER_TEMP/cuda-$CUDA"
          mv "$RUNNER_TEMP/cuda-wheels/nvidia/cu${CUDA%%.*}" "$home"
          ln -s lib "$home/lib64"
          runtime=("$home"/lib/libcudart.so.*)
          ln -s "$(basename "${runtime[0]}")" "$home/lib/libcudart.so"
          "$home/bin/nvcc" --version | grep -F "release $CUDA,"
          echo "CUDA_HOME=$home" >> "$GITHUB_ENV"
      - name: CUDA toolkit from NVIDIA's RHEL 8 repository
        if: matrix.cuda_source == 'nvidia-rhel8'
        run: |
          # PyPI's CUDA 12 compiler wheel has no nvcc; NVIDIA's RPMs (signed) have the toolkit.
          read -ra packages <<< "$CUDA_PACKAGES"
          dnf config-manager --add-repo <<rhel8_repo>>
          dnf install -y "${packages[@]}"
          home="/usr/local/cuda-$CUDA"
          "$home/bin/nvcc" --version | grep -F "release $CUDA,"
          echo "CUDA_HOME=$home" >> "$GITHUB_ENV"
      - name: Torch
        run: |
          # The cell's build of torch, from its index only (PyPI has one CUDA build per release).
          python3.11 -m venv "$RUNNER_TEMP/cell"
          "$RUNNER_TEMP/cell/bin/python" -m pip install --index-url "$TORCH_INDEX" "torch==$TORCH_VERSION"
          echo "CELL_PYTHON=$RUNNER_TEMP/cell/bin/python" >> "$GITHUB_ENV"
      - name: Build
        run: |
          "$CELL_PYTHON" -m pip install "./packages/torchwheel[build]" ./packages/<<project>> <<conda_tools>>
          "$CELL_PYTHON" -m torchwheel wheel --cell "$CELL" --python "$CELL_PYTHON" --out dist
      - name: Smoke test
        run: |
          # Every spec the cell's torch can load here must load from the wheel: JIT is off.
          "$CELL_PYTHON" -m pip install dist/*.whl
          TORCHWHEEL_DISABLE_JIT=1 "$CELL_PYTHON" -m torchwheel doctor <<project>>
      - name: Conda packages
        run: |
          "$CELL_PYTHON" -m torchwheel conda --cell "$CELL" --python "$CELL_PYTHON" --out conda
      - uses: <<upload_artifact>>
        with:
          name: wheels-${{ matrix.id }}
          path: dist/*.whl
          if-no-files-found: error
      - uses: <<upload_artifact>>
        with:
          name: conda-${{ matrix.id }}
          path: conda/
          if-no-files-found: error

  pypi:
    needs: variant
    if: startsWith(github.ref, 'refs/tags/v')
    runs-on: ubuntu-latest
    environment: pypi
    permissions:
      id-token: write  # trusted publishing: PyPI trusts this workflow's OIDC token, no stored token
    steps:
      - uses: <<checkout>>
        with:
          persist-credentials: false
      - uses: <<download_artifact>>
        with:
          pattern: wheels-*
          path: dist
          merge-multiple: true
      - name: The pure-Python distributions
        run: |
          python3 -m venv "$RUNNER_TEMP/build"
          "$RUNNER_TEMP/build/bin/python" -m pip install build
          "$RUNNER_TEMP/build/bin/python" -m build --outdir dist packages/torchwheel
          "$RUNNER_TEMP/build/bin/python" -m build --outdir dist packages/<<project>>
      - uses: <<pypi_publish>>
        with:
          packages-dir: dist/

  conda:
    needs: variant
    if: startsWith(github.ref, 'refs/tags/v')
    runs-on: ubuntu-latest
    environment: prefix
    permissions:
      id-token: write  # trusted publishing to prefix.dev
    steps:
      - uses: <<download_artifact>>
        with:
          pattern: conda-*
          path: conda
          merge-multiple: true
      - name: Upload to prefix.dev
        env:
          CHANNEL: <<project>>
        run: |
          python3 -m venv "$RUNNER_TEMP/upload"
          "$RUNNER_TEMP/upload/bin/python" -m pip install py-rattler-build
          # No API key: on GitHub Actions, rattler-build's upload trades the job's OIDC token.
          "$RUNNER_TEMP/upload/bin/python" - <<'EOF'
          import os, pathlib
          from rattler_build.upload import upload_package_to_prefix
          files = sorted(str(p) for p in pathlib.Path("conda").rglob("*.conda"))
          upload_package_to_prefix(files, "<<prefix_url>>", os.environ["CHANNEL"], skip_existing=True)
          EOF
"""


def workflow_text(matrix: Matrix, matrix_path: str) -> str:
    values = {
        "matrix_path": matrix_path,
        "matrix_json": json.dumps(workflow_matrix(matrix), sort_keys=True),
        "project": matrix.project,
        "image": IMAGE,
        "checkout": CHECKOUT,
        "sccache_action": SCCACHE_ACTION,
        "sccache_version": SCCACHE_VERSION,
        "upload_artifact": UPLOAD_ARTIFACT,
        "download_artifact": DOWNLOAD_ARTIFACT,
        "pypi_publish": PYPI_PUBLISH,
        "rhel8_repo": NVIDIA_RHEL8_REPO,
        "prefix_url": PREFIX_URL,
        # What `torchwheel conda` needs besides torchwheel[build] (release/conda.py).
        "conda_tools": "py-rattler-build py-rattler",
    }
    text = _TEMPLATE
    for name, value in values.items():
        text = text.replace(f"<<{name}>>", value)
    return text
