"""Hypothesis strategies for composed convolutional networks, shape-consistent by construction.

:func:`conv_nets` draws a graph spec and its data: an input ``(C, L)`` or ``(C, H, W)``, one to
three *stages* and a ``flatten`` -> ``linear`` head. A stage is either a plain one, conv ->
optional ``batch_norm`` -> optional activation -> optional pool, or a residual block,
``act(conv3x3(act(bn(conv3x3_s(v)))) + proj(v))`` whose projection is a 1x1 conv of the same
stride when the channels or the size change (the identity otherwise). Convolutions draw
kernel 1-3, stride 1-2 (strides that do not divide the size), padding 0 to half the kernel or
``"same"``, dilation 1-2 and groups dividing both channel counts; pools draw max, average or
adaptive average pooling with overlapping windows, padding and ``ceil_mode``. Every node's
shape comes from the registry's signature as the node is added, so a configuration the layer
refuses (a kernel larger than the padded input) is skipped, never emitted. Stages form a list,
so that Hypothesis shrinks a failure by deleting whole stages, toward the smallest failing net.

One time in four the net opens with a max pool on integer-valued inputs, so that its windows
hold exact ties (every later value is continuous, where a tie has probability zero).
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import numpy as np
from hypothesis import strategies as st

import manual
from manual.layers import LAYERS
from manual.registry import LOSSES
from manual.spec import DTYPES, Spec
from reference.core import sampling

CONV_NET_LAYERS = ("conv1d", "conv2d", "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d",
                   "adaptive_avg_pool2d")
ACTIVATIONS = ("relu", "leaky_relu", "tanh", "silu", "elu")


class _Builder:
    """Nodes appended in order, each shape from the registry's signature."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shapes: dict[str, tuple[int, ...]] = {"x": shape}
        self.nodes: list[dict[str, Any]] = []
        self.last = "x"

    def add(self, kind: str, inputs: list[str], **options: Any) -> str | None:
        """Append a node and return its name, or ``None`` (nothing added) when the layer
        refuses the configuration for these input shapes."""
        try:
            signature = LAYERS[kind].signature(options, tuple(self.shapes[i] for i in inputs))
        except ValueError:
            return None
        name = f"n{len(self.nodes)}"
        self.nodes.append({"name": name, "type": kind, "inputs": inputs, **options})
        self.shapes[name] = signature.shape
        self.last = name
        return name

    def values(self, at: str) -> int:
        """Values per channel of node ``at`` (its spatial size)."""
        return math.prod(self.shapes[at][1:])


def _conv_options(draw: st.DrawFn, channels: int) -> dict[str, Any]:
    out = draw(st.integers(1, 4))
    kernel = draw(st.integers(1, 3))
    stride = draw(st.integers(1, 2))
    options: dict[str, Any] = {"out_channels": out, "kernel_size": kernel}
    if stride > 1:
        options["stride"] = stride
    if stride == 1 and kernel % 2 and draw(st.booleans()):
        options["padding"] = "same"  # an odd kernel: torch warns on "same" with an even one
    else:
        options["padding"] = draw(st.integers(0, kernel // 2))
    if kernel > 1 and draw(st.integers(0, 3)) == 0:
        options["dilation"] = 2
    common = math.gcd(channels, out)
    if common > 1 and draw(st.booleans()):
        options["groups"] = draw(st.sampled_from([g for g in range(2, common + 1)
                                                  if common % g == 0]))
    if not draw(st.integers(0, 3)):
        options["bias"] = False
    return options


def _pool(draw: st.DrawFn, net: _Builder, dims: int, kind: str | None = None) -> None:
    kinds = [f"max_pool{dims}d", f"avg_pool{dims}d"] + (["adaptive_avg_pool2d"] * (dims == 2))
    kind = kind or draw(st.sampled_from(kinds))
    if kind == "adaptive_avg_pool2d":
        net.add(kind, [net.last], output_size=draw(st.integers(1, 3)))
        return
    kernel = draw(st.integers(1, 3))
    options: dict[str, Any] = {"kernel_size": kernel, "padding": draw(st.integers(0, kernel // 2))}
    stride = draw(st.sampled_from((None, 1, 2)))
    if stride is not None:
        options["stride"] = stride
    if draw(st.booleans()):
        options["ceil_mode"] = True
    if kind.startswith("avg") and draw(st.booleans()):
        options["count_include_pad"] = False
    if net.add(kind, [net.last], **options) is None:  # too small for it: the smallest window
        net.add(kind, [net.last], kernel_size=1)


def _norm_and_activation(draw: st.DrawFn, net: _Builder, batch: int, norm: bool,
                         activation: str | None) -> None:
    # batch norm in train mode needs more than one value per channel (PyTorch refuses one)
    if norm and batch * net.values(net.last) > 1:
        # A conv before a norm has no bias, as in practice (the norm removes it), and because
        # a bias much larger than the channel's spread makes float32 batch statistics
        # ill-conditioned: PyTorch accumulates them in double, NumPy in float32, and the two
        # differ past the tolerance while both are correct to float32 rounding.
        if net.nodes[-1]["type"].startswith("conv"):
            net.nodes[-1]["bias"] = False
        net.add("batch_norm", [net.last])
    if activation is not None:
        net.add(activation, [net.last])


def _plain(draw: st.DrawFn, net: _Builder, dims: int, batch: int) -> None:
    if net.add(f"conv{dims}d", [net.last], **_conv_options(draw, net.shapes[net.last][0])) \
            is None:
        return
    _norm_and_activation(draw, net, batch, draw(st.booleans()),
                         draw(st.one_of(st.none(), st.sampled_from(ACTIVATIONS))))
    if draw(st.booleans()):
        _pool(draw, net, dims)


def _residual(draw: st.DrawFn, net: _Builder, dims: int, batch: int) -> None:
    source, channels = net.last, net.shapes[net.last][0]
    out, stride = draw(st.integers(1, 4)), draw(st.integers(1, 2))
    activation = draw(st.sampled_from(ACTIVATIONS))
    norm = draw(st.booleans())
    first = net.add(f"conv{dims}d", [source], out_channels=out, kernel_size=3, padding=1,
                    stride=stride)
    if first is None:
        return
    _norm_and_activation(draw, net, batch, norm, activation)
    inner = net.add(f"conv{dims}d", [net.last], out_channels=out, kernel_size=3, padding=1)
    if inner is None:  # never: padding 1 keeps the size of a 3-kernel
        return
    skip: str | None = source
    if out != channels or net.shapes[inner] != net.shapes[source]:
        skip = net.add(f"conv{dims}d", [source], out_channels=out, kernel_size=1,
                       stride=stride, bias=False)
    if skip is None or net.shapes[skip] != net.shapes[inner]:  # never: the 1x1 matches
        return
    net.add("add", [inner, skip])
    net.add(activation, [net.last])


@st.composite
def conv_nets(draw: st.DrawFn, *, dtypes: Collection[str] = DTYPES,
              include: Collection[str] = (), max_stages: int = 3, max_batch: int = 4
              ) -> tuple[Spec, manual.Data]:
    """A convolutional graph spec and its data (see the module docstring).

    ``include`` may name layers of :data:`CONV_NET_LAYERS`: the net then has their dimension
    and holds each of them.
    """
    wanted = [name for name in include if name in CONV_NET_LAYERS]
    one_d = [name for name in wanted if name.endswith("1d")]
    dims = 1 if one_d else 2 if wanted else draw(st.sampled_from((2, 1)))
    channels = draw(st.integers(1, 3))
    size = tuple(draw(st.integers(3, 9)) for _ in range(dims))
    batch = draw(st.integers(1, max_batch))
    net = _Builder((channels, *size))
    integer = draw(st.integers(0, 3)) == 0
    if integer:  # exact ties in the first windows
        _pool(draw, net, dims, f"max_pool{dims}d")
    for residual in draw(st.lists(st.booleans(), min_size=1, max_size=max_stages)):
        (_residual if residual else _plain)(draw, net, dims, batch)
    for name in wanted:
        if name.startswith("conv") and not any(n["type"] == name for n in net.nodes):
            net.add(name, [net.last], out_channels=2, kernel_size=1)
        elif not any(n["type"] == name for n in net.nodes):
            _pool(draw, net, dims, name)
    classes = draw(st.integers(1, 4))
    loss = "cross_entropy" if classes > 1 and draw(st.booleans()) else "mse"
    net.add("flatten", [net.last])
    net.add("linear", [net.last], out_features=classes)
    has_norm = any(LAYERS[n["type"]].behaviour.train_eval_differ for n in net.nodes)
    spec = manual.parse_spec({
        "inputs": {"x": {"shape": list(net.shapes["x"])}}, "nodes": net.nodes,
        "output": net.last, "loss": {"type": loss},
        "mode": draw(st.sampled_from(("train", "eval"))) if has_norm else "train",
        "dtype": draw(st.sampled_from(sorted(dtypes))), "seed": draw(st.integers(0, 2**16)),
    })
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = (batch, *net.shapes["x"])
    x = rng.integers(-3, 4, shape).astype(np.float64) if integer else rng.standard_normal(shape)
    y = sampling.target(LOSSES[spec.loss.type].targets[0], (batch, classes), rng, spec.dtype)
    return spec, manual.make_data(spec, x, y)
