"""Hostile output paths: nothing but a regular file is ever replaced, refusals come before work,
and the report's two files change as one unit."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hostile import refused, run

from manual import files
from reports.commands import experiment, fuzz
from reports.commands import report as report_command


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any command that gets past its output check fails the test loudly."""
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before the output path was checked")

    from reference.fuzz import campaign as reference_fuzz
    from reports import report
    from reports.experiments import vanishing

    monkeypatch.setattr(report, "run", forbidden)
    monkeypatch.setattr(vanishing, "run_experiment", forbidden)
    monkeypatch.setattr(reference_fuzz, "run_campaign", forbidden)


def test_report_at_a_device_is_refused_and_the_device_stays(capsys, no_work) -> None:
    assert "not a directory" in refused(capsys, "report", "--out", "/dev/null")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_report_at_a_regular_file_is_refused(capsys, no_work, tmp_path: Path) -> None:
    target = tmp_path / "page"
    target.write_text("mine")
    refused(capsys, "report", "--out", str(target))
    assert target.read_text() == "mine"


def test_report_below_a_regular_file_is_refused(capsys, no_work, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    assert "is not a directory" in refused(capsys, "report", "--out",
                                           str(tmp_path / "file" / "report"))


def test_report_in_a_missing_folder_is_refused(capsys, no_work, tmp_path: Path) -> None:
    assert "does not exist" in refused(capsys, "report", "--out", str(tmp_path / "a" / "b"))


def test_report_in_a_folder_with_other_files_is_refused(capsys, no_work, tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("precious")
    assert "thesis.tex" in refused(capsys, "report", "--out", str(tmp_path))
    assert (tmp_path / "thesis.tex").read_text() == "precious"


def test_report_to_stdout_is_refused(capsys, no_work) -> None:
    assert "folder" in refused(capsys, "report", "--out", "-")


def test_report_in_an_unwritable_folder_is_refused(capsys, no_work, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    def read_only(*args: object, **kwargs: object) -> None:  # root ignores chmod, so patch
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(files.tempfile, "mkstemp", read_only)
    assert "cannot write" in refused(capsys, "report", "--out", str(tmp_path / "new"))


@pytest.mark.parametrize("target", ["/dev/full", "/dev/null"])
def test_experiment_out_at_a_device_is_refused(capsys, no_work, target: str) -> None:
    assert "not a regular file" in refused(capsys, "experiment", "vanishing", "--out", target)


def test_experiment_out_at_a_directory_is_refused(capsys, no_work, tmp_path: Path) -> None:
    assert "directory" in refused(capsys, "experiment", "vanishing", "--out", str(tmp_path))


def test_experiment_out_at_a_symlink_is_refused(capsys, no_work, tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text("{}")
    (tmp_path / "link.json").symlink_to(real)
    refused(capsys, "experiment", "vanishing", "--out", str(tmp_path / "link.json"))
    assert real.read_text() == "{}"


@pytest.mark.parametrize("where", ["/dev/null", "missing/dir/campaign.json", "."])
def test_fuzz_out_is_checked_before_the_campaign(capsys, no_work, tmp_path: Path,
                                                 where: str) -> None:
    target = where if where.startswith("/") else str(tmp_path / where)
    refused(capsys, "fuzz", "--examples", "3", "--out", target)


def test_fuzz_failures_at_a_file_is_refused(capsys, no_work, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    assert "--failures" in refused(capsys, "fuzz", "--out", str(tmp_path / "c.json"),
                                   "--failures", str(tmp_path / "f"))


def test_the_default_folders_are_created_by_the_commands() -> None:
    # Only a command's own default may create missing folders (out/ is the project's).
    assert str(fuzz.DEFAULT_OUT).startswith("out")
    assert str(report_command.DEFAULT_OUT).startswith("out")
    assert experiment.NAME == "experiment"


def test_atomic_write_never_replaces_a_device_or_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a regular file"):
        files.atomic_write(Path("/dev/null"), "x")
    with pytest.raises(ValueError, match="not a regular file"):
        files.atomic_write(tmp_path, "x")
    files.atomic_write(tmp_path / "ok.txt", "x")
    assert (tmp_path / "ok.txt").read_text() == "x"


def test_output_file_dash_is_stdout_and_a_new_file_is_fine(tmp_path: Path) -> None:
    assert files.output_file("-") is None
    assert files.output_file(tmp_path / "new.json") == tmp_path / "new.json"


def test_the_report_folder_is_swapped_whole(tmp_path: Path) -> None:
    out = tmp_path / "report"
    files.atomic_write_dir(out, {"index.html": "one", "results.json": "1"})
    files.atomic_write_dir(out, {"index.html": "two", "results.json": "2"})
    assert {p.name: p.read_text() for p in out.iterdir()} == {"index.html": "two",
                                                              "results.json": "2"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # nothing left behind


def test_without_an_exchange_two_renames_still_give_one_run(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "_exchange", lambda a, b: False)
    out = tmp_path / "report"
    files.atomic_write_dir(out, {"index.html": "one", "results.json": "1"})
    files.atomic_write_dir(out, {"index.html": "two", "results.json": "2"})
    assert (out / "index.html").read_text() == "two" and (out / "results.json").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_an_interrupted_swap_leaves_the_previous_run_whole(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "report"
    files.atomic_write_dir(out, {"index.html": "one", "results.json": "1"})

    def interrupted(a: Path, b: Path) -> bool:
        raise KeyboardInterrupt

    monkeypatch.setattr(files, "_exchange", interrupted)
    with pytest.raises(KeyboardInterrupt):
        files.atomic_write_dir(out, {"index.html": "two", "results.json": "2"})
    assert (out / "index.html").read_text() == "one" and (out / "results.json").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_experiment_out_dash_prints_the_record(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    from reports.experiments import vanishing

    class Record:
        failed = 0

    monkeypatch.setattr(vanishing, "run_experiment", lambda *a, **k: Record())
    monkeypatch.setattr(vanishing, "runs_in", lambda profile: 1)
    monkeypatch.setattr("reference.core.records.dumps", lambda record: '{"stub": true}')
    code, out, _ = run(capsys, "experiment", "vanishing", "--out", "-")
    assert code == 0 and out.strip() == '{"stub": true}'
