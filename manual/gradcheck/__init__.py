"""Numerical gradient checking for the manual engine: numpy only, independent of PyTorch.

``check_network(spec, data, mode=...)`` checks a network's backprop against central
differences (``full``, ``sparse``, ``projection``) or the complex step (``complex``);
``check_function`` does the same for any scalar function of arrays, and ``check_op`` for one
registered op alone. Each returns a :class:`GradcheckRecord` with one :class:`TensorCheck` per
tensor.
"""

from manual.gradcheck.core import DEFAULT_EPS
from manual.gradcheck.modes import check_function
from manual.gradcheck.network import NetworkEvaluator, check_network
from manual.gradcheck.opcheck import check_op
from manual.gradcheck.records import (
    ACCEPTABLE,
    GOOD,
    MODES,
    VERDICTS,
    GradcheckRecord,
    TensorCheck,
)

__all__ = [
    "ACCEPTABLE", "DEFAULT_EPS", "GOOD", "MODES", "VERDICTS", "GradcheckRecord",
    "NetworkEvaluator", "TensorCheck", "check_function", "check_network", "check_op",
]
