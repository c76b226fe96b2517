"""Tools over the engine: the command line, sweeps, plots, comparisons, calibration, progress
bars, locks and Ctrl-C handling. May import every other subpackage."""
