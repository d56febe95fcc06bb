"""Tensor names: ``TensorName.parse`` is the inverse of ``str`` over every kind of name the
harness prints (constructed here, and read off real records of every producer), one step
grammar, and records written before the name fields existed still load."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import manual
from reference.checks import check_network
from reference.conformance.layers import check_sample
from reference.conformance.protocols import PROTOCOLS, op_no_mutation, run_protocol
from reference.core.compare import compare_network, compare_op
from reference.core.names import TensorName, split_ref
from reference.core.records import ComparisonRecord, TensorComparison

ROOT = Path(__file__).parent.parent
EXAMPLES = ("residual", "branches", "lstm_classifier", "transformer_block", "batchnorm_mlp")

CONSTRUCTED = [
    (TensorName("forward", "layers.2"), "forward: layers.2", ()),
    (TensorName("forward", "loss"), "forward: loss", ()),
    (TensorName("forward", "lstm", "h_n"), "forward: lstm.h_n", ()),
    (TensorName("state", "bn", "running_var"), "state: bn.running_var", ()),
    (TensorName("backward", "output"), "backward: output", ()),
    (TensorName("backward", "layers.10", "weight"), "backward: layers.10.weight", ()),
    (TensorName("backward", "mha", "out_proj.weight"), "backward: mha.out_proj.weight",
     ("mha",)),
    (TensorName("edge", "sum", "act1"), "backward: act1 -> sum", ()),
    (TensorName("edge", "double", "fc", edge=1), "backward: fc -> double (input 1)", ()),
    (TensorName("edge", "head", "lstm.h_n"), "backward: lstm.h_n -> head", ()),
    (TensorName("state", "running_var", step=1), "step 1: state: running_var", ()),
    (TensorName("edge", "sum", "a", step=12, edge=0), "step 12: backward: a -> sum (input 0)",
     ()),
    (TensorName("backward", "layers.0", "weight", check="accumulate"),
     "accumulate: layers.0.weight", ()),
    (TensorName("backward", "input", check="stale_cache"), "stale_cache: input", ()),
    (TensorName("unchanged", "dloss"), "unchanged: dloss", ()),
    (TensorName("unchanged", "layers.0", "bias"), "unchanged: layers.0.bias", ()),
    (TensorName("hygiene", "dout"), "hygiene: dout", ()),
    (TensorName("eval", "out"), "eval: out", ()),
]


@pytest.mark.parametrize(("name", "printed", "nodes"), CONSTRUCTED, ids=[c[1] for c in CONSTRUCTED])
def test_parse_inverts_str(name: TensorName, printed: str, nodes: tuple[str, ...]) -> None:
    assert str(name) == printed
    assert TensorName.parse(printed, nodes) == name


def test_a_dotted_slot_needs_the_node_names() -> None:
    # Without the spec's nodes, "mha.out_proj.weight" splits at its last dot.
    assert split_ref("mha.out_proj.weight") == ("mha.out_proj", "weight")
    assert split_ref("mha.out_proj.weight", ("mha", "m")) == ("mha", "out_proj.weight")
    assert split_ref("layers.3") == ("layers.3", "")


@pytest.mark.parametrize("text", ["forward layers.0", "backwards: x", "step x: forward: a",
                                  "forward: ", ""])
def test_a_string_outside_the_grammar_is_refused_by_name(text: str) -> None:
    with pytest.raises(ValueError, match="tensor name"):
        TensorName.parse(text)


def _examples() -> list[tuple[manual.Spec, manual.Data]]:
    out = []
    for name in EXAMPLES:
        spec = manual.load_spec(ROOT / "examples" / f"{name}.json")
        out.append((spec, manual.load_data(ROOT / "examples" / f"{name}_data.json", spec)))
    return out


def _records() -> list[tuple[ComparisonRecord, tuple[str, ...]]]:
    """Records of every producer of tensor names, with the node names of their spec."""
    out = []
    for spec, data in _examples():
        nodes = tuple(n.name for n in spec.nodes)
        out.append((compare_network(spec, data), nodes))
        out += [(run_protocol(p, spec, data), nodes) for p in PROTOCOLS]
    out.append((compare_op("cross_entropy", "float64"), ()))
    out.append((op_no_mutation("mse", "float64"), ()))
    info = manual.LAYERS["batch_norm"]
    sample = next(info.samples(np.random.default_rng(0), "float64"))  # type: ignore[misc]
    out.append((check_sample("batch_norm", sample.options, sample.inputs, "float64",
                             (True, False)).record, ("batch_norm",)))
    mha = manual.LAYERS["multi_head_attention"]
    sample = next(mha.samples(np.random.default_rng(0), "float64"))  # type: ignore[misc]
    out.append((check_sample("multi_head_attention", sample.options, sample.inputs,
                             "float64").record, ("multi_head_attention",)))
    module = importlib.util.spec_from_file_location("buggy_layers",
                                                    ROOT / "examples" / "buggy_layers.py")
    buggy = importlib.util.module_from_spec(module)
    module.loader.exec_module(buggy)  # type: ignore[union-attr]
    for case in buggy.CASES:
        result = case.run()
        records = getattr(result, "records", [result])
        out += [(r, ()) for r in records[:3]]
    spec, data = _examples()[0]
    values = {t.name: t.reference for t in compare_network(spec, data).tensors}
    out.append((check_network(spec, data, values), tuple(n.name for n in spec.nodes)))
    return out


def test_every_printed_name_parses_back_to_its_fields() -> None:
    stages = set()
    for record, nodes in _records():
        for t in record.tensors:
            parsed = TensorName.parse(t.name, nodes)
            assert str(parsed) == t.name
            assert parsed == t.tensor_name, t.name  # the record's own fields say the same
            stages.add((parsed.stage, parsed.check, parsed.step is not None))
    assert {"forward", "backward", "edge", "state", "unchanged", "hygiene", "eval"} <= {
        s for s, _, _ in stages}
    assert {("backward", "accumulate", False), ("backward", "stale_cache", False),
            ("state", None, True)} <= stages


def test_no_name_is_written_in_the_second_step_grammar() -> None:
    for record, _ in _records():
        assert not any(" (step " in t.name for t in record.tensors), record.subject


def test_an_old_record_without_name_fields_still_loads() -> None:
    old = {"name": "backward: fc -> double (input 1)", "shape": [2], "dtype": "float64",
           "max_abs_error": 0.0, "max_rel_error": 0.0, "tolerance_ratio": 0.0,
           "worst_index": [], "rtol": 1e-7, "atol": 1e-7, "passed": True}
    tensor = TensorComparison.from_dict(old)
    assert tensor.edge is None and tensor.check is None
    assert tensor.tensor_name == TensorName("edge", "double", "fc", edge=1)
    record = ComparisonRecord.from_json(json.dumps({
        "subject": "s", "kind": "network", "dtype": "float64", "seed": 0, "passed": True,
        "first_divergence": None, "tolerance_reason": "default", "tensors": [old]}))
    assert record.tensors[0].name == old["name"]


def test_the_edge_field_is_kept_in_the_record_and_round_trips() -> None:
    spec, data = _examples()[1]  # branches: a node reading one value twice, or shared values
    record = compare_network(spec, data)
    edges = [t for t in record.tensors if t.stage == "edge"]
    assert edges
    again = ComparisonRecord.from_json(record.to_json())
    assert [(t.name, t.edge, t.node, t.slot) for t in again.tensors if t.stage == "edge"] == \
        [(t.name, t.edge, t.node, t.slot) for t in edges]
