"""The cache key: a hash of everything that changes a spec's binary, and nothing else.

Inputs: the bytes of every source and of every project header they include, each under its
name relative to the spec's root; the flags (flags.py); the arch list; the target torch's
version, C++11 ABI and C++ standard; and the compilers' reported versions. Not inputs: any
path, so a moved checkout or a symlinked CUDA_HOME still hits. Nor the compiler launcher
(`<PREFIX>_COMPILER_LAUNCHER`, e.g. sccache): it runs the same compiler on the same command and
a hit hands back the bytes that compile wrote, so the binary is the same with or without it
(tests/test_launcher.py compares them byte for byte); keyed on it, a JIT entry built where CI's
sccache is set would miss for every user without it. Nor the linker (the fastest that links,
toolchain.py's `fast_linker`): gold and GNU ld write different bytes for the same code, but a
key on it would make every hit probe the linkers (two compiler runs) and an entry built with one
miss where only the other is.

Headers are found by scanning `#include` lines, not from a compiler depfile: the key must be
known before anything compiles, so that a hit loads without running ninja at all. The scan
follows includes that resolve inside the spec's own include dirs or next to the including file
and ignores the rest (torch and system headers, which the versions above stand for). It reads
both branches of an `#if`, so it may hash a header too many, never one too few.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict
from pathlib import Path

from torchwheel.arch import format_arch_list
from torchwheel.compile.build_target import BuildTarget
from torchwheel.compile.flags import FLAGS_REVISION, spec_flags
from torchwheel.spec import JitSpec

KEY_SCHEMA = 1
_INCLUDE = re.compile(rb'^\s*#\s*include\s*[<"]([^">]+)[">]', re.MULTILINE)


def project_headers(spec: JitSpec) -> list[Path]:
    """The project headers that the spec's sources include, directly or not, sorted."""
    found: set[Path] = set()
    pending = list(spec.all_sources)
    while pending:
        current = pending.pop()
        for name in _INCLUDE.findall(current.read_bytes()):
            relative = name.decode(errors="replace")
            for base in (current.parent, *spec.include_dirs):
                candidate = (base / relative).resolve()
                if candidate.is_file():
                    if candidate not in found and candidate not in spec.all_sources:
                        found.add(candidate)
                        pending.append(candidate)
                    break
    return sorted(found)


def _name_in_key(spec: JitSpec, path: Path) -> str:
    return str(path.relative_to(spec.root)) if path.is_relative_to(spec.root) else path.name


def key_inputs(spec: JitSpec, target: BuildTarget) -> dict[str, object]:
    def digest(path: Path) -> list[str]:
        return [_name_in_key(spec, path), hashlib.sha256(path.read_bytes()).hexdigest()]

    return {
        "key_schema": KEY_SCHEMA,
        "flags_revision": FLAGS_REVISION,
        "name": spec.name,
        "device": spec.device,
        "sources": [digest(p) for p in spec.sources],
        "torch_sources": [digest(p) for p in spec.torch_sources],
        "headers": [digest(p) for p in project_headers(spec)],
        "include_dirs": [_name_in_key(spec, p) for p in spec.include_dirs],
        "flags": asdict(spec_flags(spec, target)),
        "arch_list": format_arch_list(archs) if (archs := target.archs_for(spec)) else None,
        "torch": _torch_inputs(spec, target),
        "toolchain": target.toolchain.identity(),
    }


def _torch_inputs(spec: JitSpec, target: BuildTarget) -> dict[str, object]:
    """What of the target torch changes the binary. For a stable spec, its target version and
    not the running torch's: an entry JIT-built under one torch serves the next one too. Its C++11
    ABI is fixed by flags.py, so the torch's does not split entries."""
    if spec.torch_abi == "stable":
        return {
            "stable_abi": spec.min_torch,
            "cxx_standard": target.cxx_standard,
            "cuda_version": target.torch.cuda_version,
        }
    return {
        "version": target.torch.version,
        "cxx11_abi": target.torch.cxx11_abi,
        "cxx_standard": target.cxx_standard,
        "cuda_version": target.torch.cuda_version,
    }


def cache_key(spec: JitSpec, target: BuildTarget) -> str:
    inputs = key_inputs(spec, target)
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]
