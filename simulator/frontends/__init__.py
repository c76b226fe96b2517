"""Front ends that bring workloads in from other formats as Programs.

``topology`` (SCALE-Sim topology CSVs), ``scalesim`` (SCALE-Sim configs in, its reports out),
``torch_import`` (PyTorch, extra ``[torch]``), ``onnx_import`` (ONNX files, extra ``[onnx]``),
``tflite_import`` (TFLite files, extra ``[tflite]``) and ``keras_import`` (Keras 3 models through
TensorFlow's TFLite converter, extra ``[keras]``). The importers load their framework lazily,
only when called; the core (``simulator.hardware``,
``simulator.core``) never imports this package.
"""
