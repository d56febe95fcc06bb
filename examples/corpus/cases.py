"""The corpus, declared in the README's shortest form: every layer with default arguments.

``CASES`` holds every correct layer and every planted bug; ``EXPECTED`` says, for each case,
``None`` (a correct layer: it must pass) or a piece of the message that must name the bug.
``backprop-harness check examples/corpus/cases.py`` runs them all (and fails, by design:
the planted bugs). Each declaration is the whole glue a user writes for that layer.
"""

from __future__ import annotations

import conv
import dropout as do
import embedding as emb
import layers as ly
import models
import norm
import numpy as np
import recurrent as rnn
import scalar
import torch
import torch.nn.functional as F
from torch import nn

from reference.checks import (
    Labels,
    LayerCase,
    Target,
    course,
    from_loss,
    from_scalar_autograd,
    from_scalar_model,
)
from reference.checks.dropout import DropoutCase
from reference.checks.model import ModelCase

AFFINE = {"x": (4, 3, 2), "w": (6, 5), "b": (5,)}
CONV = {"x": (2, 3, 7, 7), "w": (4, 3, 3, 3), "b": (4,)}
CONV_PARAM = {"conv_param": {"stride": 1, "pad": 1}}
POOL_PARAM = {"pool_param": {"pool_height": 2, "pool_width": 2, "stride": 2}}
STEP = {"x": (3, 10), "prev_h": (3, 4), "Wx": (10, 4), "Wh": (4, 4), "b": (4,)}
SEQ = {"x": (3, 5, 10), "h0": (3, 4), "Wx": (10, 4), "Wh": (4, 4), "b": (4,)}
LSTM_STEP = {"x": (3, 10), "prev_h": (3, 4), "prev_c": (3, 4), "Wx": (10, 16), "Wh": (4, 16),
             "b": (16,)}
LSTM_SEQ = {"x": (3, 5, 10), "h0": (3, 4), "Wx": (10, 16), "Wh": (4, 16), "b": (16,)}
DROPOUT = {"inputs": {"x": (100, 50)},
           "options": {"dropout_param": {"p": 0.6, "mode": "train", "seed": 0}}, "keep": 0.6}
BN = {"torch": nn.BatchNorm1d(5, momentum=0.1), "inputs": {"x": (8, 5)},
      "params": {"gamma": "weight", "beta": "bias"},
      "options": {"bn_param": {"mode": "train", "momentum": 0.9}},
      "state": {"running_mean": "running_mean", "running_var": "running_var"}, "steps": 2,
      "then": {"bn_param": {"mode": "test"}}}
SPATIAL = {"x": (2, 3, 4, 5), "gamma": (3,), "beta": (3,)}


def torch_affine(x, w, b):
    return x.reshape(len(x), -1) @ w + b


def torch_conv(x, w, b, conv_param):
    return F.conv2d(x, w, b, stride=conv_param["stride"], padding=conv_param["pad"])


def torch_max_pool(x, pool_param):
    return F.max_pool2d(x, (pool_param["pool_height"], pool_param["pool_width"]),
                        stride=pool_param["stride"])


def torch_avg_pool(x, pool_param):
    return F.avg_pool2d(x, (pool_param["pool_height"], pool_param["pool_width"]),
                        stride=pool_param["stride"])


def torch_spatial_bn(x, gamma, beta):
    return F.batch_norm(x, None, None, gamma, beta, training=True, eps=1e-5)


# --- the whole models: each is its glue ------------------------------------------------------
rng = np.random.default_rng(0)
X4, Y4 = rng.standard_normal((5, 4)), rng.integers(0, 3, 5)
TWO_LAYER = {"torch": lambda p, X, y: F.cross_entropy(torch.relu(X @ p["W1"] + p["b1"])
                                                      @ p["W2"] + p["b2"], y)
             + 0.1 * (p["W1"].pow(2).sum() + p["W2"].pow(2).sum())}

SEED_W = {"W1": rng.standard_normal((3, 2)), "b1": np.zeros((3, 1)),
          "W2": rng.standard_normal((1, 3)), "b2": np.zeros((1, 1))}
XS, YS = rng.standard_normal((2, 6)), rng.integers(0, 2, (1, 6)).astype(np.float64)


def seed_twin(p, X, y):
    a2 = torch.sigmoid(p["W2"] @ torch.relu(p["W1"] @ X + p["b1"]) + p["b2"])
    return F.binary_cross_entropy(a2, y)


def seed_model(backward):
    return lambda X, y: (lambda L, c: (L, backward(c)))(*models.seed_forward(X, **SEED_W, y=y))


MLP = scalar.MLP(3, [4, 4, 1])
XM, YM = rng.standard_normal((4, 3)), rng.standard_normal(4)
MLP_VALUES = {f"{k}{i}": [n.w if k == "W" else n.b for n in layer.neurons]
              for i, layer in enumerate(MLP.layers) for k in "Wb"}


def mlp_loss(X, y):
    return sum(((MLP(list(x))[0] - t) ** 2 for x, t in zip(X, y, strict=True)), 0.0) * 0.25


def mlp_twin(p, X, y):
    h = torch.relu(torch.relu(X @ p["W0"].T + p["b0"]) @ p["W1"].T + p["b1"])
    return ((h @ p["W2"].T + p["b2"]).squeeze(1) - y).pow(2).mean()


CASES = [
    # affine, activations, losses
    LayerCase("affine", ly.affine_forward, ly.affine_backward, torch=torch_affine, inputs=AFFINE),
    LayerCase("affine_leak", ly.affine_forward_leak, ly.affine_backward, torch=torch_affine,
              inputs=AFFINE),
    LayerCase("affine_relu", ly.affine_relu_forward, ly.affine_relu_backward,
              torch=lambda x, w, b: torch.relu(torch_affine(x, w, b)), inputs=AFFINE),
    LayerCase("temporal_affine", ly.temporal_affine_forward, ly.temporal_affine_backward,
              torch=lambda x, w, b: x @ w + b, inputs={"x": (2, 3, 4), "w": (4, 5), "b": (5,)}),
    LayerCase("relu", ly.relu_forward, ly.relu_backward, torch=torch.relu, inputs={"x": (4, 5)}),
    LayerCase("relu_inplace", ly.relu_forward, ly.relu_backward_inplace, torch=torch.relu,
              inputs={"x": (4, 5)}),
    LayerCase("leaky_relu", ly.leaky_relu_forward, ly.leaky_relu_backward,
              torch=lambda x, slope: F.leaky_relu(x, slope), inputs={"x": (4, 5)},
              options={"slope": 0.1}),
    LayerCase("sigmoid", ly.sigmoid_forward, ly.sigmoid_backward, torch=torch.sigmoid,
              inputs={"x": (4, 5)}),
    LayerCase("tanh", ly.tanh_forward, ly.tanh_backward, torch=torch.tanh, inputs={"x": (4, 5)}),
    LayerCase("softplus", ly.softplus_forward, ly.softplus_backward, torch=F.softplus,
              inputs={"x": (4, 5)}),
    LayerCase("elu", ly.elu_forward, ly.elu_backward, torch=lambda x, alpha: F.elu(x, alpha),
              inputs={"x": (4, 5)}, options={"alpha": 0.7}),
    LayerCase("gelu_tanh", ly.gelu_forward, ly.gelu_backward,
              torch=lambda x: F.gelu(x, approximate="tanh"), inputs={"x": (4, 5)}),
    LayerCase("reciprocal", ly.reciprocal_forward, ly.reciprocal_backward,
              torch=torch.reciprocal, inputs={"x": (4, 5)}),
    LayerCase("softmax_loss", *from_loss(ly.softmax_loss), torch=F.cross_entropy,
              inputs={"x": (5, 10), "y": Labels((5,), classes=10)}),
    LayerCase("softmax_loss_naive", *from_loss(ly.softmax_loss_naive), torch=F.cross_entropy,
              inputs={"x": (5, 10), "y": Labels((5,), classes=10)}),
    LayerCase("svm_loss", *from_loss(ly.svm_loss), torch=lambda x, y: F.multi_margin_loss(
        x, y) * x.shape[1], inputs={"x": (5, 10), "y": Labels((5,), classes=10)}),
    LayerCase("mse_loss", *from_loss(ly.mse_loss), torch=F.mse_loss,
              inputs={"x": (4, 3), "target": Target((4, 3))}),
    LayerCase("bce_with_logits", *from_loss(ly.bce_with_logits_loss),
              torch=F.binary_cross_entropy_with_logits,
              inputs={"x": (4, 3), "target": Target((4, 3))}, domain={"target": (0, 1)}),
    # micrograd-style scalar autograd
    LayerCase("value_reciprocal", *from_scalar_autograd(scalar.reciprocal, scalar.Value),
              torch=lambda x: 2 / x, inputs={"x": (3, 4)}),
    LayerCase("value_reciprocal_bug", *from_scalar_autograd(scalar.reciprocal_bug, scalar.Value),
              torch=lambda x: 2 / x, inputs={"x": (3, 4)}),
    LayerCase("value_tanh", *from_scalar_autograd(lambda a: a.tanh(), scalar.Value),
              torch=torch.tanh, inputs={"x": (3, 4)}),
    # convolution and pooling
    LayerCase("conv", conv.conv_forward, conv.conv_backward, torch=torch_conv, inputs=CONV,
              options=CONV_PARAM),
    LayerCase("conv_crop", conv.conv_forward, conv.conv_backward_crop, torch=torch_conv,
              inputs=CONV, options=CONV_PARAM),
    LayerCase("conv_size", conv.conv_forward, conv.conv_backward_size, torch=torch_conv,
              inputs=CONV, options=CONV_PARAM),
    LayerCase("conv_leak", conv.conv_forward_leak, conv.conv_backward, torch=torch_conv,
              inputs=CONV, options=CONV_PARAM),
    LayerCase("max_pool", conv.max_pool_forward, conv.max_pool_backward, torch=torch_max_pool,
              inputs={"x": (2, 3, 8, 8)}, options=POOL_PARAM),
    LayerCase("max_pool_assign", conv.max_pool_forward, conv.max_pool_backward_assign,
              torch=torch_max_pool, inputs={"x": (2, 3, 8, 8)}, options=POOL_PARAM),
    LayerCase("avg_pool", conv.avg_pool_forward, conv.avg_pool_backward, torch=torch_avg_pool,
              inputs={"x": (2, 3, 8, 8)}, options=POOL_PARAM),
    # normalisation
    LayerCase("batchnorm", norm.batchnorm_forward, norm.batchnorm_backward, **BN),
    LayerCase("batchnorm_biased", norm.batchnorm_forward_biased, norm.batchnorm_backward, **BN),
    LayerCase("layernorm", norm.layernorm_forward, norm.layernorm_backward,
              torch=lambda x, g, b: F.layer_norm(x, x.shape[1:], g, b),
              inputs={"x": (4, 6), "gamma": (6,), "beta": (6,)}),
    LayerCase("spatial_batchnorm", norm.spatial_batchnorm_forward,
              norm.spatial_batchnorm_backward, torch=torch_spatial_bn, inputs=SPATIAL),
    LayerCase("spatial_batchnorm_per_pixel", norm.spatial_batchnorm_per_pixel,
              norm.spatial_batchnorm_backward, torch=torch_spatial_bn, inputs=SPATIAL),
    LayerCase("groupnorm", norm.groupnorm_forward, norm.groupnorm_backward,
              torch=lambda x, g, b, groups: F.group_norm(x, groups, g, b),
              inputs={"x": (2, 4, 3, 3), "gamma": (4,), "beta": (4,)}, options={"groups": 2}),
    # recurrent
    LayerCase("rnn_step", rnn.rnn_step_forward, rnn.rnn_step_backward, torch=course.rnn_step,
              inputs=STEP),
    LayerCase("rnn_step_bug", rnn.rnn_step_forward, rnn.rnn_step_backward_bug,
              torch=course.rnn_step, inputs=STEP),
    LayerCase("rnn", rnn.rnn_forward, rnn.rnn_backward, torch=course.rnn, inputs=SEQ),
    LayerCase("lstm_step", rnn.lstm_step_forward, rnn.lstm_step_backward,
              torch=course.lstm_step, inputs=LSTM_STEP),
    LayerCase("lstm_step_bug", rnn.lstm_step_forward, rnn.lstm_step_backward_bug,
              torch=course.lstm_step, inputs=LSTM_STEP),
    LayerCase("lstm", rnn.lstm_forward, rnn.lstm_backward, torch=course.lstm, inputs=LSTM_SEQ),
    LayerCase("word_embedding", emb.word_embedding_forward, emb.word_embedding_backward,
              torch=F.embedding, inputs={"x": Labels((2, 4), classes=3), "W": (3, 5)}),
    LayerCase("word_embedding_assign", emb.word_embedding_forward,
              emb.word_embedding_backward_assign, torch=F.embedding,
              inputs={"x": Labels((2, 4), classes=3), "W": (3, 5)}),
    # dropout, by its statistics
    DropoutCase("dropout", do.dropout_forward, do.dropout_backward, **DROPOUT),
    DropoutCase("dropout_per_feature", do.dropout_forward_per_feature,
                do.dropout_backward_any_mask, **DROPOUT),
    DropoutCase("dropout_not_inverted", do.dropout_forward_not_inverted,
                do.dropout_backward_any_mask, **DROPOUT),
    # whole models
    ModelCase("two_layer_net", models.TwoLayerNet(), (X4, Y4), **TWO_LAYER),
    ModelCase("two_layer_net_bug", models.TwoLayerNetBug(), (X4, Y4), **TWO_LAYER),
    ModelCase("seed_net", seed_model(models.seed_backward), (XS, YS), torch=seed_twin,
              params=SEED_W),
    ModelCase("seed_net_bug", seed_model(models.seed_backward_bug), (XS, YS), torch=seed_twin,
              params=SEED_W),
    ModelCase("micrograd_mlp", from_scalar_model(mlp_loss, MLP_VALUES), (XM, YM), torch=mlp_twin),
]

# None: a correct layer (it must pass); a string: a piece of the message naming the bug.
EXPECTED = {
    "affine_leak": "forward: out: dtype float64 != reference float32; values agree after casting",
    "relu_inplace": "hygiene: dout: modified in place",
    "softmax_loss_naive": "extreme: forward: out: ",
    "value_reciprocal_bug": "backward: x: ",
    "conv_crop": "your configuration passes; 1 neighbour fails: pad=0: backward: x: shape "
                 "(2, 3, 0, 0) != reference (2, 3, 7, 7)",
    "conv_size": "1 neighbour fails: stride=4: backward: x: shape (2, 3, 5, 5) != reference "
                 "(2, 3, 7, 7)",
    "conv_leak": "forward: out: dtype float64 != reference float32; values agree after casting",
    "max_pool_assign": "your configuration passes; 2 neighbours fail: pool_height=3 "
                       "pool_width=3: backward: x: ",
    "batchnorm_biased": "(N-1)/N with N = 8: a biased variance",
    "spatial_batchnorm_per_pixel": "forward: out: ",
    "rnn_step_bug": "backward: x: ",
    "lstm_step_bug": "backward: prev_c: ",
    "word_embedding_assign": "backward: W: ",
    "dropout_per_feature": "mask does not differ between rows",
    "dropout_not_inverted": "mean scaled by 0.6",
    "two_layer_net_bug": "backward: b1: 6 of 6 elements differ; at [4] mine 0.7348, torch 0.147; "
                         "every element is 5 x PyTorch's",
    "seed_net_bug": "backward: W1: ",
}
EXPECTED = {case.name: EXPECTED.get(case.name) for case in CASES}
