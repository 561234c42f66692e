"""Writing ninja files: one `build.ninja` per spec, and one wrapper that `subninja`s them all.

One wrapper means one `ninja -jN` for a whole project, so `-j` is global: a machine's cores
stay busy across specs instead of idling at the end of each (docs/architecture.md, "Invariants").
Paths in a subninja file resolve against ninja's working dir, so every path written is absolute.
"""

from __future__ import annotations

import hashlib
import io
import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from ninja.ninja_syntax import Writer

from torchwheel.compile.build_target import BuildTarget
from torchwheel.compile.flags import spec_flags
from torchwheel.compile.toolchain import fast_linker
from torchwheel.spec import CUDA_SUFFIXES, JitSpec


def ninja_path(path: Path | str) -> str:
    """A path escaped for a build or subninja line.

    ninja_syntax's escape_path leaves a lone `$` alone and mangles `$ `, so build lines are
    written with this instead (`_build`); the Writer still writes everything else.
    """
    return str(path).replace("$", "$$").replace(" ", "$ ").replace(":", "$:")


def _writer(text: io.StringIO) -> Writer:
    # ninja_syntax annotates `output` as str, though it writes to it as a stream.
    return Writer(text, width=1 << 30)  # type: ignore[arg-type]


def _build(ninja: Writer, output: Path, rule: str, inputs: list[Path], variables: dict[str, str]) -> None:
    words = " ".join(ninja_path(p) for p in inputs)
    stream: TextIO = ninja.output  # type: ignore[assignment]  # a stream (see _writer)
    stream.write(f"build {ninja_path(output)}: {rule} {words}\n")
    for key, value in variables.items():
        ninja.variable(key, value.replace("$", "$$"), indent=1)


def _command_words(words: Iterable[str | Path]) -> str:
    """Shell-quoted, then `$`-escaped: values of ninja variables pass through the shell."""
    return " ".join(shlex.quote(str(w)) for w in words).replace("$", "$$")


def library_path(spec: JitSpec, spec_dir: Path) -> Path:
    return spec_dir / f"{spec.name}.so"


def _object_path(objects_dir: Path, signature: str, spec: JitSpec, source: Path) -> Path:
    """Objects are named by their compile command: an identical command (a torch-free unit for
    another torch version of the same toolkit) finds its object already built, and ninja,
    which records each command in the shared build log, has nothing to do."""
    relative = source.relative_to(spec.root)
    digest = hashlib.sha256(signature.encode()).hexdigest()[:16]
    return objects_dir / digest / relative.with_name(relative.name + ".o")


def spec_ninja_text(spec: JitSpec, target: BuildTarget, spec_dir: Path, objects_dir: Path, emitted: set[Path]) -> str:
    """The spec's build file. `emitted` holds objects that another spec of the same ninja run
    already builds (same command, same source): they are used, not built twice."""
    flags = spec_flags(spec, target)
    toolchain = target.toolchain
    # Paths inside the binary (__FILE__ in error messages) are rewritten, so the .so is the
    # same from any checkout path or environment. Torch's prefix only matters, and only
    # appears, where torch's headers are included.
    own_map = [f"-ffile-prefix-map={spec.root}={spec.name}"]
    torch_map = [f"-ffile-prefix-map={target.torch.prefix}=torch"]
    own_includes = [f"-I{d}" for d in spec.include_dirs]
    cuda_includes: list[str] = []
    if spec.device == "cuda" and toolchain.cuda_home is not None:
        cuda_includes = ["-isystem", str(toolchain.cuda_home / "include")]
    # Separate words: nvcc, unlike gcc, does not accept `-isystem<dir>` glued together.
    torch_includes = [word for d in target.torch.include_dirs for word in ("-isystem", str(d))]

    variables = {
        "cflags": _command_words([*flags.cxx, *own_map, *own_includes, *cuda_includes]),
        "torch_cflags": _command_words(
            [*flags.cxx_torch, *own_map, *torch_map, *own_includes, *cuda_includes, *torch_includes]
        ),
    }
    compilers = {"cxx": toolchain.cxx.path, "cxx_torch": toolchain.cxx.path}
    text = io.StringIO()
    ninja = _writer(text)
    ninja.comment(f"spec {spec.name}: written by torchwheel, do not edit")
    ninja.variable("cxx", _command_words([toolchain.cxx.path]))
    # A compiler cache (sccache, ccache) goes before compiles only: neither caches a link. Without
    # one the rules are as they always were, so existing build dirs stay up to date.
    launch = ""
    if toolchain.launcher is not None:
        ninja.variable("launcher", _command_words([toolchain.launcher]))
        launch = "$launcher "
    for name, value in variables.items():
        ninja.variable(name, value)
    for rule, variable in (("cxx", "cflags"), ("cxx_torch", "torch_cflags")):
        ninja.rule(
            rule,
            f"{launch}$cxx -MMD -MF $out.d ${variable} -c $in -o $out",
            depfile="$out.d",
            deps="gcc",
            description="$spec: $src",
        )
    if toolchain.nvcc is not None:
        host = ["-ccbin", toolchain.cxx.path]
        nvcc_own = [f"-Xcompiler={m}" for m in own_map]
        nvcc_torch = [f"-Xcompiler={m}" for m in torch_map]
        variables["cuda_cflags"] = _command_words([*host, *flags.nvcc, *nvcc_own, *own_includes, *cuda_includes])
        variables["torch_cuda_cflags"] = _command_words(
            [*host, *flags.nvcc_torch, *nvcc_own, *nvcc_torch, *own_includes, *cuda_includes, *torch_includes]
        )
        compilers["nvcc"] = compilers["nvcc_torch"] = toolchain.nvcc.path
        ninja.variable("nvcc", _command_words([toolchain.nvcc.path]))
        for rule, variable in (("nvcc", "cuda_cflags"), ("nvcc_torch", "torch_cuda_cflags")):
            ninja.variable(variable, variables[variable])
            ninja.rule(
                rule,
                f"{launch}$nvcc --generate-dependencies-with-compile --dependency-output $out.d "
                f"${variable} -c $in -o $out",
                depfile="$out.d",
                deps="gcc",
                description="$spec: $src",
            )
    library_dirs = [f"-L{target.torch.library_dir}"] if spec.torch_sources else []
    if spec.device == "cuda" and toolchain.cuda_home is not None:
        library_dirs.append(f"-L{toolchain.cuda_home / 'lib64'}")
    ninja.variable("ldflags", _command_words([*library_dirs, *flags.ld, *_linker_flags(spec, toolchain.cxx.path)]))
    ninja.rule("link", "$cxx $in $ldflags -o $out", description="$spec: link $src")

    rule_variables = {
        "cxx": "cflags",
        "cxx_torch": "torch_cflags",
        "nvcc": "cuda_cflags",
        "nvcc_torch": "torch_cuda_cflags",
    }
    objects = []
    for source in spec.all_sources:
        rule = "nvcc" if source.suffix in CUDA_SUFFIXES else "cxx"
        rule += "_torch" if source in spec.torch_sources else ""
        # The launcher is not in the object's name: it does not change the object, so builds with
        # and without it share objects (ninja still reruns a compile whose command changed).
        signature = "\0".join([rule, compilers[rule], variables[rule_variables[rule]], str(source)])
        obj = _object_path(objects_dir, signature, spec, source)
        objects.append(obj)
        if obj not in emitted:
            emitted.add(obj)
            _build(ninja, obj, rule, [source], {"spec": spec.name, "src": str(source.relative_to(spec.root))})
    library = library_path(spec, spec_dir)
    _build(ninja, library, "link", objects, {"spec": spec.name, "src": library.name})
    return text.getvalue()


def _linker_flags(spec: JitSpec, cxx: str) -> list[str]:
    """The fastest linker that links (toolchain.py), unless the spec names its own. The soname:
    gold names a library in its version definitions by its output path unless it has one, so two
    build dirs would give two different binaries."""
    linker = None if any(f.startswith("-fuse-ld=") for f in spec.extra_ldflags) else fast_linker(cxx)
    return [] if linker is None else [f"-fuse-ld={linker}", f"-Wl,-soname,{spec.name}.so"]


def wrapper_ninja_text(spec_files: Iterable[Path], log_dir: Path) -> str:
    """`log_dir` holds ninja's build log: wrappers that share it (the cells of one matrix build)
    share their objects' records, so an object built for one cell is up to date for the next."""
    text = io.StringIO()
    ninja = _writer(text)
    ninja.comment("written by torchwheel: one ninja run builds every spec below")
    ninja.variable("ninja_required_version", "1.3")
    ninja.variable("builddir", ninja_path(log_dir))
    for path in spec_files:
        ninja.subninja(ninja_path(path))
    return text.getvalue()


def write_if_changed(path: Path, text: str) -> None:
    """Leave an unchanged file alone, so ninja's own bookkeeping stays quiet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file() and path.read_text() == text:
        return
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    temporary.replace(path)
