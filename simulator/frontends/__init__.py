"""Front ends that bring workloads in from other formats as Programs.

``topology`` (SCALE-Sim topology CSVs), ``scalesim`` (SCALE-Sim configs in, its reports out),
``torch_import`` (PyTorch, extra ``[torch]``) and ``onnx_import`` (ONNX files, extra ``[onnx]``).
The last two import their framework lazily, only when called; the core (``simulator.hardware``,
``simulator.core``) never imports this package.
"""
