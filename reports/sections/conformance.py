"""The conformance matrix: every registered op x dtype, alone and inside networks.

Each case of :func:`reference.conformance.matrix.op_cases` (one op alone, random input, random
upstream gradient) and :func:`reference.conformance.matrix.network_cases` (every activation x
every loss in a small MLP) runs through both engines. A case passes when every
tensor satisfies :math:`|m - r| \\le \\text{atol} + \\text{rtol}\\,|r|`; its
``tolerance_ratio`` is the largest :math:`|m - r| / (\\text{atol} + \\text{rtol}\\,|r|)`.

:func:`case_row` and :func:`tabulate` turn :class:`~reference.core.records.ComparisonRecord`
objects into this section's record; the pytest plugin uses them too, so a test
run and ``make report`` render the same tables. Torch is imported only by
:func:`collect`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from manual.registry import ACTIVATIONS
from manual.spec import DTYPES
from reference.core.records import ComparisonRecord

KEY = "conformance"
TITLE = "Conformance matrix"
ORDER = 10
SEEDS = {"quick": 1, "full": 3}  # seeds per case


def _worst(values: Iterable[Any]) -> float:
    """The largest of JSON numbers; NaN (or its string) counts as infinitely bad."""
    worst = 0.0
    for value in values:
        number = float(value)
        worst = math.inf if math.isnan(number) else max(worst, number)
    return worst


def case_row(record: ComparisonRecord, case_id: str | None = None) -> dict[str, Any]:
    """One row of the matrix: the worst tensor of ``record`` and what the case covers."""
    tensors = record.tensors
    worst = max(tensors, key=lambda t: (math.isnan(t.tolerance_ratio), t.tolerance_ratio),
                default=None)
    if record.kind == "network" and record.spec is not None:
        # A chain lists "layers", a graph "nodes"; which are activations the registry says.
        types = [layer["type"] for layer in
                 record.spec.get("layers") or record.spec.get("nodes", [])]
        activations = [t for t in types if t in ACTIVATIONS]
        loss = record.spec.get("loss", {}).get("type", "")
        ops = sorted({*activations, loss} - {""})
        activation = activations[0] if activations else "none"
    else:
        ops, activation, loss = [record.subject], "", ""
    options = ", ".join(f"{k}={v}" for k, v in sorted(record.options.items()))
    return {
        "id": case_id or f"{record.subject}-{record.dtype}",
        "kind": "network" if record.kind == "network" else "op",
        "subject": record.subject,
        "dtype": record.dtype,
        "seed": record.seed,
        "options": options,
        "ops": ops,
        "activation": activation,
        "loss": loss,
        "passed": record.passed,
        "tensors": len(tensors),
        "max_abs_error": _worst(t.max_abs_error for t in tensors),
        "max_rel_error": _worst(t.max_rel_error for t in tensors),
        "tolerance_ratio": _worst(t.tolerance_ratio for t in tensors),
        "worst_tensor": worst.name if worst else "",
        "problem": worst.problem if worst else "",
        "first_divergence": record.first_divergence,
        "rtol": worst.rtol if worst else None,
        "atol": worst.atol if worst else None,
        "tolerance_reason": record.tolerance_reason,
    }


def _order(row: Mapping[str, Any]) -> tuple[bool, float, str]:
    """Failures first, then the largest error/tolerance, then by id."""
    ratio = float(row["tolerance_ratio"])
    return (bool(row["passed"]), -(math.inf if math.isnan(ratio) else ratio), str(row["id"]))


def _aggregate(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    worst = max(rows, key=lambda r: _worst([r["tolerance_ratio"]]))
    return {
        "failed": sum(not r["passed"] for r in rows),
        "max_abs_error": _worst(r["max_abs_error"] for r in rows),
        "max_rel_error": _worst(r["max_rel_error"] for r in rows),
        "tolerance_ratio": _worst(r["tolerance_ratio"] for r in rows),
        "worst_case": worst["id"],
    }


def tabulate(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """This section's record from case rows: counts, op x dtype table, network grid, cases."""
    cases = sorted((dict(r) for r in rows), key=_order)
    dtypes = sorted({r["dtype"] for r in cases})
    ops: list[dict[str, Any]] = []
    names = list(dict.fromkeys(op for r in cases for op in r["ops"]))
    for name in names:
        for dtype in dtypes:
            alone = [r for r in cases if r["kind"] == "op" and r["subject"] == name
                     and r["dtype"] == dtype]
            inside = [r for r in cases if r["kind"] == "network" and name in r["ops"]
                      and r["dtype"] == dtype]
            if alone or inside:
                ops.append({"op": name, "dtype": dtype, "alone": len(alone),
                            "networks": len(inside), **_aggregate(alone + inside)})
    ops.sort(key=lambda r: (r["failed"] == 0, -_worst([r["tolerance_ratio"]]), r["op"],
                            r["dtype"]))
    grids = {}
    for dtype in dtypes:
        nets = [r for r in cases if r["kind"] == "network" and r["dtype"] == dtype]
        activations = list(dict.fromkeys(r["activation"] for r in nets))
        losses = list(dict.fromkeys(r["loss"] for r in nets))
        cells = {(r["activation"], r["loss"]): r for r in nets}
        grids[dtype] = {
            "activations": sorted(activations), "losses": sorted(losses),
            "cells": [[_cell(cells.get((a, loss))) for loss in sorted(losses)]
                      for a in sorted(activations)],
        } if nets else None
    errors = {dtype: {"max_rel_error": _worst(r["max_rel_error"] for r in cases
                                              if r["dtype"] == dtype),
                      "tolerance_ratio": _worst(r["tolerance_ratio"] for r in cases
                                                if r["dtype"] == dtype)}
              for dtype in dtypes}
    return {
        "passed": sum(bool(r["passed"]) for r in cases),
        "failed": sum(not r["passed"] for r in cases),
        "errors": errors,
        "ops": ops,
        "networks": {dtype: grid for dtype, grid in grids.items() if grid},
        "cases": cases,
    }


def _cell(row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"id": row["id"], "passed": row["passed"], "tolerance_ratio": row["tolerance_ratio"],
            "max_rel_error": row["max_rel_error"]}


def collect(context: Any) -> dict[str, Any]:
    from reference.conformance.matrix import (
        GRAPHS,
        graph_data,
        graph_spec,
        network_cases,
        network_data,
        op_cases,
    )
    from reference.conformance.protocols import check_single
    from reference.core.compare import compare_op

    seeds = [context.seed + k for k in range(SEEDS.get(context.profile, 1))]
    ops, nets = list(op_cases()), list(network_cases())
    graphs = [(name, dtype) for name in GRAPHS for dtype in DTYPES]
    bar = context.progress("conformance", (len(ops) + len(nets) + len(graphs)) * len(seeds))
    rows = []
    for seed in seeds:
        suffix = f"-seed{seed}" if len(seeds) > 1 else ""
        for case in ops:
            # The report keeps errors, not values.
            record = compare_op(case.op, case.dtype, case.options, seed=seed,
                                target_kind=case.target_kind, keep_values=False)
            rows.append(case_row(record, case.id + suffix))
            bar.update(1)
        for net in nets:
            spec = net.spec(seed)
            record = check_single(spec, network_data(spec))  # float32 rounding judged as fuzz
            rows.append(case_row(record, f"{net.activation} x {net.loss}-{net.dtype}{suffix}"))
            bar.update(1)
        for name, dtype in graphs:
            spec = graph_spec(name, dtype, seed)
            rows.append(case_row(check_single(spec, graph_data(spec)), f"graph {name}-{dtype}"
                                 f"{suffix}"))
            bar.update(1)
    bar.close()
    return tabulate(rows)


def figures(data: Mapping[str, Any]) -> dict[str, str]:
    """Worst error/tolerance per op and dtype (alone and in networks together)."""
    from reports.plots import ratio_dots

    if not data["ops"]:
        return {}
    names = sorted({r["op"] for r in data["ops"]})
    dtypes = sorted({r["dtype"] for r in data["ops"]})
    by = {(r["op"], r["dtype"]): r["tolerance_ratio"] for r in data["ops"]}
    series = {dtype: [by.get((name, dtype)) for name in names] for dtype in dtypes}
    return {"ratios": ratio_dots(names, series, salt=f"{KEY}:ratios",
                                 title="Worst error / tolerance per op (alone or in a network)")}
