"""Settings come from the environment; a malformed value is one line naming variable, value, fix."""

from pathlib import Path

import pytest

from torchwheel.errors import SettingsError
from torchwheel.settings import Settings, Sources


def settings(**env: str) -> Settings:
    return Settings.resolve(Sources("minfer", "MINFER", environ={"HOME": "/home/u", **env}))


def test_project_variable_wins_over_the_torchwheel_one() -> None:
    s = settings(MINFER_CACHE_DIR="/a", TORCHWHEEL_CACHE_DIR="/b")
    assert s.cache_dir == Path("/a")


def test_torchwheel_variable_steers_every_project() -> None:
    assert settings(TORCHWHEEL_CACHE_DIR="/b").cache_dir == Path("/b")


def test_default_cache_is_per_project_under_xdg_cache_home() -> None:
    assert settings(XDG_CACHE_HOME="/x").cache_dir == Path("/x/torchwheel/minfer")


def test_default_lock_dir_is_per_user_in_dev_shm() -> None:
    import os

    assert settings().lock_dir == Path(f"/dev/shm/torchwheel-{os.getuid()}")


def test_arch_list_falls_back_to_torch_cuda_arch_list() -> None:
    assert settings(TORCH_CUDA_ARCH_LIST="8.0").arch_list == "8.0"
    assert settings(TORCH_CUDA_ARCH_LIST="8.0", MINFER_CUDA_ARCH_LIST="9.0a").arch_list == "9.0a"


def test_a_boolean_that_is_not_one_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"^MINFER_DISABLE_JIT='maybe' is not a boolean; use 1 or 0$"):
        settings(MINFER_DISABLE_JIT="maybe")


@pytest.mark.parametrize("value", ["0", "-2", "four"])
def test_max_jobs_must_be_a_positive_number(value: str) -> None:
    with pytest.raises(SettingsError, match=rf"^MAX_JOBS='{value}' is not a positive whole number"):
        settings(MAX_JOBS=value)


def test_disable_and_force_jit_together_are_refused() -> None:
    with pytest.raises(SettingsError, match="MINFER_DISABLE_JIT and MINFER_FORCE_JIT are both set"):
        settings(MINFER_DISABLE_JIT="1", MINFER_FORCE_JIT="1")


def test_an_empty_cache_dir_is_refused() -> None:
    with pytest.raises(SettingsError, match="MINFER_CACHE_DIR is set but empty"):
        settings(MINFER_CACHE_DIR="")


def test_accept_ptx_is_off_unless_set() -> None:
    assert not settings().accept_ptx
    assert settings(MINFER_ACCEPT_PTX="1").accept_ptx
    assert settings(TORCHWHEEL_ACCEPT_PTX="yes").accept_ptx


def test_the_arch_list_remembers_the_variable_it_came_from() -> None:
    assert settings(TORCH_CUDA_ARCH_LIST="8.0").origin("arch_list") == "TORCH_CUDA_ARCH_LIST"
    assert settings(TORCHWHEEL_CUDA_ARCH_LIST="9.0a").origin("arch_list") == "TORCHWHEEL_CUDA_ARCH_LIST"
    both = settings(MINFER_CUDA_ARCH_LIST="9.0a", TORCH_CUDA_ARCH_LIST="8.0")
    assert both.origin("arch_list") == "MINFER_CUDA_ARCH_LIST"
    assert settings().origin("arch_list") is None


def test_the_lock_dir_is_settable() -> None:
    assert settings(MINFER_LOCK_DIR="/l").lock_dir == Path("/l")
    assert settings(TORCHWHEEL_LOCK_DIR="/t").lock_dir == Path("/t")


# --- one cascade: the project's table, then the environment, then the command line -----------

TABLE = {"max_jobs": 3, "arch_list": "8.0;9.0a", "build_dir": "out/cells"}


def cascade(table: dict[str, object] = TABLE, flags: dict[str, object] | None = None, **env: str) -> Settings:
    sources = Sources("minfer", "MINFER", table, "/p/pyproject.toml", {"HOME": "/home/u", **env}, flags or {})
    return Settings.resolve(sources)


def test_the_projects_table_sets_what_nothing_else_does() -> None:
    settings = cascade()
    assert (settings.jobs, settings.arch_list, settings.build_dir) == (3, "8.0;9.0a", "out/cells")
    assert settings.origin("max_jobs") == "/p/pyproject.toml [tool.torchwheel.settings] max_jobs"


def test_the_environment_overrides_the_table() -> None:
    settings = cascade(MAX_JOBS="5", TORCH_CUDA_ARCH_LIST="9.0")
    assert (settings.jobs, settings.arch_list) == (5, "9.0")
    assert settings.origin("arch_list") == "TORCH_CUDA_ARCH_LIST"


def test_the_command_line_overrides_the_environment_and_the_table() -> None:
    settings = cascade(flags={"max_jobs": 7, "build_dir": "b"}, MAX_JOBS="5", MINFER_BUILD_DIR="e")
    assert (settings.jobs, settings.build_dir, settings.origin("max_jobs")) == (7, "b", "--jobs")


def test_an_option_not_given_leaves_the_sources_below_it() -> None:
    assert cascade(flags={"max_jobs": None}, MAX_JOBS="5").jobs == 5


def test_nothing_set_gives_the_defaults_and_no_origin() -> None:
    settings = cascade(table={})
    assert (settings.max_jobs, settings.build_dir, settings.origin("build_dir")) == (None, "build/cells", None)


@pytest.mark.parametrize(
    ("table", "flags", "env", "message"),
    [
        (
            {"max_jobs": "four"},
            {},
            {},
            "/p/pyproject.toml [tool.torchwheel.settings] max_jobs = 'four' is not a positive whole number; "
            "use e.g. max_jobs = 4",
        ),
        ({"max_jobs": 2.5}, {}, {}, "max_jobs = 2.5 is not a positive whole number"),
        ({"build_timeout": True}, {}, {}, "build_timeout = True is not a number of seconds; use e.g. build_timeout = "),
        ({"arch_list": 90}, {}, {}, "[tool.torchwheel.settings] arch_list = 90 is not a string; write it in quotes"),
        ({}, {"max_jobs": 0}, {}, "--jobs 0 is not a positive whole number; use e.g. --jobs 4"),
        ({}, {}, {"MAX_JOBS": "0"}, "MAX_JOBS='0' is not a positive whole number; use e.g. MAX_JOBS=4"),
    ],
    ids=["table-word", "table-float", "table-boolean", "table-not-text", "option", "environment"],
)
def test_a_malformed_value_is_one_line_naming_where_it_was_given(
    table: dict[str, object], flags: dict[str, object], env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        cascade(table, flags, **env)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_a_pep517_config_setting_is_named_as_a_front_end_takes_it() -> None:
    sources = Sources("minfer", "MINFER", environ={}, flags={"max_jobs": "zero"}, flag_style="config setting")
    with pytest.raises(SettingsError, match=r"^-C jobs=zero is not a positive whole number; use e.g. -C jobs=4$"):
        Settings.resolve(sources)


def test_a_malformed_value_overridden_by_a_higher_source_is_never_read() -> None:
    """Only the value that wins is checked, as a command that sets it means to replace it."""
    assert cascade({"max_jobs": "four"}, MAX_JOBS="2").jobs == 2


def test_a_config_setting_that_is_no_setting_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchwheel.release.pep517 import build_wheel

    (tmp_path / "pyproject.toml").write_text('[tool.torchwheel.variant]\nmatrix = "matrix.toml"\n')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingsError) as raised:
        build_wheel(str(tmp_path / "dist"), {"cell": "cpu", "jbos": "2"})
    assert str(raised.value) == (
        "-C jbos is no config setting of torchwheel.pep517; use build-dir, cell, envs-dir, jobs, python"
    )
    assert not (tmp_path / "dist").exists()
