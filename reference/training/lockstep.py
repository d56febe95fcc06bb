"""Lockstep training: the same network trained in both engines on the same mini-batches.

Both engines start from the same parameters (:func:`manual.initial_parameters`) and see
the same mini-batches (shuffled each epoch by a named stream). The manual engine steps
with :mod:`manual.optim`, PyTorch with ``torch.optim`` (``foreach=False``). After every
step the record keeps both losses and the largest relative parameter difference
:math:`\\max_p \\lVert \\theta^{m}_p - \\theta^{t}_p\\rVert_\\infty /
\\lVert\\theta^{t}_p\\rVert_\\infty`, and notes the first step at which some parameter
leaves the dtype's tolerance (``torch.testing.assert_close``'s rule, elementwise).

A float32 run can carry a float64 shadow: PyTorch in float64 from the float32 run's own
initial values and data, so that its difference measures how far float32 arithmetic
itself has drifted from (nearly) exact arithmetic.

Each engine is driven through :mod:`reference.core.run` (``run_manual`` / ``run_torch`` on one
persistent network per engine, so that state buffers carry over from step to step) from one
private function each (:func:`_manual_pass`, :func:`_torch_pass`). A spec with noise (a
dropout mask) gets step ``k``'s from :func:`manual.draw_noise` (``step=k``), the same for
both engines.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

import manual
from manual.clip import clip_grad_norm
from manual.data import Data
from manual.jsonable import decode
from manual.numerics import Array
from manual.parse import parse_spec
from manual.random import stream
from manual.registry import (
    DEFAULT_TOLERANCES,
    LOSSES,
    class_losses,
    loss_info,
    probability_losses,
)
from manual.spec import Spec
from reference.core import mirror
from reference.core.compare import compare_arrays
from reference.core.records import dumps
from reference.core.run import run_manual, run_torch
from reference.training.datasets import Dataset
from reference.training.optimizers import (
    optimizer_info,
    schedule_info,
    torch_optimizer,
    torch_scheduler,
)


@dataclass
class TrainingRecord:
    """One lockstep training run. Per-step lists have one entry per optimizer step.

    ``param_diff[k]`` is the largest relative parameter difference after step ``k + 1``;
    ``first_divergence_step`` the first step (1-based) at which some parameter left the
    tolerance, or ``None``; ``float64_diff`` (float32 runs with a shadow) the same measure
    between PyTorch in float32 and in float64. ``accuracy[engine][split]`` is the final
    accuracy on ``train`` and ``test`` (held-out) rows (``None`` with no held-out rows).
    """

    subject: str
    dataset: str
    optimizer: str
    options: dict[str, Any]
    dtype: str
    seed: int
    batch_size: int
    steps: int
    epochs: float
    loss_manual: list[float]
    loss_torch: list[float]
    param_diff: list[float]
    first_divergence_step: int | None
    rtol: float
    atol: float
    accuracy: dict[str, dict[str, float | None]]
    spec: dict[str, Any]
    schedule: dict[str, Any] | None = None
    float64_diff: list[float] | None = None
    clip_grad_norm: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.first_divergence_step is None

    @property
    def max_param_diff(self) -> float:
        return max(self.param_diff, default=0.0)

    def to_json(self, indent: int | None = 2) -> str:
        return dumps(self, indent)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TrainingRecord:
        decoded: TrainingRecord = decode(cls, raw)
        return decoded

    @classmethod
    def from_json(cls, text: str) -> TrainingRecord:
        return cls.from_dict(json.loads(text))


def _manual_pass(spec: Spec, net: manual.Network, x: Array, y: Array,
                 noise: Mapping[str, Array] | None = None) -> tuple[Array, Array, dict[str, Array]]:
    """The manual engine on one batch: its output, loss and (fresh) parameter gradients."""
    net.zero_grad()  # the network accumulates, as PyTorch's .grad does
    run = run_manual(spec, Data(x, y), noise=noise, net=net)
    return run.values[spec.output], run.loss_value(), run.param_grads


def _torch_pass(spec: Spec, net: mirror.TorchGraph, x: Array, y: Array,
                noise: Mapping[str, Array] | None = None) -> tuple[Array, Array]:
    """PyTorch on one batch: its output and loss, the gradients left in ``.grad``."""
    run = run_torch(spec, Data(x, y), noise=noise, net=net)
    return run.values[spec.output], run.loss_value()


def _load(net: manual.Network, params: Mapping[str, Array]) -> None:
    """Write the optimizer's new values into the manual network's parameters."""
    for name, value in net.named_parameters().items():
        value[...] = params[name]


def targets(spec: Spec, labels: NDArray[Any]) -> NDArray[Any]:
    """Class indices as the spec's loss wants them (one column of 0/1 for binary losses)."""
    if spec.loss.type in probability_losses():
        return labels.astype(spec.dtype)[:, None]
    return labels


def check_fit(spec: Spec, data: Dataset) -> None:
    """The spec must take the data's features and end in one output per class (or 1)."""
    if len(spec.inputs) != 1 or len(spec.input_shape) != 1:
        raise ValueError(f"spec: training needs one graph input of (N, D) rows, got inputs "
                         f"{[(i.name, list(i.shape)) for i in spec.inputs]}")
    if spec.input_shape[0] != data.features:
        raise ValueError(f"spec: input_shape is [{spec.input_shape[0]}], but dataset "
                         f"{data.name} has {data.features} features")
    loss, width = spec.loss.type, spec.output_width
    classes, binary = class_losses(), probability_losses()
    if loss in classes and width != data.classes:
        raise ValueError(f"spec: the last layer outputs {width} features, but dataset "
                         f"{data.name} has {data.classes} classes")
    if loss in binary and (width != 1 or data.classes != 2):
        raise ValueError(f"spec: {loss} needs 1 output and 2 classes, got {width} outputs "
                         f"and {data.classes} classes")
    if loss not in classes + binary:
        raise ValueError(f"spec: training needs a classification loss ("
                         f"{', '.join(classes + binary)}), got {loss!r}")


def accuracy(spec: Spec, output: Array, labels: NDArray[Any]) -> float:
    if spec.loss.type in probability_losses():
        # The output is a probability (bce) or a logit (bce_with_logits): class 1 above 1/2.
        on_probabilities = loss_info(LOSSES[spec.loss.type]).needs == "probabilities"
        threshold = 0.5 if on_probabilities else 0.0
        predicted = (output[:, 0] > threshold).astype(np.int64)
    else:
        predicted = np.argmax(output, axis=1)
    return float(np.mean(predicted == labels))


def batches(n: int, batch_size: int, steps: int, seed: int) -> Iterator[np.ndarray]:
    """``steps`` index batches: each epoch a fresh permutation, the last batch may be short."""
    done, epoch = 0, 0
    while done < steps:
        order = stream(seed, "shuffle", f"epoch {epoch}").permutation(n)
        for start in range(0, n, batch_size):
            if done == steps:
                return
            yield order[start:start + batch_size]
            done += 1
        epoch += 1


def _relative(a: Mapping[str, Array], b: Mapping[str, Any]) -> float:
    worst = 0.0
    for name, want in b.items():
        w = np.asarray(want, dtype=np.float64)
        scale = float(np.max(np.abs(w))) if w.size else 0.0
        err = float(np.max(np.abs(np.asarray(a[name], dtype=np.float64) - w))) if w.size else 0.0
        worst = max(worst, err / scale if scale > 0 else (0.0 if err == 0 else np.inf))
    return worst


def _numpy_params(net: mirror.TorchGraph) -> dict[str, Array]:
    return {name: p.detach().numpy() for name, p in net.named_slots("params").items()}


def train_lockstep(
    spec: Spec,
    dataset: Dataset,
    optimizer: str,
    options: Mapping[str, Any] | None = None,
    *,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int = 32,
    seed: int = 0,
    schedule: str | None = None,
    schedule_options: Mapping[str, Any] | None = None,
    clip: float | None = None,
    float64_shadow: bool = False,
    progress: Callable[[int], None] | None = None,
) -> TrainingRecord:
    """Train ``spec`` on ``dataset`` in both engines, step for step; see the module doc.

    Give ``steps`` or ``epochs`` (one epoch is ``ceil(N / batch_size)`` steps). Under
    ``schedule`` the rate changes after every step, as a scheduler stepped per batch.
    ``clip`` clips the gradients' total 2-norm before each step, in both engines.
    """
    info = optimizer_info(optimizer)
    options = info.check_options(options or {})
    sched = schedule_info(schedule)
    sched_options = sched.check_options(schedule_options or {}) if sched else {}
    if batch_size < 1:
        raise ValueError(f"--batch-size: must be a positive integer, got {batch_size}")
    if (steps is None) == (epochs is None):
        raise ValueError("give either steps or epochs")
    data = dataset.astype(spec.dtype)
    check_fit(spec, data)
    n = len(data.y_train)
    per_epoch = -(-n // batch_size)
    if steps is None:
        steps = int(epochs or 0) * per_epoch
    if steps < 1:
        raise ValueError(f"--steps/--epochs: must give at least one step, got {steps}")
    tolerance = DEFAULT_TOLERANCES[spec.dtype]
    y_train = targets(spec, data.y_train)

    params = dict(manual.initial_parameters(spec))
    net = manual.build(spec, {k: v.copy() for k, v in params.items()})
    torch_net = mirror.build(spec, params)
    torch_slots = list(torch_net.named_slots("params").values())
    reference = torch_optimizer(info, torch_slots, options)
    scheduler = torch_scheduler(sched, reference, sched_options) if sched else None
    spec64 = shadow = shadow_opt = shadow_sched = None
    shadow_slots: list[torch.Tensor] = []
    if float64_shadow and spec.dtype != "float64":
        spec64 = parse_spec({**spec.to_dict(), "dtype": "float64"})
        shadow = mirror.build(spec64, {k: v.astype(np.float64) for k, v in params.items()})
        shadow_slots = list(shadow.named_slots("params").values())
        shadow_opt = torch_optimizer(info, shadow_slots, options)
        shadow_sched = torch_scheduler(sched, shadow_opt, sched_options) if sched else None
    base_lr = float(options.get("lr", info.options["lr"].default))
    rates = sched.rates(base_lr, steps, sched_options) if sched else [base_lr] * steps

    states: dict[str, Mapping[str, Array]] = {name: {} for name in params}
    loss_manual, loss_torch, diffs, shadow_diffs = [], [], [], []
    first_divergence = None
    for k, rows in enumerate(batches(n, batch_size, steps, seed), start=1):
        xb, yb = data.x_train[rows], y_train[rows]
        noise = manual.draw_noise(spec, len(rows), step=k)
        _, loss, grads = _manual_pass(spec, net, xb, yb, noise)
        _, torch_loss = _torch_pass(spec, torch_net, xb, yb, noise)
        if clip is not None:
            clip_grad_norm(grads, clip)
            torch.nn.utils.clip_grad_norm_(torch_slots, clip, foreach=False)
        step_options = {**options, "lr": rates[k - 1]}
        for name in params:
            params[name], states[name] = info.step(params[name], grads[name], states[name],
                                                   **step_options)
        _load(net, params)
        reference.step()
        if scheduler is not None:
            scheduler.step()
        torch_params = _numpy_params(torch_net)
        loss_manual.append(float(loss))
        loss_torch.append(float(torch_loss))
        diffs.append(_relative(params, torch_params))
        if first_divergence is None and not all(
                compare_arrays(name, params[name], value, tolerance, False).passed
                for name, value in torch_params.items()):
            first_divergence = k
        if shadow is not None and shadow_opt is not None and spec64 is not None:
            y64 = yb.astype(np.float64) if yb.dtype.kind == "f" else yb
            _torch_pass(spec64, shadow, xb.astype(np.float64), y64,
                        manual.draw_noise(spec64, len(rows), step=k))
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(shadow_slots, clip, foreach=False)
            shadow_opt.step()
            if shadow_sched is not None:
                shadow_sched.step()
            shadow_diffs.append(_relative(torch_params, _numpy_params(shadow)))
        if progress is not None:
            progress(1)

    # Accuracy in eval mode (no dropout, running statistics), as a trained net is used.
    net.eval()
    torch_net.eval()

    def accuracies(predict: Callable[[Array, Array], Array]) -> dict[str, float | None]:
        def on(x: Array, labels: NDArray[Any]) -> float:
            return accuracy(spec, predict(x, targets(spec, labels)), labels)

        test = on(data.x_test, data.y_test) if len(data.y_test) else None
        return {"train": on(data.x_train, data.y_train), "test": test}

    return TrainingRecord(
        subject=spec.name or "network", dataset=data.name, optimizer=info.name,
        options={k: list(v) if isinstance(v, tuple) else v for k, v in options.items()},
        dtype=spec.dtype, seed=seed, batch_size=batch_size, steps=steps,
        epochs=steps / per_epoch, loss_manual=loss_manual, loss_torch=loss_torch,
        param_diff=diffs, first_divergence_step=first_divergence, rtol=tolerance.rtol,
        atol=tolerance.atol,
        accuracy={"manual": accuracies(lambda x, y: _manual_pass(spec, net, x, y)[0]),
                  "torch": accuracies(lambda x, y: _torch_pass(spec, torch_net, x, y)[0])},
        spec=spec.to_dict(),
        schedule={"name": sched.name, **sched_options} if sched else None,
        float64_diff=shadow_diffs if shadow is not None else None, clip_grad_norm=clip,
    )
