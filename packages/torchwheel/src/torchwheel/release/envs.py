"""A Python environment per torch version, so each matrix cell builds against its own torch.

Environments live in one directory (default `~/.cache/torchwheel/envs`: settings.py's
`default_envs_dir`, outside any checkout), are named by the torch they hold, version and
accelerator (`torch-2.14.1-cu130`: a cpu and a cu130 cell of one torch need different builds of
it), are made once and reused, and are never the user's own environment: torch is never
installed into the interpreter running torchwheel. Torch comes from the cell's index (the
matrix's `torch_index`, by default torch's own `.../whl/<accel>`), never from PyPI's one build.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from torchwheel.errors import ToolchainError
from torchwheel.release.matrix import VariantCell
from torchwheel.runtime.torch_install import TorchInstall
from torchwheel.versions import parse_version

_READY = ".torchwheel-ready"


def cell_environment(cell: VariantCell, envs_dir: Path, say: Callable[[str], None] = print) -> Path:
    """The interpreter of the environment holding the cell's torch; made on first use."""
    env = envs_dir.absolute() / f"torch-{cell.torch_version}-{cell.accel}"
    python = env / "bin" / "python"
    if (env / _READY).is_file():
        return python
    say(f"creating {env} with torch=={cell.torch_version} from {cell.torch_index} (once; later runs reuse it)")
    made = subprocess.run([sys.executable, "-m", "venv", "--clear", str(env)], capture_output=True, text=True)
    if made.returncode != 0:
        last = (made.stderr.strip().splitlines() or ["no output"])[-1]
        raise ToolchainError(
            f"creating the venv {env} failed (exit {made.returncode}: {last}); "
            "pass --envs-dir a directory you can write, or --python with an interpreter that has the cell's torch"
        )
    # pip's own progress output stays on: a multi-GB torch download is minutes of work.
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "--progress-bar", "off", *torch_install_args(cell)],
        check=False,
    )
    if result.returncode != 0:
        raise ToolchainError(
            f"installing torch=={cell.torch_version} from {cell.torch_index} into {env} failed (pip exit "
            f"{result.returncode}); see pip's output above, set torch_index in [accelerators.{cell.accel}] of "
            "the matrix to a mirror you can reach, or pass --python with an interpreter that has it"
        )
    (env / _READY).touch()
    return python


def torch_install_args(cell: VariantCell) -> tuple[str, ...]:
    """pip's arguments that install the cell's torch: the cell's index in place of PyPI (as
    torch's own instructions say), so the build of torch is the index's: cpu, cu128, cu130."""
    return ("--index-url", cell.torch_index, f"torch=={cell.torch_version}")


def cell_target(cell: VariantCell, python: Path) -> TorchInstall:
    """The cell's torch as installed for `python`, checked against what the cell needs."""
    target = TorchInstall.probe(python)
    if parse_version(target.version).public != cell.torch_version:
        raise ToolchainError(
            f"cell {cell.id} builds against torch {cell.torch_version}, but {python} has {target.version}; "
            "pass --python with an environment of that version"
        )
    # A cpu cell may build under a CUDA torch: its specs link only libtorch_cpu and libc10, which
    # every build of a torch release has alike. A CUDA cell links libtorch_cuda and cudart of its
    # CUDA, so a torch of another CUDA (or none) is refused here, before anything compiles.
    if cell.cuda is not None and target.cuda_version != cell.cuda:
        raise ToolchainError(
            f"cell {cell.id} needs a CUDA {cell.cuda} build of torch {cell.torch_version}, but {python} has "
            f"{target.version} (CUDA {target.cuda_version or 'none'}); install it with pip install "
            f"{' '.join(torch_install_args(cell))}, or pass --python with an interpreter that has it"
        )
    return target
