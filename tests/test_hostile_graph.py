"""Hostile inputs written as graphs: the checks of the chain suite hold for every node of a
graph spec (relations, the input a loss needs, values after the dtype cast, graph inputs in
data files, the memory estimate from the signatures)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hostile import refused, write

import manual
from manual import budget


def graph(nodes: list[dict[str, Any]], loss: dict[str, Any], output: str | None = None,
          dtype: str = "float64", inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    spec = {"inputs": inputs or {"x": {"shape": [2]}}, "nodes": nodes, "loss": loss,
            "dtype": dtype}
    return spec | ({"output": output} if output else {})


LINEAR: dict[str, Any] = {"name": "lin", "type": "linear", "inputs": ["x"], "out_features": 3}


def refusal(spec: dict[str, Any]) -> str:
    with pytest.raises(ValueError) as caught:
        manual.parse_spec(spec)
    return str(caught.value)


def test_a_graph_node_checks_its_relations() -> None:
    spec = graph([LINEAR, {"name": "clip", "type": "hardtanh", "inputs": ["lin"],
                           "min_val": 1.0, "max_val": -1.0}], {"type": "mse"})
    assert refusal(spec).startswith("node 'clip' (hardtanh): min_val must be less than max_val")


@pytest.mark.parametrize(("output", "accepted"), [("prob", True), ("after", False)])
def test_the_loss_input_is_the_output_node_not_the_last_node(output: str, accepted: bool
                                                             ) -> None:
    nodes = [LINEAR, {"name": "prob", "type": "sigmoid", "inputs": ["lin"]},
             {"name": "after", "type": "tanh", "inputs": ["prob"]}]
    spec = graph(nodes, {"type": "bce"}, output=output)
    if accepted:
        assert manual.parse_spec(spec).output == "prob"
    else:
        assert refusal(spec).startswith("loss (bce): needs probabilities in [0, 1], but the "
                                        "output node 'after' (tanh) does not produce them")


def test_a_layer_without_an_op_produces_unbounded_values() -> None:
    nodes = [LINEAR, {"name": "skip", "type": "sigmoid", "inputs": ["lin"]},
             {"name": "sum", "type": "add", "inputs": ["lin", "skip"]}]
    message = refusal(graph(nodes, {"type": "nll"}))
    assert "needs log-probabilities in [-∞, 0], but the output node 'sum' (add)" in message


@pytest.mark.parametrize(("node", "message"), [
    ({**LINEAR, "weight": [[1e39, 0.0], [0.0, 0.0], [0.0, 0.0]]},
     "node 'lin' (linear): weight overflows float32"),
    ({"name": "att", "type": "scaled_dot_product_attention", "inputs": ["x", "x", "x"],
      "scale": 1e39}, "node 'att' (scaled_dot_product_attention): scale overflows float32"),
], ids=["weight", "given-float"])
def test_a_graph_value_that_leaves_float32_is_named(node: dict[str, Any], message: str
                                                    ) -> None:
    spec = graph([node], {"type": "mse"}, dtype="float32", inputs={"x": {"shape": [3, 2]}})
    if node["type"] == "linear":
        spec["inputs"] = {"x": {"shape": [2]}}
    assert message in refusal(spec)
    node = {k: v for k, v in node.items() if k not in ("weight", "scale")}
    assert manual.parse_spec(graph([node], {"type": "mse"}, dtype="float32",
                                   inputs=spec["inputs"])).dtype == "float32"


def test_integer_options_are_shapes_not_values() -> None:
    # kernel sizes and widths are never cast to the dtype: no overflow for an integer option
    spec = graph([{**LINEAR, "out_features": 2**40}], {"type": "mse"}, dtype="float32")
    assert manual.parse_spec(spec).nodes[0].shape == (2**40,)


TWO_INPUTS = graph([{"name": "sum", "type": "add", "inputs": ["a", "b"]}], {"type": "mse"},
                   dtype="float32", inputs={"a": {"shape": [2]}, "b": {"shape": [2]}})


@pytest.mark.parametrize(("data", "message"), [
    ({"a": [[1.0, 2.0]], "b": [[1e308, 0.0]], "y": [[0.0, 0.0]]}, "data.b overflows float32"),
    ({"a": [[1e39, 2.0]], "b": [[1.0, 0.0]], "y": [[0.0, 0.0]]}, "data.x overflows float32"),
    ({"a": [[1.0, 2.0]], "b": [[1.0, 0.0]], "y": [[0.0, 1e300]]}, "data.y overflows float32"),
], ids=["second-input", "first-input", "target"])
def test_every_graph_input_is_checked_after_the_cast(capsys, tmp_path: Path,
                                                     data: dict[str, Any], message: str) -> None:
    spec = write(tmp_path, "s.json", TWO_INPUTS)
    assert message in refused(capsys, "compare", spec, "--data", write(tmp_path, "d.json", data))


def test_the_estimate_reads_every_slot_and_output_of_a_graph() -> None:
    d, length, hidden, batch = 3, 5, 4, 2
    spec = manual.parse_spec(graph(
        [{"name": "rnn", "type": "lstm", "inputs": ["x"], "hidden_size": hidden}],
        {"type": "mse"}, inputs={"x": {"shape": [length, d]}}))
    found = budget.estimate(spec, batch=batch)
    gates = 4 * hidden  # nn.LSTM: weight_ih (4H, D), weight_hh (4H, H), two biases (4H,)
    assert found.parameters == gates * d + gates * hidden + 2 * gates
    # the input, then the three outputs: output (L, H), h_n and c_n (num_layers, H)
    assert found.activations == batch * (length * d + length * hidden + 2 * hidden)
    assert found.bytes == 8 * (budget.PARAMETER_COPIES * found.parameters
                               + budget.ACTIVATION_COPIES * found.activations)


def test_a_wide_graph_is_refused_before_allocation(capsys, tmp_path: Path) -> None:
    spec = write(tmp_path, "s.json", graph(
        [{**LINEAR, "out_features": 10**9}, {"name": "out", "type": "linear",
                                             "inputs": ["lin"], "out_features": 1}],
        {"type": "mse"}))
    data = write(tmp_path, "d.json", {"x": [[1.0, 2.0]], "y": [[0.0]]})
    message = refused(capsys, "compare", spec, "--data", data)
    parameters = (2 * 10**9 + 10**9) + (10**9 + 1)  # lin (3, 2) -> 1e9, then out 1e9 -> 1
    assert f"{parameters:,} parameters" in message and "GiB budget" in message
