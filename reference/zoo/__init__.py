"""The bug zoo: realistic backprop mistakes injected into the manual engine, each of which the
harness must catch.

One module per family: :mod:`.core` (linear, activations, losses, the network), :mod:`.conv`,
:mod:`.norm`, :mod:`.recurrent`, :mod:`.edges` (edge-input mistakes), :mod:`.survivors` (what
only a strict check kills) and :mod:`.optim` (optimizers and schedules).
"""
