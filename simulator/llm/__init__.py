"""Language models at serving and pod scale on systems of chips (``systolic-sim llm``).

Built on the single-chip engine: every matmul is costed by :func:`simulator.core.engine.gemm_op`
(memory model included), vector work by :mod:`simulator.core.vector`, collectives by the alpha-beta
model (:mod:`simulator.llm.collectives`). See :mod:`simulator.llm.ops` for the op list.
"""

from .inference import InferenceResult, simulate_inference
from .model import ModelSpec, load_model
from .system import System, system_of

__all__ = ["InferenceResult", "ModelSpec", "System", "load_model", "simulate_inference",
           "system_of"]
