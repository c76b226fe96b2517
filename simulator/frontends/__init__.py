"""Front ends that bring models in from other frameworks as Programs.

``torch_import`` (PyTorch, extra ``[torch]``) and ``onnx_import`` (ONNX files, extra ``[onnx]``).
Each imports its framework lazily, only when called; the core (``simulator`` itself) never
imports this package.
"""
