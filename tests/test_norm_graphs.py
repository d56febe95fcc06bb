"""The norm, dropout and embedding layers inside graph specs, end to end through main's machinery.

Each graph runs through :func:`reference.core.compare.compare_network` (the manual graph executor
against the torch mirror, same slots, same dropout mask from ``manual.draw_noise``): outputs,
``state: <node>.<slot>`` after the forward, every gradient, in both modes and both dtypes. Then
what the records must show: running statistics as compared tensors, identical records for two
dropout runs, a norm-zoo mutant located at its node, and ``backprop-harness compare`` on the
example spec.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import manual
from manual.random import stream
from manual.spec import DTYPES
from reference.core.compare import compare_network
from reference.core.records import ComparisonRecord
from reference.zoo.norm import NORM_ZOO
from reports.cli import main

MODES = ("train", "eval")
EXAMPLE = Path("examples/batchnorm_mlp.json")
EXAMPLE_DATA = Path("examples/batchnorm_mlp_data.json")


def _linear(name: str, source: str, out: int) -> dict[str, Any]:
    return {"name": name, "type": "linear", "inputs": [source], "out_features": out}


GRAPHS: dict[str, dict[str, Any]] = {
    "batch_norm after linear": {"inputs": {"x": {"shape": [5]}}, "nodes": [
        _linear("fc1", "x", 6),
        {"name": "bn", "type": "batch_norm", "inputs": ["fc1"], "momentum": 0.3},
        {"name": "act", "type": "tanh", "inputs": ["bn"]},
        _linear("head", "act", 3)], "loss": {"type": "cross_entropy"}},
    "batch_norm on (N, C, H, W) after conv2d": {"inputs": {"x": {"shape": [2, 5, 5]}}, "nodes": [
        {"name": "conv", "type": "conv2d", "inputs": ["x"], "out_channels": 3, "kernel_size": 3,
         "padding": 1},
        {"name": "bn", "type": "batch_norm", "inputs": ["conv"], "momentum": None},
        {"name": "act", "type": "relu", "inputs": ["bn"]},
        {"name": "flat", "type": "flatten", "inputs": ["act"]},
        _linear("head", "flat", 4)], "loss": {"type": "cross_entropy"}},
    "layer_norm": {"inputs": {"x": {"shape": [6]}}, "nodes": [
        _linear("fc1", "x", 8),
        {"name": "ln", "type": "layer_norm", "inputs": ["fc1"]},
        {"name": "act", "type": "gelu", "inputs": ["ln"]},
        _linear("head", "act", 2)], "loss": {"type": "mse"}},
    "group_norm after conv1d": {"inputs": {"x": {"shape": [2, 7]}}, "nodes": [
        {"name": "conv", "type": "conv1d", "inputs": ["x"], "out_channels": 4, "kernel_size": 3},
        {"name": "gn", "type": "group_norm", "inputs": ["conv"], "num_groups": 2},
        {"name": "act", "type": "silu", "inputs": ["gn"]},
        {"name": "flat", "type": "flatten", "inputs": ["act"]},
        _linear("head", "flat", 3)], "loss": {"type": "cross_entropy"}},
    "dropout between linears": {"inputs": {"x": {"shape": [5]}}, "nodes": [
        _linear("fc1", "x", 8),
        {"name": "act", "type": "relu", "inputs": ["fc1"]},
        {"name": "drop", "type": "dropout", "inputs": ["act"], "p": 0.4},
        _linear("fc2", "drop", 6),
        {"name": "drop2", "type": "dropout", "inputs": ["fc2"], "p": 0.2},
        _linear("head", "drop2", 2)], "loss": {"type": "bce_with_logits"}},
    "embedding on an index input": {"inputs": {"tokens": {"shape": [4], "kind": "index"}},
                                    "nodes": [
        {"name": "emb", "type": "embedding", "inputs": ["tokens"], "num_embeddings": 7,
         "embedding_dim": 5, "padding_idx": 0},
        {"name": "ln", "type": "layer_norm", "inputs": ["emb"]},
        {"name": "flat", "type": "flatten", "inputs": ["ln"]},
        _linear("head", "flat", 3)], "loss": {"type": "cross_entropy"}},
}


def graph_spec(name: str, dtype: str = "float64", mode: str = "train", seed: int = 0
               ) -> manual.Spec:
    return manual.parse_spec({"name": name, **GRAPHS[name], "dtype": dtype, "mode": mode,
                              "seed": seed})


def graph_data(spec: manual.Spec, batch: int = 6) -> manual.Data:
    rng = stream(spec.seed, "data", spec.name)
    first = spec.inputs[0]
    x = (rng.integers(0, 7, size=(batch, *first.shape)) if first.kind == "index"
         else rng.normal(0.5, 2.0, size=(batch, *first.shape)))
    loss, out = spec.loss.type, spec.output_shape
    if loss == "cross_entropy":
        y = rng.integers(0, out[0], size=batch)
    elif loss == "bce_with_logits":
        y = rng.uniform(size=(batch, *out))
    else:
        y = rng.standard_normal((batch, *out))
    return manual.make_data(spec, x, y)


def _failed(record: ComparisonRecord) -> list[tuple[str, str | float]]:
    return [(t.name, t.problem or t.tolerance_ratio) for t in record.failures]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(GRAPHS))
def test_graph_with_a_norm_layer_matches_torch(name: str, dtype: str, mode: str) -> None:
    spec = graph_spec(name, dtype, mode)
    record = compare_network(spec, graph_data(spec))
    assert record.passed, (record.first_divergence, _failed(record))
    compared = {t.name for t in record.tensors}
    # Every node's output and every parameter gradient is among the compared tensors.
    assert {f"forward: {node.name}" for node in spec.nodes} <= compared
    assert {f"backward: {node.name}.{slot}" for node in spec.nodes
            for slot in node.signature.params} <= compared


@pytest.mark.parametrize("dtype", DTYPES)
def test_eval_mode_on_running_statistics_off_their_defaults(dtype: str) -> None:
    """Eval mode normalises with the given running statistics (not 0 and 1), in both engines."""
    spec = graph_spec("batch_norm on (N, C, H, W) after conv2d", dtype, "eval")
    rng = np.random.default_rng(4)
    state = {k: (v + rng.uniform(0.5, 2.0, v.shape)).astype(v.dtype) if v.dtype.kind == "f"
             else v + 3 for k, v in manual.initial_state(spec).items()}
    record = compare_network(spec, graph_data(spec), state=state)
    assert record.passed, _failed(record)
    after = {t.name: t for t in record.tensors}["state: bn.running_var"]
    np.testing.assert_array_equal(after.reference, state["bn.running_var"])


@pytest.mark.parametrize("mode", MODES)
def test_batch_norm_record_holds_the_running_statistics(mode: str) -> None:
    spec = graph_spec("batch_norm after linear", "float64", mode)
    data = graph_data(spec)
    record = compare_network(spec, data)
    states = {t.name: t for t in record.tensors if t.stage == "state"}
    assert set(states) == {"state: bn.running_mean", "state: bn.running_var",
                           "state: bn.num_batches_tracked"}
    running_var = states["state: bn.running_var"]
    assert (running_var.node, running_var.slot, running_var.shape) == ("bn", "running_var", [6])
    assert running_var.passed and states["state: bn.num_batches_tracked"].dtype == "int64"
    if mode == "eval":  # eval keeps the state
        assert running_var.reference == [1.0] * 6
        assert states["state: bn.num_batches_tracked"].reference == 0
        return
    # Train mode: the state compared is the updated one, m * unbiased batch variance +
    # (1 - m) * 1 with m = 0.3 (PyTorch's update, from independent math here).
    params = manual.initial_parameters(spec)
    fc1 = data.x @ params["fc1.weight"].T + params["fc1.bias"]
    np.testing.assert_allclose(running_var.reference, 0.7 + 0.3 * fc1.var(axis=0, ddof=1),
                               rtol=1e-13)
    np.testing.assert_allclose(running_var.manual, running_var.reference, rtol=1e-13)
    assert states["state: bn.num_batches_tracked"].reference == 1


def test_two_dropout_runs_give_identical_records() -> None:
    spec = graph_spec("dropout between linears", "float32", "train")
    data = graph_data(spec)
    first, second = compare_network(spec, data), compare_network(spec, data)
    assert first.passed
    assert first.to_json() == second.to_json()
    # The mask really drops: zeros in the dropout output where the ReLU output is not zero.
    tensors = {t.name: t for t in first.tensors}
    act, drop = (np.asarray(tensors[f"forward: {n}"].reference) for n in ("act", "drop"))
    dropped = (drop == 0) & (act != 0)
    assert dropped.any() and not dropped.all()
    np.testing.assert_allclose(drop[~dropped & (act != 0)],
                               act[~dropped & (act != 0)] / np.float32(0.6), rtol=1e-6)
    other = compare_network(graph_spec("dropout between linears", "float32", "train", seed=1),
                            data)
    assert other.passed and other.to_json() != first.to_json()


MUTANTS = [
    ("bn_running_var_biased", "batch_norm after linear", "train", "state: bn (batch_norm)"),
    ("bn_eval_batch_stats", "batch_norm after linear", "eval", "forward: bn (batch_norm)"),
    ("bn_backward_no_mean_terms", "batch_norm on (N, C, H, W) after conv2d", "train",
     "backward: bn (batch_norm)"),
    ("bn_per_pixel", "batch_norm on (N, C, H, W) after conv2d", "train",
     "forward: bn (batch_norm)"),
    ("ln_batch_axis", "layer_norm", "train", "forward: ln (layer_norm)"),
    ("gn_per_pixel", "group_norm after conv1d", "train", "forward: gn (group_norm)"),
    ("dropout_not_rescaled", "dropout between linears", "train", "forward: drop (dropout)"),
    ("embedding_grad_assigned", "embedding on an index input", "train",
     "backward: emb (embedding)"),
    ("embedding_padding_trained", "embedding on an index input", "train",
     "backward: emb (embedding)"),
]


@pytest.mark.parametrize(("mutant", "graph", "mode", "where"), MUTANTS,
                         ids=[m[0] for m in MUTANTS])
def test_norm_mutant_is_located_at_its_node(mutant: str, graph: str, mode: str,
                                            where: str) -> None:
    spec = graph_spec(graph, "float64", mode)
    data = graph_data(spec)
    assert compare_network(spec, data).passed
    with NORM_ZOO[mutant].inject():
        record = compare_network(spec, data)
    assert not record.passed
    assert record.first_divergence == where


# ---- the CLI on the example spec -------------------------------------------------------------

def test_cli_compare_passes_on_the_batch_norm_example(capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    code = main(["compare", str(EXAMPLE), "--data", str(EXAMPLE_DATA)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "state: bn.running_var" in out and "OK: all" in out


def test_cli_compare_json_is_the_same_twice_and_shows_the_state(
        capsys: pytest.CaptureFixture[str]) -> None:
    records = []
    for _ in range(2):
        assert main(["compare", str(EXAMPLE), "--data", str(EXAMPLE_DATA), "--json"]) == 0
        records.append(capsys.readouterr().out)
    assert records[0] == records[1]
    tensors = {t["name"]: t for t in json.loads(records[0])["tensors"]}
    assert tensors["state: bn.running_var"]["stage"] == "state"
    assert tensors["state: bn.num_batches_tracked"]["reference"] == 1


def test_cli_compare_passes_on_the_example_in_eval_mode(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    raw = json.loads(EXAMPLE.read_text())
    spec = tmp_path / "eval.json"
    spec.write_text(json.dumps({**raw, "mode": "eval"}))
    assert main(["compare", str(spec), "--data", str(EXAMPLE_DATA)]) == 0
    assert "state: bn.running_var" in capsys.readouterr().out
