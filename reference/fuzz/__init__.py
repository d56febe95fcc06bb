"""Differential fuzzing: Hypothesis strategies that draw architectures from the registry, the
edges of the input space, one case and its verdict, and campaigns split into shards.

:mod:`.strategies` (chains and the public strategies), :mod:`.graphs`, :mod:`.conv`,
:mod:`.sequence` (graph, convolutional and sequence networks), :mod:`.edges` (what typical draws
never reach), :mod:`.campaign` (a case, its failure report, a campaign) and :mod:`.shards`
(in-process, local workers or Dask).
"""
