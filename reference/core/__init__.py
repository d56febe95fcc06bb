"""The differential core: the runner of each engine, the PyTorch mirror, the comparison rule,
the records and tensor names, the measured float32 rounding, and seeded op inputs.

Everything else in ``reference`` drives the engines through :mod:`.run` and judges what they
give with :mod:`.compare`.
"""
