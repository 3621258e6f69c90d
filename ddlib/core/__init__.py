"""The bottom layer: what every other part of ddlib builds on.

Frozen, validated configs (:mod:`~ddlib.core.config`), devices and seeds
(:mod:`~ddlib.core.runtime`), crash-safe files and locks (:mod:`~ddlib.core.fileio`,
:mod:`~ddlib.core.locks`), a network's parameters as one flat vector
(:mod:`~ddlib.core.functional`), the training loops and optimizers (:mod:`~ddlib.core.train`), the
differentiable student unroll shared by the trajectory-matching methods (:mod:`~ddlib.core.unroll`),
``torch.compile`` helpers (:mod:`~ddlib.core.compiled`), provenance (:mod:`~ddlib.core.provenance`)
and the version.

Layers, bottom to top (imports point down only; ``tests/test_layers.py`` checks it):
``core`` -> ``data`` -> ``models`` -> ``trajectories`` -> ``methods`` -> ``evaluation`` ->
``results`` -> ``chapters``; ``import ddlib`` re-exports the public API flat.
"""
