"""What the screens show: the run model, the live session, following a run directory, the sample index, system sampling."""
