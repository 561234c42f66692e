"""One wrapper ninja file, one subninja per spec, one ninja run; outputs at <name>/<name>.so."""

import subprocess
import sys
from pathlib import Path

from conftest import run_python
from torchwheel import JitSpec
from torchwheel.compile.build_target import BuildTarget
from torchwheel.compile.ninja_files import ninja_path, spec_ninja_text
from torchwheel.compile.toolchain import find_toolchain
from torchwheel.runtime.torch_install import TorchInstall


def torchwheel(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "torchwheel", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_ninja_path_escapes_dollar_space_and_colon() -> None:
    assert ninja_path("/a/$x y:z") == "/a/$$x$ y$:z"


def test_one_ninja_run_builds_every_spec_from_a_path_with_dollar_and_space(
    tiny_project: Path, private_env: dict[str, str]
) -> None:
    env = {**private_env, "PYTHONPATH": str(tiny_project)}
    out = tiny_project / "out"
    result = torchwheel("build", "tiny_project:PROJECT", "--out", str(out), cwd=tiny_project, env=env)
    assert result.returncode == 0, result.stdout + result.stderr

    wrapper = (out / "build" / "build.ninja").read_text()
    subninjas = [line for line in wrapper.splitlines() if line.startswith("subninja ")]
    assert subninjas == [f"subninja {ninja_path(out / 'build' / n / 'build.ninja')}" for n in ("scale_a", "scale_b")]
    # Two specs of 3 steps each (kernel, binding, link) in one run: its counter reaches 6.
    assert "[6/6]" in result.stdout
    for name in ("scale_a", "scale_b"):
        assert (out / "build" / name / f"{name}.so").is_file()
        assert (out / "data" / "aot" / name / f"{name}.so").is_file()
    assert "built 2 specs (6 build steps)" in result.stdout


def test_a_second_build_with_nothing_changed_runs_no_step(tiny_project: Path, private_env: dict[str, str]) -> None:
    env = {**private_env, "PYTHONPATH": str(tiny_project)}
    out = tiny_project / "out"
    torchwheel("build", "tiny_project:PROJECT", "--out", str(out), cwd=tiny_project, env=env)
    again = torchwheel("build", "tiny_project:PROJECT", "--out", str(out), cwd=tiny_project, env=env)
    assert again.returncode == 0
    assert "built 2 specs (0 build steps)" in again.stdout


def test_the_spec_with_the_most_source_is_first_in_the_wrapper(tiny_project: Path, private_env: dict[str, str]) -> None:
    # ninja starts equally deep steps in file order: the longest compile must not start last.
    binding = tiny_project / "src" / "scale_b.cpp"
    binding.write_text(binding.read_text() + "// a longer unit\n" * 50)
    out = tiny_project / "out"
    env = {**private_env, "PYTHONPATH": str(tiny_project)}
    result = torchwheel("build", "tiny_project:PROJECT", "--out", str(out), cwd=tiny_project, env=env)
    assert result.returncode == 0, result.stdout + result.stderr

    wrapper = (out / "build" / "build.ninja").read_text()
    subninjas = [line for line in wrapper.splitlines() if line.startswith("subninja ")]
    assert subninjas == [f"subninja {ninja_path(out / 'build' / n / 'build.ninja')}" for n in ("scale_b", "scale_a")]


def test_a_build_never_imports_torch(tiny_project: Path, private_env: dict[str, str]) -> None:
    # Importing torch was most of a no-op rebuild (1.4 of 1.5 s): a build reads torch's files.
    env = {**private_env, "PYTHONPATH": str(tiny_project)}
    command = [sys.executable, "-X", "importtime", "-m", "torchwheel", "build", "tiny_project:PROJECT"]
    result = subprocess.run(
        [*command, "--out", str(tiny_project / "out")], cwd=tiny_project, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "built 2 specs (6 build steps)" in result.stdout
    imported = {
        line.rpartition("|")[2].strip() for line in result.stderr.splitlines() if line.startswith("import time")
    }
    assert "torchwheel.compile.ninja_run" in imported
    assert "torch" not in imported


def test_torch_facts_read_from_its_files_are_those_of_the_imported_torch(
    private_env: dict[str, str], torch214_python: str
) -> None:
    code = """
        import sys
        from torchwheel.runtime.torch_install import TorchInstall
        read = TorchInstall.importable()
        assert "torch" not in sys.modules
        assert read == TorchInstall.running(), (read, TorchInstall.running())
        print(read.version, read.cuda_version)
    """
    here = run_python(code, private_env).stdout.split()
    assert here == [TorchInstall.running().version, str(TorchInstall.running().cuda_version)]
    assert run_python(code, private_env, python=torch214_python).stdout.split() == ["2.14.1+cu130", "13.0"]


def test_a_linker_the_compiler_cannot_run_is_passed_over(private_env: dict[str, str], tmp_path: Path) -> None:
    broken = tmp_path / "bin" / "ld.mold"
    broken.parent.mkdir()
    broken.write_text("#!/bin/sh\nexit 1\n")
    broken.chmod(0o755)
    env = {**private_env, "PATH": f"{broken.parent}:{private_env['PATH']}"}
    code = """
        import shutil
        from torchwheel.compile.toolchain import fast_linker
        linker = fast_linker("c++")
        working = [name for name in ("lld", "gold") if shutil.which(f"ld.{name}")]
        print(linker or "default", (working or ["default"])[0])
    """
    chosen, expected = run_python(code, env).stdout.split()
    assert chosen == expected != "mold"


def test_a_spec_that_names_its_linker_keeps_it(tmp_path: Path) -> None:
    source = tmp_path / "kernel.cpp"
    source.write_text("int one() { return 1; }\n")
    spec = JitSpec(name="own_linker", sources=[source], extra_ldflags=["-fuse-ld=bfd"], root=tmp_path)
    target = BuildTarget.make(TorchInstall.importable(), find_toolchain("c++", None, need_cuda=False))
    text = spec_ninja_text(spec, target, tmp_path / "own_linker", tmp_path / "objs", set())
    (ldflags,) = [line for line in text.splitlines() if line.startswith("ldflags = ")]
    assert [word for word in ldflags.split() if word.startswith("-fuse-ld=")] == ["-fuse-ld=bfd"]


def test_a_compile_error_names_the_spec_and_shows_the_compiler_output(
    tiny_project: Path, private_env: dict[str, str]
) -> None:
    (tiny_project / "src" / "scale_b.cpp").write_text("this is not C++;\n")
    env = {**private_env, "PYTHONPATH": str(tiny_project)}
    result = torchwheel("build", "tiny_project:PROJECT", "--out", str(tiny_project / "out"), cwd=tiny_project, env=env)
    assert result.returncode == 3  # a build failure
    assert "error:" in result.stderr  # the compiler's own words
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("torchwheel: error: compiling scale_b failed (ninja exit 1)")


def test_an_unknown_project_is_one_line(private_env: dict[str, str], tmp_path: Path) -> None:
    result = torchwheel("build", "no_such_project", cwd=tmp_path, env=private_env)
    assert result.returncode == 2  # a usage error
    assert result.stderr.startswith("torchwheel: error: project 'no_such_project' is not installed")
    assert len(result.stderr.strip().splitlines()) == 1
