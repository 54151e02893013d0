"""Running real client programs from tests.

Every command and its output is appended to test-output/logs/e2e-commands.log, so a failing
end-to-end test can be followed step by step without cluttering the test runner's output.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.server import OUTPUT

COMMAND_LOG = OUTPUT / "logs" / "e2e-commands.log"


@dataclass(frozen=True)
class Result:
    args: list[str]
    returncode: int
    output: bytes
    errors: bytes

    @property
    def stdout(self) -> str:
        return self.output.decode(errors="replace")

    @property
    def stderr(self) -> str:
        return self.errors.decode(errors="replace")

    def describe(self) -> str:
        return (
            f"$ {shlex.join(self.args)}\nexit status {self.returncode}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


def require(binary: str) -> str:
    """The binary's full path; the test FAILS (never skips) when it is missing: CI installs every client."""
    path = shutil.which(binary)
    if path is None:
        pytest.fail(f"{binary!r} is not installed (CI installs skopeo podman buildah docker.io busybox-static)")
    return path


def run(
    args: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    cwd: Path | None = None,
    timeout: float = 300,
    check: bool = True,
) -> Result:
    """Run a client; with check=True a non-zero exit fails the test with the full transcript."""
    argv = [str(arg) for arg in args]
    require(argv[0])
    started = time.monotonic()
    completed = subprocess.run(
        argv,
        input=stdin if stdin is not None else b"",
        capture_output=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=timeout,
        check=False,
    )
    result = Result(argv, completed.returncode, completed.stdout, completed.stderr)
    _log(result, time.monotonic() - started)
    if check and result.returncode != 0:
        pytest.fail(f"command failed:\n{result.describe()}")
    return result


def run_failing(args: Sequence[str | Path], *, env: Mapping[str, str] | None = None) -> Result:
    """Run a command that must fail; returns its transcript for the caller's assertions on the error."""
    result = run(args, env=env, check=False)
    assert result.returncode != 0, f"command unexpectedly succeeded:\n{result.describe()}"
    return result


def _log(result: Result, seconds: float) -> None:
    COMMAND_LOG.parent.mkdir(parents=True, exist_ok=True)
    test = os.environ.get("PYTEST_CURRENT_TEST", "-")
    with COMMAND_LOG.open("a", encoding="utf-8") as log:
        log.write(f"=== {time.strftime('%H:%M:%S')} {test} ({seconds:.1f}s)\n{result.describe()}\n\n")
