"""Plain-text tables of records, for the terminal."""

from __future__ import annotations

from reference.core.records import ComparisonRecord


def _number(value: float) -> str:
    return f"{value:.3g}" if value == value else "nan"


def comparison_table(record: ComparisonRecord) -> str:
    """One line per tensor: shape, errors, tolerance ratio (<= 1 passes) and verdict."""
    header = f"{'tensor':<28} {'shape':<12} {'max abs err':>11} {'max rel err':>11} " \
             f"{'err/tol':>8}  verdict"
    lines = [f"{record.subject} ({record.kind}, {record.dtype}, seed {record.seed})", header,
             "-" * len(header)]
    for t in record.tensors:
        verdict = "ok" if t.passed else f"MISMATCH {t.problem or f'at {t.worst_index}'}"
        shape = "x".join(map(str, t.shape)) or "scalar"
        lines.append(f"{t.name:<28} {shape:<12} {_number(t.max_abs_error):>11} "
                     f"{_number(t.max_rel_error):>11} {_number(t.tolerance_ratio):>8}  {verdict}")
    failed = len(record.failures)
    tol = record.tensors[0] if record.tensors else None
    tolerance = f"rtol {tol.rtol:g}, atol {tol.atol:g} ({record.tolerance_reason})" if tol else ""
    if failed:
        lines.append(f"MISMATCH: {failed} of {len(record.tensors)} tensors differ; engines part "
                     f"at {record.first_divergence}. Tolerance: {tolerance}.")
    else:
        lines.append(f"OK: all {len(record.tensors)} tensors agree. Tolerance: {tolerance}.")
    return "\n".join(lines)
