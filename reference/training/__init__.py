"""Training in lockstep: optimizer steps compared one at a time (:mod:`.optimizers`), whole
training runs on the same mini-batches (:mod:`.lockstep`) and the real data sets they use
(:mod:`.datasets`).
"""
