"""Conformance of the manual engine: every registered op and layer against PyTorch.

:mod:`.matrix` (every op alone, every activation x loss in a network), :mod:`.samples` (each
layer's samples as cases), :mod:`.layers` (one layer over several steps, and the pure pair's
contract) and :mod:`.protocols` (what one forward and backward cannot show: accumulation,
kinks, mutation, unchanged slots).
"""
