"""Graph specs: validation naming the node, data by input name, both engines on DAGs, the CLI,
and a mistake in one branch located at that branch's node."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import manual
from manual.registry import ACTIVATIONS
from reference.core.compare import compare_network
from reports.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
RESIDUAL = json.loads((EXAMPLES / "residual.json").read_text())
BRANCHES = json.loads((EXAMPLES / "branches.json").read_text())


def edited(raw: dict[str, Any], node: int | None = None, **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(raw)
    (out["nodes"][node] if node is not None else out).update(changes)
    return out


BAD_GRAPHS = [
    ("unknown input", edited(RESIDUAL, 2, inputs=["act", "y"]),
     r"node 'skip' \(add\): input 'y' is not a graph input or an earlier node"),
    ("forward reference", edited(RESIDUAL, 1, inputs=["skip"]),
     r"node 'act' \(tanh\): input 'skip' is defined later"),
    ("cycle onto itself", edited(RESIDUAL, 1, inputs=["act"]),
     r"node 'act' \(tanh\): input 'act' is defined later"),
    ("duplicate name", edited(RESIDUAL, 1, name="fc1"), r"node 'fc1' \(tanh\): duplicate name"),
    ("name of an input", edited(RESIDUAL, 1, name="x"), r"node 'x' \(tanh\): duplicate name"),
    ("shapes that do not fit", edited(RESIDUAL, 0, out_features=3),
     r"node 'skip' \(add\): inputs must have one shape, got \(3,\) and \(8,\)"),
    ("output not a node", edited(RESIDUAL, output="x"), r"output: 'x' is not a node"),
    ("no inputs", edited(RESIDUAL, 1, inputs=[]), r"node 'act' \(tanh\): inputs must be"),
    ("concat on the batch", edited(BRANCHES, 4, dim=0),
     r"node 'both' \(concat\): dim 0 is the batch dimension"),
    ("index into a real layer", {**RESIDUAL, "inputs": {"x": {"shape": [8], "kind": "index"}}},
     r"node 'fc1' \(linear\): an input of kind 'index'"),
    ("bad input kind", {**RESIDUAL, "inputs": {"x": {"shape": [8], "kind": "text"}}},
     r"inputs.x.kind: must be 'real' or 'index'"),
    ("unknown layer", edited(RESIDUAL, 1, type="swish"), r"node 'act': unknown layer type"),
    ("bad mode", edited(RESIDUAL, mode="test"), r"mode: must be 'train' or 'eval'"),
]


@pytest.mark.parametrize(("raw", "message"), [c[1:] for c in BAD_GRAPHS],
                         ids=[c[0] for c in BAD_GRAPHS])
def test_a_bad_graph_is_refused_naming_the_node(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        manual.parse_spec(raw)


def test_a_graph_spec_round_trips_and_infers_shapes() -> None:
    spec = manual.parse_spec(BRANCHES)
    assert manual.parse_spec(spec.to_dict()) == spec
    assert spec.to_dict()["nodes"] == BRANCHES["nodes"]
    assert [node.shape for node in spec.nodes] == [(4,), (4,), (3,), (3,), (7,), (2,)]
    assert spec.shared() == {"x"} and not spec.chain


def test_data_gives_each_input_by_name(tmp_path: Path) -> None:
    raw = {"inputs": {"a": {"shape": [3]}, "b": {"shape": [2]}}, "loss": {"type": "mse"},
           "nodes": [{"name": "both", "type": "concat", "inputs": ["a", "b"]},
                     {"name": "head", "type": "linear", "inputs": ["both"], "out_features": 1}]}
    spec = manual.parse_spec(raw)
    path = tmp_path / "data.json"
    path.write_text(json.dumps({"a": [[1, 2, 3]], "b": [[4, 5]], "y": [[0.5]]}))
    data = manual.load_data(path, spec)
    assert data.feed(spec)["b"].tolist() == [[4.0, 5.0]]
    assert compare_network(spec, data).passed
    path.write_text(json.dumps({"a": [[1, 2, 3]], "y": [[0.5]]}))
    with pytest.raises(ValueError, match=r"missing field 'b'"):
        manual.load_data(path, spec)


def test_a_value_read_twice_gets_both_edges_gradients() -> None:
    """add(fc, fc): the executor sums the two edges (micrograd's +=), as autograd does."""
    raw = {"inputs": {"x": {"shape": [3]}}, "loss": {"type": "mse"}, "nodes": [
        {"name": "fc", "type": "linear", "inputs": ["x"], "out_features": 2},
        {"name": "double", "type": "add", "inputs": ["fc", "fc"]}]}
    spec = manual.parse_spec(raw)
    rng = np.random.default_rng(4)
    data = manual.make_data(spec, rng.standard_normal((4, 3)), rng.standard_normal((4, 2)))
    net = manual.build(spec)
    net.loss(net.forward(data.x), data.y)
    net.backward()
    np.testing.assert_array_equal(net.grad_at["fc"], 2 * net.grad_at["double"])
    record = compare_network(spec, data)
    assert record.passed
    assert {"backward: fc -> double (input 0)", "backward: fc -> double (input 1)"} <= {
        t.name for t in record.tensors}


@pytest.mark.parametrize(("activation", "node"), [("sigmoid", "left_act"),
                                                  ("relu", "right_act")])
def test_a_mistake_in_one_branch_is_located_at_that_branch(
        monkeypatch: pytest.MonkeyPatch, activation: str, node: str) -> None:
    spec = manual.parse_spec(edited(BRANCHES, dtype="float64"))
    rng = np.random.default_rng(2)
    data = manual.make_data(spec, rng.standard_normal((6, 5)), rng.standard_normal((6, 2)))
    assert compare_network(spec, data).passed
    op = ACTIVATIONS[activation]
    wrong = op.backward
    monkeypatch.setitem(ACTIVATIONS, activation,  # type: ignore[index]
                        dataclasses.replace(op, backward=lambda dy, c: 1.5 * wrong(dy, c)))
    record = compare_network(spec, data)
    assert record.first_divergence == f"backward: {node} ({activation})"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["residual", "branches"])
@pytest.mark.parametrize("command", ["compare", "gradcheck"])
def test_the_commands_take_graph_specs(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       command: str, name: str, dtype: str) -> None:
    spec = tmp_path / "spec.json"
    raw = json.loads((EXAMPLES / f"{name}.json").read_text())
    spec.write_text(json.dumps({**raw, "dtype": dtype}))
    assert main([command, str(spec), "--data", str(EXAMPLES / f"{name}_data.json")]) == 0
    assert "OK: all" in capsys.readouterr().out
