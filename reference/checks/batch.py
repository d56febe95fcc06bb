"""Which inputs carry the batch: batch size 1 shrinks all of them together, never one alone.

A recurrent step ``rnn_step(x, prev_h, Wx, Wh, b)`` reads the batch in ``x`` *and* in
``prev_h``; shrinking ``x`` alone to one row makes a case no real caller could make (PyTorch
broadcasts it, the user's matmul rightly raises). The batch axis is the first input's leading
axis:

- when its size is a symbol (``"N"``), every input using the symbol shrinks with it (the
  sweep's sizes do it; nothing to infer);
- when it is a number, the candidates are the other drawn inputs with the same leading size
  (not a module's parameters). A weight or a bias may share the size by chance (``Wh`` of
  shape ``(4, 4)``, ``b`` of shape ``(4,)`` with a batch of 4), so PyTorch's twin arbitrates:
  of the sets of candidates with which the twin runs at batch size 1 and its batch-sized
  outputs shrink to one row, the largest whose outputs are the full batch's first row (an
  example's output does not depend on the others; a bias cut to one entry changes it), else
  the largest (a layer that couples the batch: a loss, a batch norm).

When the twin only runs by broadcasting (its output keeps the full batch whatever shrinks),
the user declared inputs of different batch sizes: that is said once, and the case is not run
(:class:`NotRun`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from reference.checks.twin import Skip

# More candidates than this: only all of them, or none, are tried (2^k twin calls otherwise).
MAX_CANDIDATES = 6

Probe = Callable[[Mapping[str, np.ndarray]], "list[np.ndarray] | None"]


class NotRun(Skip):
    """A special input that the declaration makes impossible to run (said once)."""


def subsets(candidates: Sequence[str]) -> list[tuple[str, ...]]:
    """The candidate sets to try, largest first (all, then all but one, ..., none)."""
    if len(candidates) > MAX_CANDIDATES:
        return [tuple(candidates), ()]
    return [combo for size in range(len(candidates), -1, -1)
            for combo in itertools.combinations(candidates, size)]


def _first_row(shapes: list[np.ndarray], full: list[np.ndarray], batched: list[int]) -> bool:
    return all(np.allclose(shapes[i], full[i][:1], rtol=1e-10, atol=1e-12, equal_nan=True)
               for i in batched)


def batch_group(first: str, arrays: Mapping[str, np.ndarray], candidates: Sequence[str],
                probe: Probe) -> list[str]:
    """The inputs that shrink together at batch size 1 (``first`` always among them).

    ``arrays`` is a full-size float64 draw, ``candidates`` the inputs sharing the first one's
    leading size, ``probe(arrays)`` the twin's outputs (``None`` when it raises). Raises
    :class:`NotRun` when the twin takes batch size 1 only by broadcasting.
    """
    lead = arrays[first].shape[0]
    full = probe(arrays)
    if full is None:
        return [first]  # PyTorch rejects the full-size case too: it is skipped anyway
    batched = [i for i, out in enumerate(full) if out.ndim and out.shape[0] == lead]
    shrunk: list[list[str]] = []
    broadcast: list[str] = []
    for combo in subsets(candidates):
        group = [first, *combo]
        outs = probe({n: a[:1] if n in group else a for n, a in arrays.items()})
        if outs is None:
            continue
        if not all(outs[i].ndim and outs[i].shape[0] == 1 for i in batched):
            broadcast = broadcast or group
            continue
        if batched and _first_row(outs, full, batched):
            return group
        shrunk.append(group)
    if shrunk:
        return shrunk[0]
    if broadcast:
        others = [n for n in arrays if n not in broadcast and arrays[n].ndim
                  and arrays[n].shape[0] == lead]
        cut = ", ".join(f"{n} {(1, *arrays[n].shape[1:])}" for n in broadcast)
        kept = ", ".join(f"{n} {arrays[n].shape}" for n in others) or "the other inputs"
        raise NotRun(f"batch1 not run: PyTorch's twin takes batch size 1 only by "
                     f"broadcasting ({cut} against {kept}); give every input that carries "
                     f"the batch the same leading size, or the symbol N")
    return [first]
