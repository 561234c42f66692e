"""`TorchInstall`: one installed torch, as a build targets it and as a load runs under it.

The facts that decide whether a binary fits (version, C++11 ABI flag, CUDA version) come from
torch itself, never from constants here: a wrong guess builds or loads a library that fails at
import with `undefined symbol`. A build reads them from torch's own files when torch is not yet
imported (`importable`): importing torch takes one to two seconds, most of a no-op rebuild
(docs/benchmarks.md), and a build needs only the facts.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from torchwheel.errors import ToolchainError
from torchwheel.versions import torch_series

# What a probe prints; it runs inside the other interpreter, so it uses only torch itself.
_PROBE = """
import json, torch
print(json.dumps({
    "version": torch.__version__,
    "cxx11_abi": bool(torch._C._GLIBCXX_USE_CXX11_ABI),
    "cuda_version": torch.version.cuda,
    "prefix": torch.__path__[0],
}))
"""


@dataclass(frozen=True)
class TorchInstall:
    version: str  # as torch reports it, e.g. "2.13.0+cpu"
    cxx11_abi: bool
    cuda_version: str | None  # the CUDA this torch was built with, e.g. "13.0"; None for a CPU build
    prefix: Path  # torch's package directory

    @property
    def series(self) -> str:
        """ "2.14" for torch 2.14.1+cu130: binaries built for one release serve its whole series."""
        return torch_series(self.version)

    @property
    def include_dirs(self) -> tuple[Path, ...]:
        include = self.prefix / "include"
        return (include, include / "torch" / "csrc" / "api" / "include")

    @property
    def library_dir(self) -> Path:
        return self.prefix / "lib"

    @classmethod
    def running(cls) -> TorchInstall:
        """The torch imported in this process."""
        import torch

        return cls(
            version=str(torch.__version__),
            cxx11_abi=bool(torch._C._GLIBCXX_USE_CXX11_ABI),
            cuda_version=torch.version.cuda,
            prefix=Path(torch.__path__[0]),
        )

    @classmethod
    def importable(cls) -> TorchInstall:
        """The torch that `import torch` would give this interpreter, read from its files without
        importing it; the imported one if it is imported already, or if its files do not say."""
        if "torch" in sys.modules:
            return cls.running()
        found = importlib.util.find_spec("torch")
        if found is None or not found.submodule_search_locations:
            return cls.running()  # raises the ImportError a user should see
        prefix = Path(next(iter(found.submodule_search_locations)))
        version = _version_file(prefix / "version.py")
        cxx11_abi = _cxx11_abi(prefix / "lib" / "libc10.so")
        if version is None or "__version__" not in version or "cuda" not in version or cxx11_abi is None:
            return cls.running()
        return cls(
            version=str(version["__version__"]), cxx11_abi=cxx11_abi, cuda_version=version["cuda"], prefix=prefix
        )

    @classmethod
    def probe(cls, python: str | Path) -> TorchInstall:
        """The torch installed for another interpreter (a venv per matrix cell)."""
        import json
        import subprocess  # here: a load never probes, and these cost milliseconds to import

        try:
            result = subprocess.run(
                [str(python), "-c", _PROBE], capture_output=True, text=True, check=False, timeout=300
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise ToolchainError(
                f"cannot run {python} ({error}); pass --python with an interpreter that has torch"
            ) from error
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise ToolchainError(f"cannot import torch with {python}: {last}; install torch into that environment")
        try:
            facts = json.loads(result.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError) as error:
            raise ToolchainError(f"{python} printed no torch facts ({error}); check that it is a Python") from error
        return cls(
            version=str(facts["version"]),
            cxx11_abi=bool(facts["cxx11_abi"]),
            cuda_version=facts["cuda_version"],
            prefix=Path(facts["prefix"]),
        )


def _version_file(path: Path) -> dict[str, str | None] | None:
    """The string (or None) constants that torch's generated `version.py` assigns, by name."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, SyntaxError):
        return None
    constants: dict[str, str | None] = {}
    for node in tree.body:
        match node:  # `__version__ = '2.14.1+cu130'`, `cuda: Optional[str] = '13.0'`
            case (
                ast.Assign(targets=[ast.Name(id=name)], value=ast.Constant(value=str() | None as value))
                | ast.AnnAssign(target=ast.Name(id=name), value=ast.Constant(value=str() | None as value))
            ):
                constants[name] = value
    return constants


def _cxx11_abi(libc10: Path) -> bool | None:
    """Whether torch's libc10 was compiled with `_GLIBCXX_USE_CXX11_ABI=1`: its std::string symbols
    are then named in libstdc++'s `__cxx11` namespace, and a library built with the old ABI names
    none (what `torch._C._GLIBCXX_USE_CXX11_ABI` reports, read from the file torch loads first)."""
    try:
        return b"St7__cxx11" in libc10.read_bytes()
    except OSError:
        return None
