"""The distillation methods and what they produce: MTT and AST (:mod:`~ddlib.methods.mtt`,
:mod:`~ddlib.methods.ast_components`, :mod:`~ddlib.methods.ast_perturbation`; MCT is MTT on a
convexified trajectory), DM (:mod:`~ddlib.methods.dm`), TGDD (:mod:`~ddlib.methods.tgdd`), the
coresets (:mod:`~ddlib.methods.coresets`), the resumable distillation loop
(:mod:`~ddlib.methods.distill_loop`) and the synthetic set (:mod:`~ddlib.methods.synthetic`)."""
