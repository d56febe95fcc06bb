"""The hand-written NumPy backprop engine.

It imports numpy and the standard library only (never torch): a test enforces it.
"""

from manual.data import Data, load_data, make_data
from manual.network import Network, build, initial_parameters
from manual.registry import ACTIVATIONS, LOSSES, OPS, OpInfo, Tolerance
from manual.spec import LayerSpec, Spec, load_spec, parse_spec

__all__ = [
    "ACTIVATIONS", "LOSSES", "OPS", "Data", "LayerSpec", "Network", "OpInfo", "Spec",
    "Tolerance", "build", "initial_parameters", "load_data", "load_spec", "make_data",
    "parse_spec",
]
