"""Every registry layer in a network: its samples in both dtypes and both modes.

Each sample runs as a one-node graph through both engines (:mod:`reference.conformance.samples`,
:func:`reference.conformance.layers.check_sample`): the pair's own protocol (nothing given is
written, a second backward from the same cache agrees, parameter gradients of exactly the
parameters' shapes), then every output, state buffer (``state: batch_norm.running_var``),
input and parameter gradient against PyTorch. The record keeps, per case, the worst tensor,
and per layer x dtype x mode the counts, which the template shows with the worst ratio.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from manual.spec import DTYPES
from reference.conformance.layers import check_sample
from reference.conformance.samples import layer_cases

KEY = "layers"
TITLE = "Layers: convolution, pooling, norms, dropout, embedding, recurrent, attention"
ORDER = 15


def _worst(record: Any) -> tuple[str, float, float]:
    """The tensor with the largest error / tolerance, that ratio, and the largest relative
    error of any tensor."""
    if not record.tensors:
        return "", 0.0, 0.0
    worst = max(record.tensors, key=lambda t: float(t.tolerance_ratio))
    return (worst.name, float(worst.tolerance_ratio),
            max(float(t.max_rel_error) for t in record.tensors))


def collect(context: Any) -> dict[str, Any]:
    cases = list(layer_cases())
    bar = context.progress("layers", len(cases))
    rows = []
    for case_id, name, sample, dtype, mode in cases:
        with np.errstate(all="ignore"):  # extreme samples overflow in unused branches
            result = check_sample(name, sample.options, sample.inputs, dtype,
                                  (mode == "train",))
        tensor, ratio, relative = _worst(result.record)
        rows.append({"id": case_id, "layer": name, "sample": sample.name, "dtype": dtype,
                     "mode": mode, "passed": result.passed, "tensors": len(result.tensors),
                     "state": sum(t.stage == "state" for t in result.tensors),
                     "worst_tensor": tensor, "tolerance_ratio": ratio,
                     "max_rel_error": relative,
                     "failures": result.failures[:3]})
        bar.update()
    bar.close()
    rows.sort(key=lambda r: (r["passed"], r["layer"], r["dtype"], r["mode"], r["sample"]))
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row in rows:
        group = groups.setdefault((row["layer"], row["dtype"], row["mode"]), {
            "layer": row["layer"], "dtype": row["dtype"], "mode": row["mode"], "cases": 0,
            "failed": 0, "state": 0, "tolerance_ratio": 0.0})
        group["cases"] += 1
        group["failed"] += not row["passed"]
        group["state"] += row["state"]
        group["tolerance_ratio"] = max(group["tolerance_ratio"], row["tolerance_ratio"])
    errors = {dtype: {key: max((r[key] for r in rows if r["dtype"] == dtype), default=0.0)
                      for key in ("max_rel_error", "tolerance_ratio")}
              for dtype in DTYPES}
    return {"rows": rows, "groups": sorted(groups.values(), key=lambda g: (
                g["failed"] == 0, g["layer"], g["dtype"], g["mode"])),
            "passed": sum(r["passed"] for r in rows),
            "failed": sum(not r["passed"] for r in rows), "errors": errors}
