"""Programs and the engine: ops over tensors, the vector unit, the array's cycle and value models
(numba hot loops in the ``_*`` modules), tiling and memory, residency, autodiff, reports. Imports
``simulator.hardware``, never the front ends or the tools."""
