"""Workload kernels for the simulated chip, each with a numpy reference of the same maths."""
