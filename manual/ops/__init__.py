"""Forward/backward pairs for every op of the manual engine.

Each op is two pure functions: ``<op>_forward(x, **options) -> (y, cache)`` and
``<op>_backward(dy, cache) -> dx``. Caches are NamedTuples; backward reads its
cache and never recomputes the forward pass.
"""
