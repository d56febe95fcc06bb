"""Every error path of the command line ends in one line and exit 2 (1 stays "a check failed"):
recursion, closed pipes, full devices, permissions, other OS errors, memory, bugs; the
newcomer's entry points (bare command, --version, python -m reports)."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest
from hostile import SEED, refused, run, write

import reports.inputs
from reports import cli

# A real process is needed only where the fault is in the file descriptors themselves.
GRADCHECK = [sys.executable, "-m", "reports", "gradcheck", *SEED]


def test_json_nested_100000_deep_is_one_line(capsys, tmp_path: Path) -> None:
    deep = write(tmp_path, "deep.json", "[" * 100_000 + "]" * 100_000)
    assert "nested deeper" in refused(capsys, "compare", deep, "--data", deep)


def _raising(error: BaseException):
    def command(args: object) -> int:
        raise error
    return command


@pytest.mark.parametrize(("error", "expected"), [
    (RecursionError("maximum recursion depth exceeded"), "nested too deeply"),
    (MemoryError(), "out of memory"),
    (OSError(errno.ENOSPC, "No space left on device", "out/report"), "no space left"),
    (PermissionError(errno.EACCES, "Permission denied", "/root/x"), "permission denied"),
    (OSError(errno.EIO, "Input/output error"), "Input/output error"),
    (BrokenPipeError(errno.EPIPE, "Broken pipe"), "broken pipe"),
    (KeyError("a bug"), "internal error: KeyError"),
    (TypeError("data.x: must be numbers"), "data.x: must be numbers"),
], ids=["recursion", "memory", "enospc", "permission", "oserror", "brokenpipe", "bug",
        "typeerror"])
def test_each_error_class_is_one_line_and_exit_2(capsys, monkeypatch: pytest.MonkeyPatch,
                                                 error: BaseException, expected: str) -> None:
    from reports.commands import compare

    monkeypatch.setattr(compare, "run", _raising(error))
    assert expected in refused(capsys, "compare", *SEED)


def test_a_bug_shows_its_traceback_on_request(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    from reports.commands import compare

    monkeypatch.setattr(compare, "run", _raising(KeyError("a bug")))
    monkeypatch.setenv(cli.TRACEBACK_VARIABLE, "1")
    with pytest.raises(KeyError):
        cli.main(["compare", *SEED])


def test_ctrl_c_exits_130(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    from reports.commands import compare

    monkeypatch.setattr(compare, "run", _raising(KeyboardInterrupt()))
    code, _, err = run(capsys, "compare", *SEED)
    assert code == 130 and err == "backprop-harness: interrupted\n"


def test_stdout_on_a_full_device_is_one_line() -> None:
    with open("/dev/full", "w") as full:
        result = subprocess.run(GRADCHECK, stdout=full, stderr=subprocess.PIPE, text=True,
                                check=False)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "no space left" in result.stderr, result.stderr


def test_a_closed_pipe_is_one_line() -> None:
    process = subprocess.Popen(GRADCHECK, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader went away before the first byte
    err = process.stderr.read()
    assert process.wait() == 2
    assert err.count("\n") == 1 and "broken pipe" in err, err


def test_help_to_a_full_device_is_one_line() -> None:
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "reports", "--help"], stdout=full,
                                stderr=subprocess.PIPE, text=True, check=False)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr


def test_python_m_reports_gives_the_version() -> None:
    result = subprocess.run([sys.executable, "-m", "reports", "--version"], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0 and result.stdout.startswith("backprop-harness ")


def test_a_bare_command_prints_usage_and_the_commands(capsys) -> None:
    code, out, _ = run(capsys)
    assert code == 2 and out.startswith("usage: backprop-harness")
    for name in ("compare", "gradcheck", "experiment", "fuzz", "report"):
        assert name in out


def test_an_unknown_command_is_one_line(capsys) -> None:
    refused(capsys, "frobnicate")


def test_help_lists_the_exit_codes_and_the_section_keys(capsys) -> None:
    from reports.sections import discover

    code, out, _ = run(capsys, "report", "--help")
    assert code == 0 and "130 interrupted" in " ".join(out.split())
    for module in discover():
        assert module.KEY in out
    readme = Path("README.md").read_text()
    assert all(f"`{module.KEY}`" in readme for module in discover())


def test_every_command_limits_its_threads(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(reports.inputs, "limit_threads",
                        lambda torch=True: calls.append(torch))
    assert run(capsys, "compare", *SEED)[0] == 0
    assert run(capsys, "gradcheck", *SEED)[0] == 0
    assert calls == [True, False]  # gradcheck is numpy only: no torch import for it


def test_limit_threads_gives_one_blas_and_one_torch_thread() -> None:
    import torch
    from threadpoolctl import threadpool_info

    reports.inputs.limit_threads()
    assert torch.get_num_threads() == 1
    assert all(pool["num_threads"] == 1 for pool in threadpool_info())
