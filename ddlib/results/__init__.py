"""Results and their trust: records with provenance (:mod:`~ddlib.results.records`), one file per
run (:mod:`~ddlib.results.recorder`), verdicts with confidence intervals
(:mod:`~ddlib.results.verdicts`), per-seed comparisons (:mod:`~ddlib.results.seeded`), the
reproduction summary (:mod:`~ddlib.results.summary`) and plots (:mod:`~ddlib.results.plots`)."""
