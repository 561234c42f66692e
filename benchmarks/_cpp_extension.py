"""The baseline both benchmarks compare against: minfer's specs through torch's cpp_extension."""

from __future__ import annotations

import warnings
from pathlib import Path

from torchwheel import JitSpec


def load_with_cpp_extension(spec: JitSpec, build_directory: Path) -> None:
    from torch.utils.cpp_extension import load

    # cpp_extension names objects by file name alone, and minfer's kernel and binding units
    # share theirs (cpu/rmsnorm.cpp, bindings/rmsnorm.cpp): link them under distinct names.
    sources = build_directory / "sources"
    sources.mkdir(parents=True, exist_ok=True)
    names = []
    for index, source in enumerate(spec.all_sources):
        link = sources / f"unit{index}_{source.name}"
        if not link.exists():
            link.symlink_to(source)
        names.append(str(link))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load(
            name=spec.name,
            sources=names,
            extra_cflags=["-O3", *spec.extra_cflags],
            extra_cuda_cflags=["-O3", *spec.extra_cuda_cflags],
            extra_include_paths=[str(p) for p in spec.include_dirs],
            build_directory=str(build_directory),
            is_python_module=False,
        )
