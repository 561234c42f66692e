"""With no usable prebuilt binary, an op is compiled once into the cache; later processes load
it from there without compiling, and any change to what the binary is made of rebuilds it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_python

USE_TINY = """
import json, sys, torch
from torchwheel import Loader
from tiny_project import PROJECT
loaded = Loader(PROJECT).load("scale_a")
x = torch.ones(2)
torch.ops.tiny.scale_a(x)
facts = {"origin": loaded.origin, "reason": loaded.reason, "path": str(loaded.path)}
print(json.dumps({**facts, "value": x[0].item()}))
"""


def use_tiny(project: Path, env: dict[str, str], **extra: str) -> tuple[dict, str]:
    result = run_python(USE_TINY, {**env, "PYTHONPATH": str(project), **extra})
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def test_a_cold_spec_is_compiled_once_and_logged_with_reason_and_time(tiny_project: Path, private_env) -> None:
    first, log = use_tiny(tiny_project, private_env)
    assert first["origin"] == "jit-build" and first["value"] == 2.0
    assert first["reason"] == "no prebuilt binary for it is installed"
    built = [line for line in log.splitlines() if "JIT-built" in line]
    assert len(built) == 1
    assert built[0].startswith("[torchwheel] tiny: JIT-built scale_a in ")
    assert built[0].endswith(" s (no prebuilt binary for it is installed)")


def test_a_second_process_loads_from_the_cache_without_compiling(tiny_project: Path, private_env) -> None:
    first, _ = use_tiny(tiny_project, private_env)
    library = Path(first["path"])
    before = library.stat().st_mtime_ns
    second, log = use_tiny(tiny_project, private_env)
    assert second["origin"] == "jit-cache" and second["path"] == first["path"]
    assert "compiling" not in log and library.stat().st_mtime_ns == before
    assert len(list(library.parent.parent.iterdir())) == 1  # one cache entry, no leftovers


def test_a_changed_source_rebuilds(tiny_project: Path, private_env) -> None:
    first, _ = use_tiny(tiny_project, private_env)
    kernel = tiny_project / "src" / "kernel.cpp"
    kernel.write_text(kernel.read_text().replace("*= TINY_FACTOR", "*= TINY_FACTOR + 1"))
    second, _ = use_tiny(tiny_project, private_env)
    assert second["origin"] == "jit-build" and second["value"] == 3.0
    assert second["path"] != first["path"]


@pytest.mark.slow  # two compiles; tests/test_cache_key.py shows the key change without them
def test_a_changed_included_header_rebuilds(tiny_project: Path, private_env) -> None:
    use_tiny(tiny_project, private_env)
    header = tiny_project / "src" / "include" / "tiny" / "scale.h"
    header.write_text(header.read_text().replace("2.0f", "4.0f"))
    second, _ = use_tiny(tiny_project, private_env)
    assert second["origin"] == "jit-build" and second["value"] == 4.0


@pytest.mark.slow  # two compiles; tests/test_cache_key.py shows the key change without them
def test_a_changed_flag_rebuilds(tiny_project: Path, private_env) -> None:
    use_tiny(tiny_project, private_env)
    second, _ = use_tiny(tiny_project, private_env, TINY_EXTRA_CFLAGS="-DTINY_FACTOR=5.0f")
    assert second["origin"] == "jit-build" and second["value"] == 5.0


@pytest.mark.slow  # two compiles; tests/test_cache_key.py shows the key change without them
def test_a_prebuilt_binary_for_another_torch_is_refused_with_its_reason(tiny_project: Path, private_env) -> None:
    out = tiny_project / "out"
    run_python(
        "import sys; from torchwheel.cli import main; "
        f"sys.exit(main(['build', 'tiny_project:PROJECT', '--out', {str(out)!r}]))",
        {**private_env, "PYTHONPATH": str(tiny_project)},
    )
    aot = out / "data" / "aot"
    assert use_tiny(tiny_project, private_env, TINY_AOT_PATH=str(aot))[0]["origin"] == "prebuilt"
    manifest = json.loads((aot / "manifest.json").read_text())
    manifest["specs"]["scale_a"]["torch_version"] = "2.12.0"
    (aot / "manifest.json").write_text(json.dumps(manifest))
    loaded, log = use_tiny(tiny_project, private_env, TINY_AOT_PATH=str(aot))
    assert loaded["origin"] == "jit-build"
    assert loaded["reason"].startswith(
        f"prebuilt {aot}/scale_a/scale_a.so: built for torch 2.12, running torch is 2.13"
    )
    assert "JIT-built scale_a" in log


def test_with_jit_disabled_the_error_lists_why_nothing_could_load(tiny_project: Path, private_env) -> None:
    code = USE_TINY.replace(
        'loaded = Loader(PROJECT).load("scale_a")',
        """
from torchwheel.errors import LoadError
try:
    Loader(PROJECT).load("scale_a")
except LoadError as error:
    print(error); sys.exit(0)
sys.exit(1)""",
    )
    result = run_python(code, {**private_env, "PYTHONPATH": str(tiny_project), "TINY_DISABLE_JIT": "1"})
    assert result.stdout.strip() == (
        "tiny: cannot load scale_a: no prebuilt binary for it is installed; JIT is disabled by "
        "TINY_DISABLE_JIT, so install a matching prebuilt package or unset it"
    )


@pytest.mark.slow
def test_a_minfer_op_jit_builds_then_loads_from_cache_in_the_next_process(private_env) -> None:
    code = """
import json, torch, minfer
x = torch.randn(3, 64)
torch.testing.assert_close(minfer.rmsnorm(x, torch.ones(64)), minfer.reference.rmsnorm(x, torch.ones(64)))
print(json.dumps({n: s.origin for n, s in minfer.loaded_specs().items()}))
"""
    code = code.replace("import json, torch, minfer", "import json, torch, minfer, minfer.reference")
    first = run_python(code, private_env)
    assert json.loads(first.stdout.strip().splitlines()[-1]) == {"rmsnorm_fp32_cpu": "jit-build"}
    second = run_python(code, private_env)
    assert json.loads(second.stdout.strip().splitlines()[-1]) == {"rmsnorm_fp32_cpu": "jit-cache"}
    assert "compiling" not in second.stderr
