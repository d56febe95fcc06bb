"""A tiny scalar autograd engine in the style of micrograd, and an MLP on it (written for this
project's corpus, not copied): every number is a ``Value`` that remembers how it was made, and
``backward()`` applies the chain rule in reverse topological order, adding (``+=``) into
``.grad`` where paths meet.
"""

from __future__ import annotations

import math
import random


class Value:
    def __init__(self, data, parents=(), backward=None):
        self.data, self.grad = float(data), 0.0
        self._parents, self._backward = parents, backward or (lambda: None)

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other))

        def backward():
            self.grad += out.grad
            other.grad += out.grad
        out._backward = backward
        return out

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other))

        def backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out._backward = backward
        return out

    def __pow__(self, k):
        out = Value(self.data ** k, (self,))  # 0.0 ** -1 raises ZeroDivisionError

        def backward():
            self.grad += k * self.data ** (k - 1) * out.grad
        out._backward = backward
        return out

    def tanh(self):
        t = math.tanh(self.data)
        out = Value(t, (self,))

        def backward():
            self.grad += (1 - t * t) * out.grad
        out._backward = backward
        return out

    def relu(self):
        out = Value(max(self.data, 0.0), (self,))

        def backward():
            self.grad += (self.data > 0) * out.grad
        out._backward = backward
        return out

    def __neg__(self):
        return self * -1

    def __sub__(self, other):
        return self + (-other)

    def __truediv__(self, other):
        return self * other ** -1

    def __radd__(self, other):
        return self + other

    def __rmul__(self, other):
        return self * other

    def __rtruediv__(self, other):
        return Value(other) * self ** -1

    def backward(self):
        order, seen = [], set()

        def visit(v):
            if id(v) not in seen:
                seen.add(id(v))
                for parent in v._parents:
                    visit(parent)
                order.append(v)
        visit(self)
        self.grad = 1.0
        for v in reversed(order):
            v._backward()


class Neuron:
    def __init__(self, inputs, relu, rng):
        self.w = [Value(rng.uniform(-1, 1)) for _ in range(inputs)]
        self.b, self.relu = Value(0.1 * rng.uniform(-1, 1)), relu

    def __call__(self, x):
        act = sum((wi * xi for wi, xi in zip(self.w, x, strict=True)), self.b)
        return act.relu() if self.relu else act


class Layer:
    def __init__(self, inputs, outputs, relu, rng):
        self.neurons = [Neuron(inputs, relu, rng) for _ in range(outputs)]

    def __call__(self, x):
        return [n(x) for n in self.neurons]


class MLP:
    """ReLU hidden layers, a linear last layer."""

    def __init__(self, inputs, sizes, seed=0):
        rng, dims = random.Random(seed), [inputs, *sizes]
        self.layers = [Layer(dims[i], dims[i + 1], i < len(sizes) - 1, rng)
                       for i in range(len(sizes))]

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def parameters(self):
        return [p for layer in self.layers for n in layer.neurons for p in [*n.w, n.b]]

    def zero_grad(self):
        for p in self.parameters():
            p.grad = 0.0


# --- elementwise functions on Values, checked with from_scalar_autograd -------------------


def reciprocal(a):
    return 2 / a  # a pole at 0: PyTorch is infinite there, Python raises


def reciprocal_bug(a):
    out = Value(2 / a.data, (a,))  # ZeroDivisionError at 0, as 2 / a

    def backward():
        a.grad += -2 / a.data * out.grad  # BUG: d(2/a)/da is -2 / a**2
    out._backward = backward
    return out
