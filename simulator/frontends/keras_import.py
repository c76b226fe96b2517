"""Keras 3 models (``--keras FILE.py:factory``): TensorFlow's TFLiteConverter writes the model
as a float TFLite flatbuffer, and the TFLite importer (tflite_import) lowers it.

Why this road (docs/import-keras.md): the lighter one, Keras on its torch backend through
torch.export and the PyTorch importer, needs no TensorFlow and gives the same MACs, but not the
same graph: Keras' torch backend runs every convolution between two NHWC <-> NCHW permutes and
its batch norm as four elementwise ops, which the converter folds into the convolutions. On
Keras' MobileNetV2 (224x224) that graph costs 4.9x the cycles of this one on
configs/edge-tpu.yaml and 1.4x on configs/tpu-v4-mxu.yaml (tests/test_keras_import.py measures
both). This road therefore needs TensorFlow (the ``[keras]`` extra) and Keras on its TensorFlow
backend: ``KERAS_BACKEND`` is set to ``tensorflow`` before Keras is first imported; a process
that already imported Keras on another backend is refused in one line.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ..errors import WorkloadError

__all__ = ["import_keras", "keras_outputs", "load_keras_factory"]


def _keras(where: str):
    """Return (keras, tensorflow) on the TensorFlow backend; raise WorkloadError when
    TensorFlow is missing or Keras was imported on another backend in this process."""
    if "keras" in sys.modules:
        try:
            backend = sys.modules["keras"].backend.backend()
        except Exception:  # noqa: BLE001 - a half-imported or foreign keras module
            backend = "unknown"
        if backend != "tensorflow":
            raise WorkloadError(where, "keras", f"Keras is already imported on the {backend} "
                                "backend in this process; --keras converts with TensorFlow "
                                "and needs Keras on its tensorflow backend (run it in a fresh "
                                "process, or with KERAS_BACKEND=tensorflow)")
    else:
        os.environ["KERAS_BACKEND"] = "tensorflow"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        with _quiet_fd2():  # TensorFlow's C++ start-up lines
            import tensorflow as tf
            import keras
    except ImportError as exc:
        raise WorkloadError(where, "keras", f"--keras needs TensorFlow and Keras 3 ({exc.name} "
                            "is missing): pip install 'systolic-sim[keras]'") from None
    if keras.backend.backend() != "tensorflow":
        raise WorkloadError(where, "keras", f"Keras runs on the {keras.backend.backend()} "
                            "backend; --keras needs KERAS_BACKEND=tensorflow")
    return keras, tf


@contextlib.contextmanager
def _quiet_fd2():
    """Send file descriptor 2 (C++ logging) to /dev/null for the block."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr descriptor
        yield
        return
    try:
        sys.stderr.flush()
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        os.close(null)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _frames(tb):
    while tb is not None:
        yield tb
        tb = tb.tb_next


def load_keras_factory(spec: str):
    """Return (the keras.Model, ``FILE:LINE`` of the factory) that ``FILE.py:factory`` returns;
    raise WorkloadError (one line) for a malformed spec, a missing file or function, a file or
    factory that fails, or a factory that returns something other than a keras.Model."""
    path, sep, fn_name = spec.rpartition(":")
    what = f"--keras {spec}"
    if not sep or not path or not fn_name:
        raise WorkloadError(what, "keras", "must be FILE.py:factory")
    file = Path(path)
    from ..io_limits import check_regular
    check_regular(file, "keras", WorkloadError, "keras")
    keras, _tf = _keras(what)
    mod_name = f"_systolic_keras_{abs(hash(str(file.resolve())))}"
    try:
        loader = importlib.util.spec_from_file_location(mod_name, file)
        module = importlib.util.module_from_spec(loader)
        sys.modules[mod_name] = module
        loader.loader.exec_module(module)
    except SystemExit as exc:
        sys.modules.pop(mod_name, None)
        raise WorkloadError(f"{path}:1", "keras", f"exits while being imported "
                            f"(sys.exit({exc.code!r})); a model file must only define its "
                            "factory") from None
    except Exception as exc:  # noqa: BLE001 - the user's file
        sys.modules.pop(mod_name, None)
        raise WorkloadError(f"{path}:1", "keras", f"could not load: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    factory = getattr(module, fn_name, None)
    if not callable(factory):
        raise WorkloadError(f"{path}:1", "factory", f"{path} has no function {fn_name}")
    code = getattr(factory, "__code__", None)
    where = f"{path}:{code.co_firstlineno if code is not None else 1}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            made = factory()
    except SystemExit as exc:
        raise WorkloadError(where, "factory", f"{fn_name}() exits (sys.exit({exc.code!r})) "
                            "instead of returning a model") from None
    except Exception as exc:  # noqa: BLE001 - the user's factory
        line = [tb.tb_lineno for tb in _frames(exc.__traceback__)
                if tb.tb_frame.f_code.co_filename in (str(file), str(file.resolve()))]
        raise WorkloadError(f"{path}:{line[-1]}" if line else where, "factory",
                            f"{fn_name}() failed: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(made, keras.Model):
        raise WorkloadError(where, "factory", f"{fn_name}() must return a keras.Model, got "
                            f"{type(made).__name__}")
    return made, where


def _input_shapes(model, shapes: list[str] | None, where: str) -> list[tuple[int, ...]]:
    """Return each model input's static shape: ``shapes`` (--input AxBxC, one per input) or
    the model's own, an unknown batch size taken as 1."""
    from .torch_import import parse_input_shape
    try:
        declared = [tuple(t.shape) for t in model.inputs]
    except (AttributeError, ValueError, TypeError):
        declared = None
    if not declared:
        raise WorkloadError(where, "input", "the model has no known inputs: build it on "
                            "keras.Input(...) (a Sequential model: with an Input layer first)")
    if shapes:
        given = [parse_input_shape(s) for s in shapes]
        if len(given) != len(declared):
            raise WorkloadError(where, "input", f"the model has {len(declared)} inputs, "
                                f"--input gives {len(given)}")
        for g, d in zip(given, declared):
            if len(g) != len(d) or any(b is not None and a != b for a, b in zip(g, d)):
                raise WorkloadError(where, "input", f"--input {'x'.join(map(str, g))} does not "
                                    f"fit the model's input shape {d}")
        return given
    out = []
    for d in declared:
        dims = tuple(1 if (i == 0 and s is None) else s for i, s in enumerate(d))
        if any(s is None for s in dims):
            raise WorkloadError(where, "input", f"the model's input shape {d} has an unknown "
                                "size: give it with --input AxBxC")
        out.append(dims)
    return out


def import_keras(spec: str, shapes: list[str] | None = None, folder: str | None = None):
    """Return (TFLiteModel, keras.Model) of ``FILE.py:factory``: the model converted by
    tf.lite.TFLiteConverter to a float TFLite file (static input shapes: ``shapes``, --input
    AxBxC per input, or the model's own with batch 1 where it is unknown; written into
    ``folder`` or a temporary one) and imported by tflite_import.import_tflite. The
    TFLiteModel's data inputs are in the Keras model's input order. Raises WorkloadError."""
    from .tflite_import import import_tflite
    model, where = load_keras_factory(spec)
    keras, tf = _keras(where)
    dims = _input_shapes(model, shapes, where)
    names = [f"input_{i}" for i in range(len(dims))]
    before = logging.root.manager.disable
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()), _quiet_fd2():
            warnings.simplefilter("ignore")
            logging.disable(logging.CRITICAL)
            # the same model on inputs of static shape (TFLite has no unknown sizes)
            xs = [keras.Input(d[1:], batch_size=d[0], name=n) for d, n in zip(dims, names)]
            ys = model(xs if len(xs) > 1 else xs[0], training=False)
            fixed = keras.Model(xs, ys)
            data = tf.lite.TFLiteConverter.from_keras_model(fixed).convert()
    except Exception as exc:  # noqa: BLE001 - TensorFlow's refusal of the user's model
        text = [line for line in str(exc).strip().splitlines() if line.strip()]
        raise WorkloadError(where, "TFLiteConverter", f"cannot convert the model: "
                            f"{type(exc).__name__}: {text[0][:300] if text else ''}") from None
    finally:
        logging.disable(before)
    name = Path(spec.rpartition(":")[0]).stem + ":" + spec.rpartition(":")[2]
    with contextlib.ExitStack() as stack:
        out_dir = folder or stack.enter_context(tempfile.TemporaryDirectory())
        path = Path(out_dir) / f"{Path(spec.rpartition(':')[0]).stem}_keras.tflite"
        path.write_bytes(data)
        imported = import_tflite(str(path), name=name)
    order = names
    if len(imported.data) != len(order):
        raise WorkloadError(where, "inputs", f"the converted file has {len(imported.data)} "
                            f"inputs, the model {len(order)}")
    def rank(n: str) -> int:  # the converter names input i "serving_default_input_i:0"
        hits = [i for i, o in enumerate(order) if n in (o, f"{o}:0") or n.endswith(f"_{o}:0")]
        if len(hits) != 1:
            raise WorkloadError(where, "inputs", f"cannot tell which model input the "
                                f"converted file's input {n} is")
        return hits[0]

    ranked = sorted(imported.data, key=rank)
    imported.data = {n: imported.data[n] for n in ranked}
    # the converter names output k of the Keras model "...:k" and may list them in any order
    index = [n.rpartition(":")[2] for n in imported.onnx_outputs]
    if all(i.isdigit() for i in index) and len(set(index)) == len(index):
        pairs = sorted(zip(map(int, index), imported.onnx_outputs, imported.outputs))
        imported.onnx_outputs = [p[1] for p in pairs]
        imported.outputs = [p[2] for p in pairs]
    names_out = list(getattr(model, "output_names", None) or [])
    if len(names_out) == len(imported.onnx_outputs) and len(set(names_out)) == len(names_out):
        rename = dict(zip(imported.onnx_outputs, names_out))  # the Keras model's output names
        imported.onnx_outputs = names_out
        imported.output_steps = {rename.get(k, k): v for k, v in imported.output_steps.items()}
        imported.output_dtypes = {rename.get(k, k): v for k, v in imported.output_dtypes.items()}
    return imported, model


def keras_outputs(model, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Return the Keras model's outputs (float32, inference mode) on ``arrays`` (one per
    input, in the model's input order), flattened in the model's output order."""
    import keras
    xs = [np.asarray(a, np.float32) for a in arrays]
    out = model(xs if len(xs) > 1 else xs[0], training=False)
    leaves = keras.tree.flatten(out)
    return [np.asarray(keras.ops.convert_to_numpy(t)) for t in leaves]
