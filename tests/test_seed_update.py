"""The seed's SGD step: both engines agree, and the seed's printed gradients fall short."""

from __future__ import annotations

import numpy as np

from reports.seed_update import seed_update


def test_both_engines_take_the_same_step_and_it_is_w_minus_lr_grad() -> None:
    rows = {row.name: row for row in seed_update()}
    assert set(rows) == {"layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias"}
    assert all(row.engines_agree for row in rows.values())
    # Independent math: dL/db2 = a2 - y = sigmoid(2.76) - 1, so b2 moves by 0.1 (1 - a2).
    a2 = 1 / (1 + np.exp(-2.76))
    assert abs(rows["layers.2.bias"].reference[0] - 0.1 * (1 - a2)) < 1e-15


def test_the_printed_gradients_move_the_weights_about_18_times_too_little() -> None:
    for row in seed_update():
        ours = np.subtract(row.reference, row.before)
        theirs = np.subtract(row.seed, row.before)
        ratio = np.abs(ours) / np.abs(theirs)
        assert np.all((ratio > 12) & (ratio < 25)), (row.name, ratio)


def test_the_seed_section_shows_the_update() -> None:
    from reports.sections import seed_example

    data = seed_example.collect(None)
    assert data is not None and len(data["sgd_step"]) == 4
