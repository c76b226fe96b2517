"""The hardware model: the YAML config and its validation, the chip's frozen dataclasses, folds,
number formats, energy, process technology, SRAM energy, sparsity. Imports nothing else of the
simulator but ``simulator.errors``."""
