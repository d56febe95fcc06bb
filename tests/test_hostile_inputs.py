"""Hostile inputs: bounded reading and sizes, values that leave the dtype, malformed JSON,
contradicting options, losses fed the wrong kind of input, gradient-check steps, fuzz bounds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hostile import SEED, SEED_DATA, SEED_SPEC, edited, mlp, refused, run, write

import manual
from manual import budget, jsonfile
from manual.gradcheck import check_function, check_network
from manual.registry import ACTIVATIONS, INPUT_KINDS, LOSSES, hint, loss_info
from reference.conformance.matrix import network_data, network_spec
from reference.core.compare import compare_arrays
from reference.fuzz.campaign import CampaignRecord
from reports import report

# -- bounded reading and sizes -------------------------------------------------------------


def test_dev_zero_is_refused_at_the_size_limit(capsys) -> None:
    assert "larger than the 64 MiB limit" in refused(capsys, "compare", "/dev/zero", "--data",
                                                     "/dev/zero")


def test_a_large_file_is_refused_without_reading_it(capsys, tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    with open(big, "wb") as handle:
        handle.truncate(jsonfile.MAX_BYTES + 1)  # sparse: nothing is written
    assert "MiB is larger than" in refused(capsys, "gradcheck", str(big), "--data", str(big))


@pytest.mark.parametrize("command", ["compare", "gradcheck"])
def test_a_hidden_width_of_a_billion_is_refused_before_allocation(capsys, tmp_path: Path,
                                                                   command: str) -> None:
    spec = write(tmp_path, "s.json", edited(SEED_SPEC, ("layers",), [
        {"type": "linear", "out_features": 10**9}, {"type": "relu"},
        {"type": "linear", "out_features": 1}, {"type": "sigmoid"}]))
    data = write(tmp_path, "d.json", SEED_DATA)
    assert "GiB budget" in refused(capsys, command, spec, "--data", data)


def test_the_budget_counts_the_batch_and_a_flag_moves_it(capsys, tmp_path: Path) -> None:
    data = write(tmp_path, "d.json", {"x": [[1.0, 2.0]] * 50, "y": [[1.0]] * 50})
    spec = "examples/seed_example.json"
    assert "batch of 50" in refused(capsys, "compare", spec, "--data", data,
                                    "--max-memory", "2KiB")
    assert run(capsys, "compare", spec, "--data", data, "--max-memory", "1MiB")[0] == 0


@pytest.mark.parametrize("size", ["lots", "-1GiB", "0", "1e999"])
def test_a_bad_memory_budget_is_one_line(capsys, size: str) -> None:
    refused(capsys, "compare", *SEED, f"--max-memory={size}")


def test_the_estimate_follows_the_shapes() -> None:
    spec = manual.load_spec("examples/seed_example.json")
    found = budget.estimate(spec, batch=4)
    assert found.parameters == 2 * 3 + 3 + 3 * 1 + 1
    assert found.activations == 4 * (2 + 3 + 3 + 1 + 1)


@pytest.mark.parametrize("argv", [["--examples", "1000000000"], ["--examples", "0"],
                                  ["--max-time", "-1"], ["--max-time", "inf"],
                                  ["--seed", "-3"]])
def test_fuzz_bounds_are_one_line(capsys, argv: list[str]) -> None:
    refused(capsys, "fuzz", *argv)


def test_fuzz_max_time_keeps_the_cases_run_so_far(capsys, tmp_path: Path) -> None:
    out = tmp_path / "campaign.json"
    code, _, _ = run(capsys, "fuzz", "--examples", "50", "--max-time", "1e-9", "--out", str(out))
    record = CampaignRecord.from_json(out.read_text())
    assert code == 0 and record.stopped.startswith("time limit after 0 of 50")


def test_ctrl_c_writes_the_partial_campaign(capsys, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from reference.fuzz import campaign as reference_fuzz

    real, calls = reference_fuzz.run_case, []

    def interrupted_after_two(case: Any) -> Any:
        calls.append(case)
        if len(calls) > 2:
            raise KeyboardInterrupt
        return real(case)

    monkeypatch.setattr(reference_fuzz, "run_case", interrupted_after_two)
    out = tmp_path / "campaign.json"
    code, _, err = run(capsys, "fuzz", "--examples", "40", "--out", str(out))
    record = CampaignRecord.from_json(out.read_text())
    assert code == 130 and "partial record" in err
    assert record.cases == 2 and record.stopped == "interrupted after 2 of 40 cases"


# -- JSON ------------------------------------------------------------------------------------

BAD_JSON = [
    ("duplicate top key", b'{"input_shape": [2], "input_shape": [3]}',
     "'input_shape' appears twice"),
    ("duplicate layer key", b'{"layers": [{"type": "relu", "type": "tanh"}]}',
     "'type' appears twice"),
    ("invalid utf-8", b'{"name": "\xff\xfe"}', "not UTF-8 text (byte 10"),
    ("NaN literal", b'{"x": [[NaN]]}', "NaN is not JSON"),
    ("Infinity literal", b'{"x": [[-Infinity]]}', "-Infinity is not JSON"),
    ("5000-digit integer", b'{"seed": ' + b"9" * 5000 + b"}", "not valid JSON"),
    ("65 deep", b"[" * 65 + b"]" * 65, "nested deeper than 64"),
    ("truncated", b'{"layers": [', "not valid JSON (line 1"),
]


@pytest.mark.parametrize(("content", "message"), [c[1:] for c in BAD_JSON],
                         ids=[c[0] for c in BAD_JSON])
def test_bad_json_names_the_file_and_the_problem(capsys, tmp_path: Path, content: bytes,
                                                  message: str) -> None:
    path = write(tmp_path, "spec.json", content)
    err = refused(capsys, "compare", path, "--data", path)
    assert f"spec {path}: " in err and message in err


def test_duplicate_keys_in_data_are_named(capsys, tmp_path: Path) -> None:
    data = write(tmp_path, "d.json", '{"x": [[1, 2]], "y": [[1]], "y": [[0]]}')
    assert "data " in refused(capsys, "compare", SEED[0], "--data", data)


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "s.json", b"\xef\xbb\xbf" + json.dumps(SEED_SPEC).encode())
    assert manual.load_spec(path).dtype == "float64"


def test_a_directory_is_not_a_spec(capsys, tmp_path: Path) -> None:
    assert "is a directory" in refused(capsys, "compare", str(tmp_path), "--data", str(tmp_path))


# -- values after the dtype cast ------------------------------------------------------------

F32 = mlp("tanh", "mse", "float32")
OVERFLOWS = [
    ("weight", edited(F32, ("layers", 0, "weight"), [[1e39, 0], [0, 0], [0, 0]]),
     "layers[0] (linear): weight overflows float32"),
    ("bias", edited(F32, ("layers", 0, "bias"), [1e300, 0, 0]),
     "layers[0] (linear): bias overflows float32"),
    ("option", edited(F32, ("layers", 1), {"type": "leaky_relu", "negative_slope": 1e308}),
     "layers[1] (leaky_relu): negative_slope 1e+308 overflows float32"),
    ("underflow", edited(F32, ("layers", 1), {"type": "celu", "alpha": 1e-50}),
     "alpha 1e-50 becomes 0.0 in float32, and then must not be zero"),
    ("loss option", edited(F32, ("loss",), {"type": "huber", "delta": 1e39}),
     "loss (huber): delta 1e+39 overflows float32"),
]


@pytest.mark.parametrize(("spec", "message"), [c[1:] for c in OVERFLOWS],
                         ids=[c[0] for c in OVERFLOWS])
def test_a_value_that_leaves_float32_is_named(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=r".*") as caught:
        manual.parse_spec(spec)
    assert message in str(caught.value)


def test_data_that_overflows_the_dtype_is_refused(capsys, tmp_path: Path) -> None:
    spec = write(tmp_path, "s.json", F32)
    data = write(tmp_path, "d.json", {"x": [[1e308, 1.0]], "y": [[0.0, 0.0, 0.0]]})
    assert "data.x overflows float32" in refused(capsys, "compare", spec, "--data", data)


@pytest.mark.parametrize(("got", "want", "equal_nan", "passed"), [
    ([np.nan], [np.nan], False, False), ([np.nan], [np.nan], True, True),
    ([np.inf], [np.inf], False, True), ([np.inf], [-np.inf], False, False),
    ([np.nan], [1.0], True, False),
], ids=["nan-nan", "nan-nan-expected", "inf-inf", "inf--inf", "nan-1"])
def test_non_finite_values_follow_assert_close(got: list[float], want: list[float],
                                               equal_nan: bool, passed: bool) -> None:
    from manual.registry import DEFAULT_TOLERANCES

    result = compare_arrays("t", np.array(got), np.array(want), DEFAULT_TOLERANCES["float64"],
                            equal_nan=equal_nan)
    assert result.passed is passed


# -- relations and the input a loss needs ---------------------------------------------------

@pytest.mark.parametrize(("options", "message"), [
    ({"min_val": 1.0, "max_val": -1.0}, "min_val must be less than max_val, got 1.0 >= -1.0"),
    ({"min_val": 0.5, "max_val": 0.5}, "got 0.5 >= 0.5"),
    ({"min_val": 2.0}, "got 2.0 >= 1.0"),
])
def test_hardtanh_bounds_must_be_ordered(options: dict[str, float], message: str) -> None:
    spec = edited(SEED_SPEC, ("layers", 1), {"type": "hardtanh", **options})
    with pytest.raises(ValueError, match=r"layers\[1\] \(hardtanh\)") as caught:
        manual.parse_spec(spec)
    assert message in str(caught.value)


@pytest.mark.parametrize(("last", "loss", "message"), [
    ("softmax", "nll", "loss (nll): needs log-probabilities"),
    (None, "nll", "the last layer ('linear')"),
    ("sigmoid", "kl_div", "loss (kl_div): needs log-probabilities"),
    ("tanh", "bce", "loss (bce): needs probabilities in [0, 1]"),
])
def test_a_loss_fed_the_wrong_input_is_refused(last: str | None, loss: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        manual.parse_spec(mlp(last, loss))
    assert message in str(caught.value)


@pytest.mark.parametrize(("last", "loss"), [("log_softmax", "nll"), ("logsigmoid", "kl_div"),
                                            ("sigmoid", "bce"), (None, "cross_entropy")])
def test_a_loss_fed_what_it_needs_is_accepted(last: str | None, loss: str) -> None:
    assert manual.parse_spec(mlp(last, loss)).loss.type == loss


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_every_loss_declares_its_input(loss: str) -> None:
    op = LOSSES[loss]
    needs = loss_info(op).needs
    assert needs in INPUT_KINDS
    low, high = INPUT_KINDS[needs]
    enders = [name for name, a in ACTIVATIONS.items()
              if low <= a.domain.outputs[0] and a.domain.outputs[1] <= high]
    assert enders  # some activation can feed it
    if needs == "log-probabilities":
        assert hint(op) and "softmax" not in enders and "log_softmax" in enders
    elif needs == "probabilities":
        assert hint(op) and "tanh" not in enders and "sigmoid" in enders
    if needs != "logits":  # the adapter makes what the loss needs
        assert loss_info(op).adapter in enders


# -- gradient-check steps -------------------------------------------------------------------

@pytest.mark.parametrize("eps", ["1e-300", "1e-12", "1e-8", "0.5"])
def test_a_step_outside_the_sane_range_is_refused(capsys, eps: str) -> None:
    assert "is outside [1e-07, 0.001]" in refused(capsys, "gradcheck", *SEED, "--eps", eps)


def test_a_far_step_warns_and_a_near_one_does_not(capsys) -> None:
    code, _, err = run(capsys, "gradcheck", *SEED, "--eps", "1e-4")
    assert code == 0 and "far from eps_mach^(1/3)" in err
    code, _, err = run(capsys, "gradcheck", *SEED, "--eps", "2e-6")
    assert code == 0 and err == ""


def test_a_complex_step_outside_its_range_is_refused(capsys) -> None:
    refused(capsys, "gradcheck", *SEED, "--mode", "complex", "--eps", "1e-300")


def test_a_zero_numerical_gradient_is_never_good() -> None:
    x = np.array([0.3, -0.2])
    record = check_function(lambda v: 1.0, {"x": x}, {"x": np.array([2.0, 1.0])})
    assert not record.passed and "zero everywhere" in record.tensors[0].problem
    projected = check_function(lambda v: 1.0, {"x": x}, {"x": np.array([2.0, 1.0])},
                               mode="projection")
    assert not projected.passed


def test_a_known_wrong_backward_fails_at_the_edges_of_the_range() -> None:
    from reference.zoo import core as zoo

    mutant = next(m for m in zoo.MUTANTS if m.name == "leaky_slope_dropped")
    spec = network_spec("leaky_relu", "mse", "float64")
    data = network_data(spec)
    for eps in (1e-7, 1e-3):
        assert check_network(spec, data, eps=eps).passed
        with mutant.inject():
            assert not check_network(spec, data, eps=eps).passed


# -- the summary never formats a stored non-finite value as a number ------------------------

def test_the_summary_table_takes_stored_infinities() -> None:
    from reports.commands.report import summary_table

    summary = {"sections": {"s": {"passed": 1, "failed": 0, "status": "pass"}},
               "by_dtype": {"float32": {"max_rel_error": "inf", "tolerance_ratio": 0.5,
                                        "headroom": 2.0}}}
    assert "inf" in summary_table(summary)


def test_the_first_screen_says_what_pass_is_about() -> None:
    results = {"format": 1, "meta": {"profile": "quick", "seed": 0, "versions": {},
                                     "generated": None, "sections": []},
               "summary": {"verdict": "pass", "passed": 1, "failed": 0, "by_dtype": {},
                           "sections": {}}, "sections": {}}
    page = report.render(results, modules=[])
    for text in ("What PASS means", "against", "What to do next", "fuzz --replay",
                 "is <em>not</em> the pass rule", 'id="legend"'):
        assert text in page
