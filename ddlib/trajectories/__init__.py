"""Expert trajectories: training experts (:mod:`~ddlib.trajectories.experts`), storing them on disk
crash-safely with fingerprints of what made them (:mod:`~ddlib.trajectories.trajectory_store`,
:mod:`~ddlib.trajectories.fingerprints`), and MCT's convexified trajectories
(:mod:`~ddlib.trajectories.convexified`, :mod:`~ddlib.trajectories.waypoints`)."""
