"""Evaluating a synthetic set: each paper's protocol (:mod:`~ddlib.evaluation.protocols`), the
runs that train fresh networks on the set (:mod:`~ddlib.evaluation.runner`), their training loops
(:mod:`~ddlib.evaluation.training`) and several networks trained as one batched model
(:mod:`~ddlib.evaluation.batched`)."""
