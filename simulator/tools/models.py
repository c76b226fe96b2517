"""Whole models on the command line: given inputs (``--inputs``), saved outputs
(``--save-outputs``) and ``validate --torch/--onnx``, which runs a model on the chip and in its
framework (PyTorch, onnxruntime) on the same inputs and compares every output.

The tolerance of ``validate`` is per output: max |chip - framework| / max |framework| (the
error relative to the output's largest magnitude) must not exceed ``model_tolerance(chip)``.
"""

from __future__ import annotations

import numpy as np

from ..errors import WorkloadError
from ..frontends.feeds import Feed, load_arrays, match_feeds

__all__ = ["ModelRun", "model_tolerance", "load_keras", "load_onnx", "load_tflite", "load_torch",
           "load_zoo",
           "output_arrays", "framework_outputs", "compare_outputs", "check_quantised_chip",
           "tflite_outputs"]

# Unit roundoff (half an ulp of 1.0) of each float number format the chip rounds values to.
UNIT_ROUNDOFF = {"fp32": 2.0 ** -24, "fp16": 2.0 ** -11, "bf16": 2.0 ** -8}
# validate: accepted error in unit roundoffs of the coarsest format, and the floor (fp32 chips
# differ from the frameworks by summation order only, which stays well below it).
TOLERANCE_ROUNDOFFS = 8
TOLERANCE_FLOOR = 1e-4
# validate --tflite of an int8 model: the least fraction of output elements equal to LiteRT's
# (the rest within 1 LSB)
INT8_EXACT_FRACTION = 0.99


class ModelRun:
    """What a model road hands to ``run``/``validate``: the imported model, every program
    input's value (``values``: computed on first use, parameters can be large) and the output
    names (graph output name -> program tensor)."""

    def __init__(self, model, values_fn, outputs: dict[str, str]):
        self.model, self.outputs = model, outputs
        self._values_fn, self._values = values_fn, None

    @property
    def values(self) -> dict:
        """Return every program input's value (name -> array)."""
        if self._values is None:
            self._values = self._values_fn()
        return self._values


def model_tolerance(chip) -> float:
    """Return the largest max |chip - framework| / max |framework| ``validate`` accepts (a
    fraction): TOLERANCE_ROUNDOFFS unit roundoffs of the coarsest number format the chip rounds
    to (its dtype, and output.dtype when that narrows results), at least TOLERANCE_FLOOR.
    fp32: 1e-4; fp16: 3.9e-3; bf16: 3.1e-2. Raise WorkloadError for an int8 chip."""
    if chip.dtype not in UNIT_ROUNDOFF:
        raise WorkloadError(chip.where("dtype"), "dtype", f"validate --torch/--onnx compares "
                            f"float models and needs a float dtype, not {chip.dtype} (e.g. "
                            "--set dtype=fp32)")
    u = UNIT_ROUNDOFF[chip.dtype]
    if chip.narrows_output and chip.output_dtype in UNIT_ROUNDOFF:
        u = max(u, UNIT_ROUNDOFF[chip.output_dtype])
    return max(TOLERANCE_FLOOR, TOLERANCE_ROUNDOFFS * u)


def _zoo_feed(name: str, shape: tuple, kind: tuple) -> Feed:
    """Return the Feed of a zoo data input: ids are int64 below the vocabulary size, the rest
    float32; a causal mask or constant input is filled by the model when not given."""
    if kind[0] == "ids":
        return Feed(name, tuple(shape), np.dtype(np.int64), bound=int(kind[1]))
    return Feed(name, tuple(shape), np.dtype(np.float32),
                required=kind[0] not in ("causal_mask", "const"))


def load_onnx(path: str, shapes: dict, seed: int, inputs_path: str | None) -> ModelRun:
    """Import the ONNX model ``path`` (``shapes``: --input NAME=... shapes; or the shapes of
    the arrays read from ``inputs_path``) and return it with its inputs: the given arrays (cast
    to the declared types) or seeded ones."""
    from ..frontends.onnx_import import declared_inputs, import_onnx
    given = None
    if inputs_path is not None:
        if shapes:
            raise WorkloadError(f"--onnx {path}", "input", "--inputs gives the shapes; drop "
                                "--input")
        arrays = load_arrays(inputs_path)
        given = match_feeds(arrays, declared_inputs(path), inputs_path)
        shapes = {n: tuple(v.shape) for n, v in given.items()}
    model = import_onnx(path, shapes)
    if given is not None:  # ids index a table: check them against its rows
        match_feeds(given, [Feed(n, bound=model.id_bounds.get(n)) for n in model.data],
                    inputs_path)
    return ModelRun(model, lambda: model.inputs(seed, given),  # given None: seeded inputs
                    dict(zip(model.onnx_outputs, model.outputs)))


def load_tflite(path: str, seed: int, inputs_path: str | None,
                kernels: str = "default") -> ModelRun:
    """Import the TFLite model ``path`` with the int8 arithmetic of LiteRT's ``kernels``
    ("default" or "reference", see tflite_import.KERNELS) and return it with its inputs: the
    arrays read from ``inputs_path`` (by input tensor name; cast to the declared float32 /
    int8) or seeded ones (TFLiteModel.make_inputs)."""
    from ..frontends.tflite_import import import_tflite
    model = import_tflite(path, kernels=kernels)
    given = None
    if inputs_path is not None:
        arrays = load_arrays(inputs_path)
        given = match_feeds(arrays, [Feed(n, shape, dtype) for n, (shape, dtype)
                                     in model.data.items()], inputs_path)
    return ModelRun(model, lambda: model.inputs(seed, given),
                    dict(zip(model.onnx_outputs, model.outputs)))


def load_keras(spec: str, shapes: list[str] | None, seed: int,
               inputs_path: str | None) -> ModelRun:
    """Import the Keras model of ``FILE.py:factory`` (converted to a float TFLite file, see
    frontends.keras_import) on --input ``shapes`` or its own, and return it with its inputs:
    the arrays read from ``inputs_path`` (by the Keras model's input names, or one array) or
    seeded ones. The returned run's ``keras_model`` is the Keras model, for validate."""
    from ..frontends.keras_import import import_keras
    model, keras_model = import_keras(spec, shapes)
    given = None
    if inputs_path is not None:
        arrays = load_arrays(inputs_path)
        names = [t.name for t in keras_model.inputs]
        by_keras = match_feeds(arrays, [Feed(k, shape, dtype) for k, (shape, dtype)
                                        in zip(names, model.data.values())], inputs_path)
        given = {n: by_keras[k] for k, n in zip(names, model.data)}
    run = ModelRun(model, lambda: model.inputs(seed, given),
                   dict(zip(model.onnx_outputs, model.outputs)))
    run.keras_model = keras_model
    return run


def check_quantised_chip(model, chip, what: str) -> None:
    """Raise WorkloadError when a quantised (int8) model's values are asked of a chip that
    does not compute int8 with int8 outputs (its requantisation is the array's output step)."""
    if getattr(model, "quantised", False) and (chip.dtype != "int8" or
                                               chip.output_dtype != "int8"):
        raise WorkloadError(what, "functional", f"an int8 model computes its values on an "
                            f"int8 chip with output.dtype int8 (e.g. configs/edge-tpu.yaml), "
                            f"not {chip.dtype} with output.dtype {chip.output_dtype}; drop "
                            "--functional for its timing on this chip")


def tflite_outputs(run, path: str) -> list[np.ndarray]:
    """Return the LiteRT interpreter's outputs of ``path`` on the run's data inputs, in the
    file's output order, from the interpreter whose arithmetic the model was imported with
    (``run.model.kernels``): "default", ``Interpreter(model_path)`` as LiteRT runs a model by
    default (XNNPACK delegate); "reference", its reference kernels (OpResolverType.BUILTIN_REF,
    the definition of TFLite's integer arithmetic). See docs/import-tflite.md."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        raise WorkloadError(f"--tflite {path}", "ai-edge-litert", "validate --tflite needs "
                            "the LiteRT interpreter: pip install ai-edge-litert") from None
    try:
        if getattr(run.model, "kernels", "default") == "reference":
            it = Interpreter(model_path=path, experimental_op_resolver_type=(
                OpResolverType.BUILTIN_REF))
        else:
            it = Interpreter(model_path=path)
        it.allocate_tensors()
        by_name = {d["name"]: d for d in it.get_input_details()}
        for n, (_shape, dtype) in run.model.data.items():
            it.set_tensor(by_name[n]["index"], np.asarray(run.values[n]).astype(dtype))
        it.invoke()
        outs = {d["name"]: d for d in it.get_output_details()}
        return [np.asarray(it.get_tensor(outs[n]["index"])) for n in run.model.onnx_outputs]
    except Exception as exc:  # noqa: BLE001 - the interpreter's own refusal of the model
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise WorkloadError(f"{path}:1", "LiteRT", f"the interpreter cannot run the model: "
                            f"{type(exc).__name__}: {first}") from None


def load_torch(spec: str, shapes: list[str] | None, seed: int,
               inputs_path: str | None) -> ModelRun:
    """Import ``FILE.py:factory`` on --input ``shapes``, on the arrays read from
    ``inputs_path`` (by forward()'s parameter names) or on its example inputs; return it with
    its inputs (the module's parameters and the data)."""
    from ..frontends.torch_import import import_torch
    arrays = load_arrays(inputs_path) if inputs_path is not None else None
    model = import_torch(spec, shapes, seed, arrays=arrays, arrays_path=inputs_path or "")
    if inputs_path is not None:  # ids index a table (an embedding): check them against its rows
        bounds = gather_bounds(model.program)
        match_feeds({n: model.values[n] for n in model.data},
                    [Feed(n, bound=bounds.get(n)) for n in model.data], inputs_path)
    return ModelRun(model, lambda: model.inputs(seed), {n: n for n in model.program.outputs})


def gather_bounds(program) -> dict[str, int]:
    """Return, for each program input a ``gather`` reads as its ids, the rows of the table it
    indexes (ids must lie in [0, rows))."""
    bounds: dict[str, int] = {}
    for op in program.ops:
        if getattr(op, "kind", "") == "gather" and op.inputs[1] in program.inputs:
            rows = int(program.shapes[op.inputs[0]][0])
            bounds[op.inputs[1]] = min(rows, bounds.get(op.inputs[1], rows))
    return bounds


def load_zoo(model, seed: int, inputs_path: str | None) -> ModelRun:
    """Return a built zoo model with its inputs: seeded, the data inputs read from
    ``inputs_path`` (.npz by name, .npy for the one input; read and checked now) replacing
    the drawn ones."""
    given = {}
    if inputs_path is not None:
        feeds = [_zoo_feed(name, shape, kind) for name, (shape, kind) in model.net.data.items()]
        given = match_feeds(load_arrays(inputs_path), feeds, inputs_path)
    return ModelRun(model, lambda: {**model.inputs(seed), **given},
                    {model.output: model.output})


def output_arrays(run, values: dict) -> dict[str, np.ndarray]:
    """Return the chip's value of each model output, by graph output name (an int8 model's
    int8 outputs as int8; the chip carries them as int64)."""
    dtypes = getattr(run.model, "output_dtypes", {})
    out = {}
    for name, t in run.outputs.items():
        v = np.asarray(values[t])
        out[name] = v.astype(np.int8) if dtypes.get(name) == np.int8 and \
            np.issubdtype(v.dtype, np.integer) else v
    return out


def framework_outputs(run, path_or_none: str | None) -> list[np.ndarray]:
    """Return the framework's outputs on the run's inputs, in the model's output order:
    onnxruntime for an ONNX file (``path_or_none``), else PyTorch on the imported module."""
    if path_or_none is not None:
        return _onnxruntime_outputs(run, path_or_none)
    return _torch_outputs(run)


def _onnxruntime_outputs(run, path: str) -> list[np.ndarray]:
    """Return onnxruntime's outputs of ``path`` on the run's data inputs (declared types)."""
    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover - the [onnx] extra has it
        raise WorkloadError(f"--onnx {path}", "onnxruntime", "validate --onnx needs "
                            "onnxruntime: pip install 'systolic-sim[onnx]'") from None
    feeds = {n: np.asarray(run.values[n]).astype(dtype)
             for n, (_shape, dtype) in run.model.data.items()}
    try:
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        return [np.asarray(v) for v in sess.run(None, feeds)]
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own refusal of the model
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise WorkloadError(f"{path}:1", "onnxruntime", f"onnxruntime cannot run the model: "
                            f"{type(exc).__name__}: {first}") from None


def _torch_outputs(run) -> list[np.ndarray]:
    """Return PyTorch's outputs of the imported module on the run's data inputs, flattened in
    the order torch.export lists them."""
    import torch
    model = run.model
    args = [torch.from_numpy(np.ascontiguousarray(run.values[n])) for n in model.data]
    with torch.no_grad():
        out = model.module(*args)
    leaves = torch.utils._pytree.tree_flatten(out)[0]
    return [t.detach().cpu().numpy() for t in leaves if isinstance(t, torch.Tensor)]


def compare_outputs(got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    """Return (max |got - want|, that over max |want|) in the outputs' unit (the second a
    fraction; 0/0 is 0, x/0 is inf); inf, inf for different sizes or non-finite values."""
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    if got.size != want.size:
        return float("inf"), float("inf")
    diff = np.abs(got.reshape(-1) - want.reshape(-1))
    if not (np.all(np.isfinite(diff)) and np.all(np.isfinite(want))):
        same = np.array_equal(got.reshape(-1), want.reshape(-1), equal_nan=True)
        return (0.0, 0.0) if same else (float("inf"), float("inf"))
    max_abs = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(want).max()) if want.size else 0.0
    if scale == 0.0:
        return max_abs, 0.0 if max_abs == 0.0 else float("inf")
    return max_abs, max_abs / scale
