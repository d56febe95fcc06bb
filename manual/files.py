"""Writing output files so that an interrupted run never leaves one half-written.

Every output path is checked before any work starts (:func:`output_file`,
:func:`output_dir`): ``-`` means standard output; an existing path must be a regular
file (a directory for :func:`output_dir`), never a device, a symlink or a folder; the
parent must exist (unless the caller creates its own default folder) and be writable.
A refusal is one ``ValueError`` line naming the option.

:func:`atomic_write` replaces one file by a rename; :func:`atomic_write_dir` replaces a
folder of files as one unit (a new folder swapped in), so a reader sees one run or the
other, never a page and a results file from different runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import stat
import tempfile
from collections.abc import Collection, Mapping
from pathlib import Path

STDOUT = "-"


def _probe_writable(folder: Path, what: str) -> None:
    """Create and remove a file in ``folder``: catches read-only mounts that access() misses."""
    try:
        handle, name = tempfile.mkstemp(dir=folder, prefix=".probe.", suffix=".tmp")
    except OSError as error:
        raise ValueError(f"{what}: cannot write in {folder} ({error.strerror})") from None
    os.close(handle)
    os.unlink(name)


def _check_parent(path: Path, what: str, create_parents: bool) -> None:
    parent = path.parent
    for ancestor in (parent, *parent.parents):
        if ancestor.exists() or ancestor.is_symlink():
            if not ancestor.is_dir():
                raise ValueError(f"{what}: {ancestor} is not a directory")
            break
    if not parent.is_dir():
        if not create_parents:
            raise ValueError(f"{what}: the folder {parent} does not exist")
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ValueError(f"{what}: cannot create {parent} ({error.strerror})") from None
    _probe_writable(parent, what)


def output_file(value: str | Path, what: str = "--out", *,
                create_parents: bool = False) -> Path | None:
    """Check an output file path before any work; ``None`` for ``-`` (standard output)."""
    if str(value) == STDOUT:
        return None
    path = Path(value)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        kind = "a directory" if path.is_dir() else "not a regular file"
        raise ValueError(f"{what}: {path} is {kind}; give a file path (or - for stdout)")
    _check_parent(path, what, create_parents)
    return path


def output_dir(value: str | Path, what: str = "--out", *, allowed: Collection[str] = (),
               create_parents: bool = False) -> Path:
    """Check an output folder: new, or an existing one holding only ``allowed`` files
    (it is replaced as a whole, so nothing else may be inside)."""
    path = Path(value)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise ValueError(f"{what}: {path} exists and is not a directory")
    if path.is_dir():
        foreign = sorted(p.name for p in path.iterdir()
                         if p.name not in allowed and not p.name.endswith(".tmp"))
        if foreign:
            raise ValueError(f"{what}: {path} holds {foreign[0]!r}, which this command did not "
                             f"write; give a new or empty folder")
    _check_parent(path, what, create_parents)
    return path


def _refuse_special(path: Path) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        raise ValueError(f"{path}: not a regular file; refusing to replace it")


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``.

    The rename is atomic on one file system: a reader (or a crash) sees the old file
    or the new one, never a mixture. Anything at ``path`` that is not a regular file
    (a device such as /dev/null, a directory, a symlink) is refused, never replaced.
    """
    path = Path(path)
    _refuse_special(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed before the rename
        "w", encoding="utf-8", newline="\n", dir=path.parent, prefix=f".{path.name}.",
        suffix=".tmp", delete=False)
    try:
        with handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(handle.name, 0o644)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


_RENAME_EXCHANGE, _AT_FDCWD = 2, -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux's renameat2(RENAME_EXCHANGE); False if unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    error = ctypes.get_errno()
    if error in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: the file system cannot exchange
        return False
    raise OSError(error, os.strerror(error), str(b))


def atomic_write_dir(out: Path, files: Mapping[str, str]) -> None:
    """Replace folder ``out`` by a new one holding exactly ``files`` (name -> text).

    The new folder is written beside ``out`` and swapped in with one atomic exchange
    (where the file system has none, two renames: a reader then briefly finds no
    folder, never a mixed one). The old folder's files are removed afterwards; a file
    this call did not write is left in the old folder, renamed ``.{name}.*.new``.
    """
    out = Path(out)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ValueError(f"{out}: exists and is not a directory; refusing to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".new"))
    try:
        for name, text in files.items():
            with open(fresh / name, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(fresh / name, 0o644)
        os.chmod(fresh, 0o755)
        if not out.exists():
            os.rename(fresh, out)
            return
        if not _exchange(fresh, out):
            old = fresh.with_suffix(".old")
            os.rename(out, old)
            try:
                os.rename(fresh, out)
            except BaseException:
                os.rename(old, out)
                raise
            fresh = old
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    for name in files:  # ``fresh`` now holds the previous run
        (fresh / name).unlink(missing_ok=True)
    for leftover in fresh.glob(".*.tmp"):
        leftover.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        fresh.rmdir()
