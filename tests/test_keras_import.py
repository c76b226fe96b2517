"""``--keras FILE.py:factory`` on run and validate (simulator/frontends/keras_import.py): a
Keras 3 model converted by TensorFlow's TFLiteConverter (float) and lowered by the TFLite
importer.

- Keras' MobileNetV2 through --keras costs the same MACs as the same architecture through
  --tflite (a float file written by the converter), and the same cycles;
- validate --keras: the chip's values equal Keras' (fp32) within 1e-4 relative on MobileNetV2
  (1.0, 224x224, random batch norm statistics and biases; 0.35, 96x96, every weight random)
  and on a two-input, two-output model (outputs in
  the Keras model's order, by its output names); --inputs by the Keras input names;
- sizes: the model's own (an unknown batch is 1), --input for unknown sizes;
- the lighter road measured (docs/import-keras.md): Keras on its torch backend through --torch
  gives the same MACs but 3x+ the cycles on configs/edge-tpu.yaml, and its values match;
- bad input (a factory that raises or returns something else, a missing function or file, a
  malformed spec, TensorFlow missing, Keras already on another backend): one line, exit 2.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf = pytest.importorskip("tensorflow")
pytest.importorskip("tflite")

from conftest import CONFIGS, ROOT  # noqa: E402
from simulator.tools.cli import main  # noqa: E402

EDGE = str(CONFIGS / "edge-tpu.yaml")
MXU = str(CONFIGS / "tpu-v4-mxu.yaml")

FACTORIES = textwrap.dedent('''
    import numpy as np
    import keras

    L = keras.layers


    def randomise(model, seed=0):
        """Random weights; batch norm's gamma, beta, mean and variance (> 0) too."""
        rng = np.random.default_rng(seed)
        for layer in model.layers:
            ws = layer.get_weights()
            if isinstance(layer, L.BatchNormalization):
                layer.set_weights([(np.abs(rng.normal(0, 0.3, w.shape)) + 0.5).astype("float32")
                                   for w in ws])
            elif ws:
                layer.set_weights([rng.normal(0, 0.3 if w.ndim > 1 else 0.2, w.shape)
                                   .astype("float32") for w in ws])
        return model


    def statistics(model, seed=0):
        """Keras' own initial weights; batch norm's gamma, beta, mean and variance and the
        biases made non-trivial (a well-conditioned network: see docs/import-keras.md)."""
        rng = np.random.default_rng(seed)
        for layer in model.layers:
            ws = layer.get_weights()
            if isinstance(layer, L.BatchNormalization):
                g, b, mu, var = ws
                layer.set_weights([rng.uniform(0.5, 1.5, g.shape).astype("float32"),
                                   rng.normal(0, 0.1, b.shape).astype("float32"),
                                   rng.normal(0, 0.1, mu.shape).astype("float32"),
                                   rng.uniform(0.5, 1.5, var.shape).astype("float32")])
            elif len(ws) == 2:
                layer.set_weights([ws[0], rng.normal(0, 0.1, ws[1].shape).astype("float32")])
        return model


    def mobilenet_v2():
        return keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))


    def mobilenet_v2_logits():
        return statistics(keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3),
                                                         classifier_activation=None))


    def mobilenet_v2_small():
        return randomise(keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3),
                                                        alpha=0.35, classifier_activation=None))


    def two():
        a = keras.Input((16,), name="zeta")
        b = keras.Input((8,), name="alpha")
        h = L.Dense(12, activation="relu")(L.Concatenate()([a, b]))
        return randomise(keras.Model([a, b], [L.Dense(3, name="z_out")(h),
                                              L.Dense(5, name="a_out")(h)]))


    def any_size():
        x = keras.Input((None, None, 3))
        y = L.Conv2D(8, 3, padding="same", activation="relu")(x)
        return randomise(keras.Model(x, L.GlobalAveragePooling2D()(y)))


    def twelve():
        xs = [keras.Input((2,)) for _ in range(12)]
        return randomise(keras.Model(xs, L.Dense(3)(L.Concatenate()(xs))))


    def unbuilt():
        return keras.Sequential([L.Dense(4)])


    def fails():
        raise ValueError("no model today")


    def not_a_model():
        return 42
''')


@pytest.fixture(scope="module")
def factories(tmp_path_factory):
    path = tmp_path_factory.mktemp("keras") / "nets.py"
    path.write_text(FACTORIES)
    return str(path)


def cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def totals(*argv) -> dict:
    code, out, err = cli(*argv, "--json")
    assert code == 0, err
    return json.loads(out)["totals"]


def test_mobilenet_v2_keras_costs_what_its_tflite_file_costs(factories, tmp_path):
    import keras
    model = keras.applications.MobileNetV2(weights=None, input_tensor=keras.Input(
        (224, 224, 3), batch_size=1))
    with contextlib.redirect_stdout(io.StringIO()):
        data = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    path = tmp_path / "mnv2.tflite"
    path.write_bytes(data)
    for cfg in (EDGE, MXU):
        via_keras = totals("run", cfg, "--keras", f"{factories}:mobilenet_v2")
        via_tflite = totals("run", cfg, "--tflite", str(path))
        assert via_keras["macs"] == pytest.approx(via_tflite["macs"], rel=0.01)
        assert via_keras["macs"] == 300_774_272  # Keras' MobileNetV2 (1.0, 224): 300.8 M
        assert via_keras["total_cycles"] == via_tflite["total_cycles"]


@pytest.mark.parametrize("factory", ["mobilenet_v2_logits", "mobilenet_v2_small"])
def test_validate_keras_mobilenet_v2(factories, factory):
    """MobileNetV2 (1.0, 224x224; logits) with Keras' initial weights and random batch norm
    statistics, and a small one (0.35, 96x96) with every weight random."""
    code, out, err = cli("validate", MXU, "--set", "dtype=fp32", "--keras",
                         f"{factories}:{factory}")
    assert code == 0, out + err
    assert "against Keras" in out and out.rstrip().endswith("OK")
    line = next(s for s in out.splitlines() if "PASS" in s)
    assert float(line.rsplit("max rel ", 1)[1]) <= 1e-4
    assert float(line.split("max abs ", 1)[1].split(",")[0]) > 0  # not a trivial output


def test_validate_keras_two_inputs_two_outputs_and_given_inputs(factories, tmp_path):
    code, out, err = cli("validate", MXU, "--set", "dtype=fp32", "--keras", f"{factories}:two")
    assert code == 0, out + err
    lines = [s.split()[1] for s in out.splitlines() if "PASS" in s]
    assert lines == ["z_out", "a_out"]
    rng = np.random.default_rng(3)
    npz = tmp_path / "in.npz"
    np.savez(npz, zeta=rng.standard_normal((1, 16)).astype(np.float32),
             alpha=rng.standard_normal((1, 8)).astype(np.float32))
    code, out, err = cli("validate", MXU, "--set", "dtype=fp32", "--keras", f"{factories}:two",
                         "--inputs", str(npz))
    assert code == 0 and f"--inputs {npz}" in out, out + err
    code, out, err = cli("run", MXU, "--set", "dtype=fp32", "--keras", f"{factories}:two",
                         "--functional", "--inputs", str(npz), "--save-outputs",
                         str(tmp_path / "out.npz"))
    assert code == 0, err
    saved = np.load(tmp_path / "out.npz")
    assert sorted(saved.files) == ["a_out", "z_out"] and saved["a_out"].shape == (1, 5)
    code, out, err = cli("validate", MXU, "--set", "dtype=fp32", "--keras",
                         f"{factories}:twelve")  # inputs 1 and 10, 11 not confused
    assert code == 0, out + err


def test_sizes_from_the_model_or_input(factories):
    code, out, err = cli("run", MXU, "--keras", f"{factories}:any_size")
    assert code == 2 and err.count("\n") == 1 and "--input" in err and "Traceback" not in err
    code, out, err = cli("run", MXU, "--keras", f"{factories}:any_size", "--input", "2x20x24x3")
    assert code == 0 and "2x20x24x3" in out, err
    code, out, err = cli("validate", MXU, "--set", "dtype=fp32", "--keras",
                         f"{factories}:any_size", "--input", "2x20x24x3")
    assert code == 0 and "(2, 8)" in out, out + err
    code, out, err = cli("run", MXU, "--keras", f"{factories}:any_size", "--input", "2x20x3")
    assert code == 2 and "does not fit" in err


@pytest.mark.parametrize("spec, words", [
    (":fails", "fails() failed: ValueError: no model today"),
    (":not_a_model", "must return a keras.Model, got int"),
    (":nope", "has no function nope"),
    (":unbuilt", "the model has no known inputs"),
    ("", "must be FILE.py:factory"),
])
def test_bad_factories_are_one_line(factories, spec, words):
    code, out, err = cli("run", EDGE, "--keras", factories + spec)
    assert code == 2 and out == "" and err.count("\n") == 1 and words in err, err
    assert "Traceback" not in err


def test_missing_file_and_int8_validate_are_one_line(factories, tmp_path):
    code, _out, err = cli("run", EDGE, "--keras", f"{tmp_path}/none.py:make")
    assert code == 2 and err.count("\n") == 1, err
    code, _out, err = cli("validate", EDGE, "--keras", f"{factories}:two")
    assert code == 2 and "float chip" in err and err.count("\n") == 1, err


def _subprocess(code: str, env_extra: dict) -> subprocess.CompletedProcess:
    env = dict(os.environ, NUMBA_CACHE_DIR=os.environ.get("NUMBA_CACHE_DIR", "/tmp/numba"),
               TF_CPP_MIN_LOG_LEVEL="3", **env_extra)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


def test_missing_tensorflow_and_another_backend_are_one_line(factories):
    cmd = ("import sys; sys.modules['tensorflow'] = None\n"
           "from simulator.tools.cli import main\n"
           f"sys.exit(main(['run', {EDGE!r}, '--keras', {factories + ':two'!r}]))")
    r = _subprocess(cmd, {})
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "pip install 'systolic-sim[keras]'" in r.stderr
    cmd = ("import sys, keras\nfrom simulator.tools.cli import main\n"
           f"sys.exit(main(['run', {EDGE!r}, '--keras', {factories + ':two'!r}]))")
    r = _subprocess(cmd, {"KERAS_BACKEND": "torch"})
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "already imported on the torch backend" in r.stderr


def test_the_lighter_road_same_macs_more_cycles(factories, tmp_path):
    """Keras on its torch backend through --torch (no TensorFlow): the same MACs as --keras,
    values equal to Keras' own, but the batch norms and NHWC <-> NCHW permutes stay in the
    graph (docs/import-keras.md gives the measured ratio)."""
    torch_file = tmp_path / "keras_torch.py"
    torch_file.write_text(textwrap.dedent(f'''
        import importlib.util, torch
        spec = importlib.util.spec_from_file_location("nets", {factories!r})
        nets = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(nets)

        def big():
            return nets.mobilenet_v2(), torch.zeros(1, 224, 224, 3)

        def small():
            return nets.mobilenet_v2_small(), torch.zeros(1, 96, 96, 3)
    '''))
    cmd = textwrap.dedent(f'''
        import json, sys
        from simulator.tools.cli import main
        for cfg in ({EDGE!r}, {MXU!r}):
            main(["run", cfg, "--torch", {str(torch_file) + ":big"!r}, "--json"])
        sys.exit(main(["validate", {MXU!r}, "--set", "dtype=fp32", "--torch",
                       {str(torch_file) + ":small"!r}]))
    ''')
    r = _subprocess(cmd, {"KERAS_BACKEND": "torch"})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    decoder = json.JSONDecoder()
    text, runs = r.stdout, []
    while len(runs) < 2:
        start = text.index("{")
        obj, end = decoder.raw_decode(text[start:])
        runs.append(obj["totals"])
        text = text[start + end:]
    assert "PASS" in text and text.rstrip().endswith("OK")
    for cfg, t in zip((EDGE, MXU), runs):
        keras_road = totals("run", cfg, "--keras", f"{factories}:mobilenet_v2")
        assert t["macs"] == keras_road["macs"]
        ratio = t["total_cycles"] / keras_road["total_cycles"]
        assert ratio > (3.0 if cfg == EDGE else 1.1), (cfg, ratio)
