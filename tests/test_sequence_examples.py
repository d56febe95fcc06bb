"""The sequence examples end to end: ``backprop-harness compare`` and ``gradcheck`` exit 0 on
the pre-norm transformer block and the LSTM classifier, in float64 and in a float32 copy
(gradcheck checks a float64 copy of the float32 spec).

Both examples read a multi-output node by its first output's full name (``attn.output``,
``lstm.output``): that is where the manual engine once recorded no gradient at ``<node>``
(compare failed on ``backward: attn``), and the numerical check once perturbed
``attn.out_proj.weight`` in a node named ``attn.out_proj`` (a dotted parameter name split at
its last dot: a numerical gradient of zero).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reports.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NAMES = ("transformer_block", "lstm_classifier")


def _spec(name: str, dtype: str, tmp_path: Path) -> Path:
    path = EXAMPLES / f"{name}.json"
    if dtype == "float64":
        return path
    copy = tmp_path / f"{name}_{dtype}.json"
    copy.write_text(json.dumps({**json.loads(path.read_text()), "dtype": dtype}))
    return copy


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", NAMES)
def test_compare_passes(name: str, dtype: str, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    data = EXAMPLES / f"{name}_data.json"
    code = main(["compare", str(_spec(name, dtype, tmp_path)), "--data", str(data), "--json"])
    record = json.loads(capsys.readouterr().out)
    assert code == 0, [t["name"] for t in record["tensors"] if not t["passed"]]
    names = {t["name"] for t in record["tensors"]}
    node = "attn" if name == "transformer_block" else "lstm"
    # The multi-output node's gradient, its parameters' and the input's are all compared.
    assert {f"backward: {node}", f"backward: {node}.weight_hh_l0" if node == "lstm"
            else "backward: attn.out_proj.weight"} <= names
    assert all(t["dtype"] == dtype for t in record["tensors"] if t["stage"] == "backward")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", NAMES)
def test_gradcheck_passes(name: str, dtype: str, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    data = EXAMPLES / f"{name}_data.json"
    code = main(["gradcheck", str(_spec(name, dtype, tmp_path)), "--data", str(data),
                 "--json"])
    record = json.loads(capsys.readouterr().out)
    assert code == 0, record
    checked = {t["name"] for t in record["tensors"]}
    expected = {"attn.out_proj.weight", "attn.in_proj_weight", "x"} if name == \
        "transformer_block" else {"emb.weight", "lstm.weight_hh_l0", "lstm.bias_ih_l0"}
    assert expected <= checked


def test_the_transformer_block_is_the_issue_s_block() -> None:
    nodes = json.loads((EXAMPLES / "transformer_block.json").read_text())["nodes"]
    types = [n["type"] for n in nodes]
    assert types == ["layer_norm", "multi_head_attention", "add", "layer_norm", "linear",
                     "gelu", "linear", "add", "select", "linear"]
    attn = nodes[1]
    assert attn["inputs"] == ["ln1"] * 3  # self-attention: one value as query, key and value
    assert nodes[2]["inputs"] == ["attn.output", "x"] and nodes[7]["inputs"] == ["ff2", "res1"]
