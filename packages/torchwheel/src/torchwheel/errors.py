"""The exceptions a user can cause, one class per kind of cause, each with its exit status.

Every message is one line that names what is wrong, the value that is wrong, and what to do
about it; the CLI prints it as is and exits with the class's `exit_code`:

| status | cause | classes |
|---|---|---|
| 1 | the check ran and found faults (audit, doctor) | `AuditFaults` |
| 2 | a malformed input: argument, setting, spec, matrix, manifest | `UsageError` and below |
| 3 | a compiler or ninja failed | `BuildError` |
| 4 | the environment refused: no toolkit, no torch, no usable binary | `EnvironmentRefused` and below |
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar


class ExitCode(IntEnum):
    OK = 0
    FAULTS_FOUND = 1
    USAGE = 2
    BUILD_FAILED = 3
    ENVIRONMENT = 4


class TorchwheelError(Exception):
    """Base of every error caused by input, settings or the environment (not by a bug)."""

    exit_code: ClassVar[ExitCode] = ExitCode.USAGE


class UsageError(TorchwheelError):
    """A value the user gave is malformed."""


class SpecError(UsageError):
    """A JitSpec, or a set of them, is malformed."""


class SettingsError(UsageError):
    """An environment variable, command-line value or matrix entry is malformed."""


class AuditError(UsageError):
    """A path given to the audit cannot be audited (missing, not ELF, not a wheel)."""


class ManifestError(TorchwheelError):
    """A manifest.json is unreadable or does not follow the schema."""

    exit_code = ExitCode.ENVIRONMENT


class EnvironmentRefused(TorchwheelError):
    """The machine lacks what the work needs, or holds something torchwheel must not use."""

    exit_code = ExitCode.ENVIRONMENT


class ToolchainError(EnvironmentRefused):
    """A compiler, toolkit or torch that a build needs is missing or unusable."""


class LoadError(EnvironmentRefused):
    """No usable binary for a spec, and JIT could not (or may not) provide one."""


class BuildError(TorchwheelError):
    """ninja or a compiler failed; `log` holds the tail of their output."""

    exit_code = ExitCode.BUILD_FAILED

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log


class AuditFaults(TorchwheelError):
    """Built files failed the audit, so nothing was published."""

    exit_code = ExitCode.FAULTS_FOUND


class NoGpuVisible(LoadError):
    """A CUDA spec must be JIT-built, and no GPU is visible to choose its archs for."""
