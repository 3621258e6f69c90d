"""The book's chapters as tested library code: the scale presets and cached experts
(:mod:`~ddlib.chapters.scales`), the notebooks' parameter checks
(:mod:`~ddlib.chapters.notebook_params`), and per chapter its experiments, tables and figures
(``baseline_*``, ``ast_*``, ``mct_*``, ``tgdd_*``). The notebooks only call these."""
