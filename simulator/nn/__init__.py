"""A PyTorch-style front end on the simulated chip: ``import simulator.nn as asic``.

    asic.use_chip("configs/tpu-v4-mxu.yaml", overrides={"dtype": "fp32"})
    model = AIModel()                      # an asic.Model holding asic.Linear layers
    criterion = asic.MSELoss()
    optimizer = asic.SGD(model.parameters(), lr=0.01)
    optimizer.zero_grad(); loss = criterion(model(x), y); loss.backward(); optimizer.step()
    print(asic.report())

Every forward and backward op runs on the chip through the engine (``engine.run`` of a one-op
Program: matmuls on the array in the chip's dtype, elementwise ops and reductions on the vector
unit in fp32), so tensors hold the chip's values. The ops are also recorded, with their data
dependencies, into the current step's Program; ``optimizer.step()`` closes the step and the
engine schedules it (array and vector unit overlapping where the DAG allows) for its cycles,
energy and utilisation. This module is a thin tape over the engine, not a second engine.

Beyond the seed's layers (``simulator.nn.layers``): Conv2d, BatchNorm2d, MaxPool2d, Embedding,
LayerNorm, GELU, Softmax, Dropout, Flatten, MultiheadAttention, CrossEntropyLoss, Adam and AdamW,
tensor arithmetic and layout methods (N-D tensors), and ``from_torch`` (``simulator.nn.from_torch``).
Each is a chain of one-op primitives (``_apply``): the op runs through the engine, is recorded,
and its backward is the rule ``simulator.core.autodiff`` gives that op; a tensor used several times
gets the sum of its gradients (added on the vector unit).

Conventions: ``Linear(in, out)`` stores ``weight`` as (in, out) (the chip's layout; PyTorch's is
its transpose) and ``bias`` as (1, out), initialised like PyTorch's default,
U(-1/sqrt(in), 1/sqrt(in)), from a generator seeded by ``manual_seed`` (0 unless set).
MSELoss's backward is the fused ``dY = (Y - T) * (2 / N)``, as in ``simulator.kernels.linear``.
"""

from __future__ import annotations

from .tensor import (Linear, MSELoss, Model, Parameter, ReLU, SGD, Sequential, Tensor,
                     manual_seed, report, reset, use_chip)
from .layers import (Adam, AdamW, BatchNorm2d, Conv2d, CrossEntropyLoss, Dropout, Embedding,
                     Flatten, GELU, LayerNorm, MaxPool2d, MultiheadAttention, Softmax)
from .from_torch import from_torch

__all__ = ["Adam", "AdamW", "BatchNorm2d", "Conv2d", "CrossEntropyLoss", "Dropout", "Embedding",
           "Flatten", "GELU", "LayerNorm", "Linear", "MSELoss", "MaxPool2d", "Model",
           "MultiheadAttention", "Parameter", "ReLU", "SGD", "Sequential", "Softmax", "Tensor",
           "from_torch", "manual_seed", "report", "reset", "use_chip"]
