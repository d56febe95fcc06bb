"""The hand-written NumPy backprop engine.

It imports numpy and the standard library only (never torch): a test enforces it.
"""

from manual.data import Data, load_data, make_data
from manual.layers import LAYERS, LayerInfo
from manual.module import Layer, Module
from manual.network import Network, build
from manual.parameters import draw_noise, initial_parameters, initial_state
from manual.parse import load_spec, parse_spec
from manual.registry import ACTIVATIONS, LOSSES, OPS, OpInfo, Tolerance
from manual.spec import Input, LayerSpec, Node, Spec

__all__ = [
    "ACTIVATIONS", "LAYERS", "LOSSES", "OPS", "Data", "Input", "Layer", "LayerInfo",
    "LayerSpec", "Module", "Network", "Node", "OpInfo", "Spec", "Tolerance", "build",
    "draw_noise", "initial_parameters", "initial_state", "load_data", "load_spec", "make_data",
    "parse_spec",
]
