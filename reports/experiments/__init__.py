"""Experiments: runs that measure something and hand a record to a report section.

The vanishing/exploding-gradient study against mean-field theory, the deep-MLP runs it uses,
the through-time study of recurrent cells, the seed example's figures and its update step,
and the cost scaling of the numerical gradient check. Sections render; experiments measure.
"""
