"""Reading a JSON input file with bounds: size, nesting, duplicate keys, encoding.

Every problem is one ``ValueError`` that names the file: a file larger than
``max_bytes`` (read no further than that, so ``/dev/zero`` is refused at once), text that
is not UTF-8 (with the byte offset), malformed JSON (line and column), a key given twice
in one object (naming the key), ``NaN``/``Infinity`` literals (not JSON), nesting deeper
than :data:`MAX_DEPTH` and integers too long to convert.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

MAX_BYTES = 64 * 2**20  # 64 MiB: a data file of about 3 million numbers
MAX_DEPTH = 64  # a spec nests 5 deep, a data file 3; nothing real comes near


class _Duplicate(Exception):
    pass


class _Constant(Exception):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(key)
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise _Constant(name)


def depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (0 for a scalar), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if not isinstance(item, dict | list):
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children
                     if isinstance(child, dict | list))
    return deepest


def read_bytes(path: str | Path, what: str, max_bytes: int = MAX_BYTES) -> bytes:
    """At most ``max_bytes`` of ``path``; a larger file (or endless device) is refused."""
    limit = f"{max_bytes / 2**20:g} MiB"
    try:
        with open(path, "rb") as handle:
            info = os.fstat(handle.fileno())
            if stat.S_ISDIR(info.st_mode):
                raise ValueError(f"{what} {path}: is a directory, not a JSON file")
            if stat.S_ISREG(info.st_mode) and info.st_size > max_bytes:
                raise ValueError(f"{what} {path}: {info.st_size / 2**20:.1f} MiB is larger than "
                                 f"the {limit} limit for an input file")
            raw = handle.read(max_bytes + 1)
    except IsADirectoryError:
        raise ValueError(f"{what} {path}: is a directory, not a JSON file") from None
    except OSError as error:
        raise ValueError(f"{what} {path}: cannot read it ({error.strerror})") from None
    if len(raw) > max_bytes:
        raise ValueError(f"{what} {path}: larger than the {limit} limit for an input file")
    return raw


def parse(raw: bytes, where: str) -> Any:
    """Decode and parse ``raw``; ``where`` (``"spec FILE"``) starts every message."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"{where}: not UTF-8 text (byte {error.start}: {error.reason})"
                         ) from None
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise ValueError(f"{where}: not valid JSON (line {error.lineno}, column "
                         f"{error.colno}: {error.msg})") from None
    except _Duplicate as error:
        raise ValueError(f"{where}: key {error.args[0]!r} appears twice in one object"
                         ) from None
    except _Constant as error:
        raise ValueError(f"{where}: {error.args[0]} is not JSON (numbers must be finite)"
                         ) from None
    except RecursionError:
        raise ValueError(f"{where}: nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as error:  # e.g. an integer of more than 4300 digits
        raise ValueError(f"{where}: not valid JSON ({error})") from None
    if depth(value) > MAX_DEPTH:
        raise ValueError(f"{where}: nested deeper than {MAX_DEPTH} levels")
    return value


def load_json(path: str | Path, what: str, max_bytes: int = MAX_BYTES) -> Any:
    """Read and parse a JSON input file with every bound above."""
    return parse(read_bytes(path, what, max_bytes), f"{what} {path}")
