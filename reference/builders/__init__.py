"""PyTorch builders, one per layer type: ``LayerInfo.torch`` names one of them.

A builder is ``builder(info, options, signature, input_shapes, dtype) -> nn.Module`` whose
``forward(*inputs)`` computes the layer (a tuple for a layer with several outputs). Every
parameter and state slot is reachable at the attribute path ``Slot.torch``; the mirror copies
the manual engine's starting values in and reads gradients and buffers back by those names.
A module with noise slots reads ``self.noise[slot]``, set by the mirror before each forward.
"""
