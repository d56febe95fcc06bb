"""Train a spec in both engines in lockstep and record where (if anywhere) they part.

Both engines start from the spec's initial parameters and take the same mini-batches
(shuffled by --seed); the manual engine steps with manual.optim, PyTorch with torch.optim.
Per step the record keeps both losses and the largest relative parameter difference, and
the first step at which a parameter leaves the dtype's tolerance; at the end, train and
held-out accuracy. --dataset loads scikit-learn's data (standardised, a quarter held out);
--data trains on a JSON file's rows (no held-out rows). Optimizer options come as flags
(--momentum 0.9) or as --options '{"betas": [0.9, 0.99]}'. A progress bar goes to stderr.
Exit 0 when the engines stay within tolerance throughout, 1 when they part, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

NAME = "train"
HELP = "train a spec in both engines in lockstep (optimizers, schedules, real datasets)"
ORDER = 25

# Flags for the optimizers' options: (flag, option, type); "flag" means store_true.
_FLOAT_OPTIONS = ("lr", "momentum", "dampening", "weight_decay", "eps", "alpha", "lr_decay",
                  "initial_accumulator_value")
_FLAG_OPTIONS = ("nesterov", "amsgrad", "centered", "maximize")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from manual.optim import OPTIMIZERS, SCHEDULES
    from reference.training.datasets import LOADERS

    parser.add_argument("spec", metavar="SPEC.json", help="the network spec")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", metavar="DATA.json", help="train on a JSON file's x and y")
    source.add_argument("--dataset", choices=list(LOADERS), help="a scikit-learn dataset")
    parser.add_argument("--optimizer", required=True, choices=list(OPTIMIZERS))
    for name in _FLOAT_OPTIONS:
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=float,
                            metavar="X", help=argparse.SUPPRESS if name != "lr" else
                            "learning rate (default: torch's for the optimizer)")
    for name in _FLAG_OPTIONS:
        parser.add_argument(f"--{name}", dest=name, action="store_true", default=None,
                            help=argparse.SUPPRESS)
    parser.add_argument("--betas", nargs=2, type=float, metavar=("B1", "B2"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--options", metavar="JSON", default="{}",
                        help="optimizer options as a JSON object (flags such as --momentum, "
                             "--weight-decay, --nesterov, --amsgrad, --centered also work)")
    parser.add_argument("--schedule", choices=list(SCHEDULES), help="a learning-rate schedule, "
                        "stepped after every optimizer step")
    parser.add_argument("--schedule-options", metavar="JSON", default="{}",
                        help='its options as JSON, e.g. \'{"T_max": 1000}\'')
    parser.add_argument("--clip-grad-norm", type=float, metavar="MAX",
                        help="clip the gradients' total 2-norm before each step")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, metavar="E", help="epochs (default: 1)")
    length.add_argument("--steps", type=int, metavar="S", help="optimizer steps")
    parser.add_argument("--batch-size", type=int, default=32, metavar="B")
    parser.add_argument("--seed", type=int, default=0, help="shuffling and split seed")
    parser.add_argument("--float64-shadow", action="store_true",
                        help="for a float32 spec: also train PyTorch in float64 and record "
                             "how far float32 drifts from it")
    parser.add_argument("--json", action="store_true", help="print the record as JSON")
    parser.add_argument("--out", type=Path, metavar="FILE", help="also write the JSON record here")


def _json_object(text: str, flag: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{flag}: not valid JSON ({error.msg})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{flag}: must be a JSON object, got {text!r}")
    return value


def options_from(args: argparse.Namespace) -> dict[str, Any]:
    options = _json_object(args.options, "--options")
    for name in (*_FLOAT_OPTIONS, *_FLAG_OPTIONS, "betas"):
        value = getattr(args, name)
        if value is not None:
            options[name] = list(value) if name == "betas" else value
    return options


def _file_dataset(path: str, spec: Any) -> Any:
    import numpy as np

    import manual
    from reference.training.datasets import Dataset

    data = manual.load_data(path, spec)
    labels = data.y[:, 0] if data.y.ndim == 2 and data.y.shape[1] == 1 else data.y
    if labels.ndim != 1:
        raise ValueError("data.y: training needs class indices (or one 0/1 column)")
    empty = np.zeros((0, data.x.shape[1]), data.x.dtype)
    return Dataset(Path(path).stem, data.x, labels.astype(np.int64), empty,
                   np.zeros(0, np.int64))


def summary(record: Any) -> str:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.2f}%"

    verdict = ("stay within tolerance" if record.passed
               else f"part at step {record.first_divergence_step}")
    lines = [f"{record.subject} on {record.dataset} ({record.dtype}), {record.optimizer} "
             f"{record.options}, {record.steps} steps of {record.batch_size} "
             f"({record.epochs:.2f} epochs): engines {verdict}",
             f"  loss: first {record.loss_torch[0]:.6g}, last manual "
             f"{record.loss_manual[-1]:.10g} / torch {record.loss_torch[-1]:.10g}",
             f"  largest relative parameter difference: {record.max_param_diff:.3g} "
             f"(last step {record.param_diff[-1]:.3g}; rtol {record.rtol:g}, "
             f"atol {record.atol:g})"]
    if record.float64_diff:
        lines.append(f"  float32 vs float64 PyTorch: largest {max(record.float64_diff):.3g}, "
                     f"last step {record.float64_diff[-1]:.3g}")
    for engine in ("manual", "torch"):
        acc = record.accuracy[engine]
        lines.append(f"  accuracy {engine:<6}: train {pct(acc['train'])}, "
                     f"held-out {pct(acc['test'])}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    import manual
    from manual.files import atomic_write
    from reference.training.datasets import load_dataset
    from reference.training.lockstep import train_lockstep

    spec = manual.load_spec(args.spec)
    if args.seed < 0:
        raise ValueError(f"--seed: must be non-negative, got {args.seed}")
    for flag, value in (("--epochs", args.epochs), ("--steps", args.steps)):
        if value is not None and value < 1:
            raise ValueError(f"{flag}: must be a positive integer, got {value}")
    dataset = (load_dataset(args.dataset, args.seed, spec.dtype) if args.dataset
               else _file_dataset(args.data, spec))
    epochs = args.epochs if args.steps is None and args.epochs is not None else None
    steps = args.steps if args.steps is not None else None
    if steps is None and epochs is None:
        epochs = 1
    total = steps or (epochs or 1) * -(-len(dataset.y_train) // max(args.batch_size, 1))
    with tqdm(total=total, desc=f"train {args.optimizer}", unit="step", file=sys.stderr,
              leave=False, disable=not sys.stderr.isatty()) as bar:
        record = train_lockstep(
            spec, dataset, args.optimizer, options_from(args), steps=steps, epochs=epochs,
            batch_size=args.batch_size, seed=args.seed, schedule=args.schedule,
            schedule_options=_json_object(args.schedule_options, "--schedule-options"),
            clip=args.clip_grad_norm, float64_shadow=args.float64_shadow,
            progress=bar.update)
    text = record.to_json()
    if args.out is not None:
        atomic_write(args.out, text + "\n")
    print(text if args.json else summary(record))
    return 0 if record.passed else 1
