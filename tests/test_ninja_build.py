"""One wrapper ninja file, one subninja per spec, one ninja run; outputs at <name>/<name>.so."""

import subprocess
import sys
from pathlib import Path

from torchwheel.compile.ninja_files import ninja_path


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
