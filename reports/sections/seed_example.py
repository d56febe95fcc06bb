"""The seed tutorial's worked example: each printed figure beside both engines' values.

The check counted here is the engines' agreement on every tensor of the example
(a figure passes when the manual engine matches PyTorch within tolerance). Where
the tutorial's printed number does not round to PyTorch's value, the figure is
flagged and explained; that is a finding about the tutorial, not a failure of
the engine.
"""

from __future__ import annotations

import dataclasses
from typing import Any

KEY = "seed_example"
TITLE = "The seed's worked example"
ORDER = 20


def _update() -> list[dict[str, Any]]:
    """The seed's one SGD step (lr 0.1) in both engines and from its printed gradients."""
    from reports.seed_update import seed_update

    return [dataclasses.asdict(row) for row in seed_update()]


def collect(context: Any) -> dict[str, Any] | None:
    try:
        from reports.seed_figures import seed_figures, seed_record
    except ImportError:  # the worked example is not in this checkout
        return None

    record = seed_record()
    rows = []
    for figure in seed_figures(record):
        tensor = record.tensor(figure.tensor)
        rows.append({
            **dataclasses.asdict(figure),
            "engines_agree": tensor.passed,
            "max_abs_error": tensor.max_abs_error,
            "max_rel_error": tensor.max_rel_error,
            "tolerance_ratio": tensor.tolerance_ratio,
        })
    tensors = record.tensors
    return {
        "subject": record.subject,
        "dtype": record.dtype,
        "spec": record.spec,
        "engines_passed": record.passed,
        "tensors": len(tensors),
        "first_divergence": record.first_divergence,
        "figures": rows,
        "sgd_step": _update(),
        "passed": sum(bool(r["engines_agree"]) for r in rows),
        "failed": sum(not r["engines_agree"] for r in rows),
        "as_printed": sum(bool(r["agrees"]) for r in rows),
        "differs": sum(not r["agrees"] for r in rows),
        "errors": {record.dtype: {
            "max_rel_error": max((t.max_rel_error for t in tensors), default=0.0),
            "tolerance_ratio": max((t.tolerance_ratio for t in tensors), default=0.0),
        }},
    }
