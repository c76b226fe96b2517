"""Hostile input files and counts (issue 32, items 1, 2, 5 and 6): every file a user names goes
through one boundary (simulator/io_limits.py) that caps its size per kind, refuses what is not
a regular file, and confines the files an ONNX model references to the model's folder; counts
that scale memory or time are refused up front or costed in closed form.

In process, hypothesis drives the loaders with random bytes, sizes and paths (every outcome is
a value or a SimulatorInputError, never another exception); the command line runs in
subprocesses, as a user runs it, for the one-line, exit-status-2, no-traceback checks.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import CONFIGS, ROOT
from hostile_cli import cli, one_line
from simulator import io_limits
from simulator.errors import SimulatorInputError, WorkloadError
from simulator.hardware.config import load_config
from simulator.llm.model import load_model
from simulator.frontends.topology import load_topology

GEMMINI = str(CONFIGS / "gemmini.yaml")
H100 = str(CONFIGS / "h100.yaml")
LLAMA = str(CONFIGS / "models" / "llama-3-8b.yaml")
FUNCTION_SCOPED = [HealthCheck.function_scoped_fixture]
LOADERS = [(load_config, "config"), (load_model, "model"), (load_topology, "topology")]


# --------------------------------------------------------------------------- the boundary

@pytest.mark.parametrize("loader,kind", LOADERS)
@settings(max_examples=40, deadline=None, suppress_health_check=FUNCTION_SCOPED)
@given(data=st.binary(max_size=4096))
def test_random_bytes_are_a_value_or_one_input_error(tmp_path, loader, kind, data):
    p = tmp_path / f"f.{kind}"
    p.write_bytes(data)
    try:
        loader(p)
    except SimulatorInputError as exc:
        assert "\n" not in str(exc) and str(p) in str(exc)


@pytest.mark.parametrize("loader,kind", LOADERS)
def test_size_cap_is_exact_and_overridable(tmp_path, monkeypatch, loader, kind):
    cap = io_limits.limit(kind)
    assert cap == io_limits.LIMITS[kind][0]
    p = tmp_path / "big"
    p.write_bytes(b"#" * (cap + 1))  # a YAML / CSV comment: valid text, one byte too many
    with pytest.raises(SimulatorInputError, match=f"over the limit of .* SYSTOLIC_SIM_MAX_BYTES_"
                       f"{kind.upper()}"):
        loader(p)
    monkeypatch.setenv(f"SYSTOLIC_SIM_MAX_BYTES_{kind.upper()}", str(cap + 1))
    try:  # now read whole: a value, or refused for its content only
        loader(p)
    except SimulatorInputError as exc:
        assert "over the limit" not in str(exc)


@settings(max_examples=60, deadline=None, suppress_health_check=FUNCTION_SCOPED)
@given(size=st.integers(0, 5000), cap=st.integers(0, 5000))
def test_read_bytes_returns_the_file_or_refuses_over_the_cap(tmp_path, monkeypatch, size, cap):
    monkeypatch.setenv("SYSTOLIC_SIM_MAX_BYTES_JSON", str(cap))
    p = tmp_path / "f"
    data = os.urandom(size)
    p.write_bytes(data)
    if size <= cap:
        assert io_limits.read_bytes(p, "json", WorkloadError) == data
    else:
        # whole KiB are named as such ("1 KiB"), other sizes in bytes ("1,025 bytes")
        said = f"{size // 1024} KiB" if size % 1024 == 0 else f"{size:,} bytes"
        with pytest.raises(WorkloadError, match=f"{said} is over the limit"):
            io_limits.read_bytes(p, "json", WorkloadError)


@pytest.mark.parametrize("value,want", [("4K", 4096), ("2m", 2 << 20), ("1G", 1 << 30),
                                        ("17", 17), ("0", 0)])
def test_limit_overrides_take_suffixes(monkeypatch, value, want):
    monkeypatch.setenv("SYSTOLIC_SIM_MAX_BYTES_CONFIG", value)
    assert io_limits.limit("config") == want


@pytest.mark.parametrize("value", ["x", "4Q", "-3", "1.5M"])
def test_a_bad_limit_override_is_one_input_error(monkeypatch, value):
    monkeypatch.setenv("SYSTOLIC_SIM_MAX_BYTES_CONFIG", value)
    with pytest.raises(SimulatorInputError, match="SYSTOLIC_SIM_MAX_BYTES_CONFIG"):
        io_limits.limit("config")


def _specials(tmp_path: Path) -> dict[str, str]:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    return {"a character device": "/dev/zero", "a directory": str(tmp_path),
            "a FIFO": str(fifo)}


@pytest.mark.parametrize("kind", sorted(io_limits.LIMITS))
def test_devices_fifos_and_directories_are_refused_without_reading(tmp_path, kind):
    for what, path in _specials(tmp_path).items():
        t0 = time.monotonic()
        with pytest.raises(WorkloadError, match=f"is {what}, not "):
            io_limits.read_bytes(path, kind, WorkloadError)
        assert time.monotonic() - t0 < 5  # a FIFO with no writer does not block


# --------------------------------------------------------------------------- confinement

@settings(max_examples=300, deadline=None, suppress_health_check=FUNCTION_SCOPED)
@given(location=st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(["..", ".", "a", "b", "", "link", "/", "\\", "\0", "c:"]),
             max_size=6).map("/".join)))
def test_confine_keeps_every_location_inside_the_folder(tmp_path, location):
    base = tmp_path / "model"
    base.mkdir(exist_ok=True)
    if not (base / "link").exists():
        os.symlink(tmp_path, base / "link")  # a symlink out of the folder
    try:
        got = io_limits.confine(base, location, WorkloadError, "m.onnx:1", "initializer w")
    except WorkloadError as exc:
        assert "\n" not in str(exc)
        return
    # the oracle: os.path.realpath, independently of pathlib's resolve()
    real = os.path.realpath(os.path.join(str(base), location))
    root = os.path.realpath(str(base))
    assert os.path.commonpath([real, root]) == root and real != root
    assert str(got) == real and "\0" not in location and not os.path.isabs(location)


@pytest.mark.parametrize("location,needle", [
    ("/etc/passwd", "absolute path"), ("../secret.bin", "'..'"), ("a/../../x", "'..'"),
    ("x\0y", "NUL byte"), ("a" * 5000, "5,000 characters"), ("link/secret.bin", "outside"),
    ("", "empty")])
def test_confine_refusals_name_the_rule(tmp_path, location, needle):
    base = tmp_path / "model"
    base.mkdir()
    os.symlink(tmp_path, base / "link")
    with pytest.raises(WorkloadError, match=needle):
        io_limits.confine(base, location, WorkloadError, "m.onnx:1", "initializer w")


# --------------------------------------------------------------------------- ONNX external data

def _onnx_model(folder: Path, how: str, location: str) -> Path:
    """Write m.onnx in ``folder`` (benchmarks/bench_hostile.py's builder): y = x @ C, C (2x2)
    a Constant node's value, an initializer or a ConstantOfShape fill, its data in
    ``location``."""
    pytest.importorskip("onnx")
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_hostile",
                                                  ROOT / "benchmarks" / "bench_hostile.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench.onnx_external_model(folder, how, location)


HOWS = ["constant", "initializer", "constant_of_shape"]


@pytest.mark.parametrize("how", HOWS)
def test_external_data_inside_the_folder_is_read_from_the_model_folder(tmp_path, monkeypatch,
                                                                       how):
    from simulator.frontends.onnx_import import import_onnx
    model = tmp_path / "model"
    model.mkdir()
    want = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    (model / "w.bin").write_bytes(want.tobytes())
    p = _onnx_model(model, how, "w.bin")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    (elsewhere / "w.bin").write_bytes((want * 100).tobytes())  # a decoy in the current folder
    monkeypatch.chdir(elsewhere)
    im = import_onnx(p)
    values = [np.asarray(c.value) for c in im.params.values()]
    fill = want.reshape(-1)[0]
    expect = want if how != "constant_of_shape" else np.full((2, 2), fill, np.float32)
    assert any(v.shape == (2, 2) and np.array_equal(v, expect) for v in values), values


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("where", ["absolute", "dotdot", "symlink", "long", "nul"])
def test_external_data_outside_the_folder_is_one_line(tmp_path, how, where):
    model = tmp_path / "model"
    model.mkdir()
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.ones(4, np.float32).tobytes())
    os.symlink(secret, model / "link.bin")
    loc = {"absolute": str(secret), "dotdot": "../secret.bin", "symlink": "link.bin",
           "long": "a" * 5000, "nul": "w\0.bin"}[where]
    p = _onnx_model(model, how, loc)
    proc = cli(["run", GEMMINI, "--onnx", p], tmp_path)
    line = one_line(proc, str(p), "external data location")
    assert "secret" not in line or where in ("absolute", "dotdot")


# --------------------------------------------------------------------------- importer

def test_shape_inference_without_data_propagation_is_retried(tmp_path, monkeypatch):
    onnx = pytest.importorskip("onnx")
    from simulator.frontends import onnx_import
    model = tmp_path / "model"
    model.mkdir()
    (model / "w.bin").write_bytes(np.eye(2, dtype=np.float32).tobytes())
    p = _onnx_model(model, "initializer", "w.bin")
    real = onnx.shape_inference.infer_shapes
    calls = []

    def fails_with_data_prop(m, strict_mode=False, data_prop=False, **kw):
        calls.append(data_prop)
        if data_prop:
            raise onnx.shape_inference.InferenceError("[ShapeInferenceError] data propagation")
        return real(m, strict_mode=strict_mode, data_prop=data_prop, **kw)
    monkeypatch.setattr(onnx.shape_inference, "infer_shapes", fails_with_data_prop)
    im = onnx_import.import_onnx(p)
    assert calls == [True, False] and im.program.ops


def test_messages_name_tensors_not_python_objects():
    from simulator.frontends.onnx_import import Const, _name_objects

    class Ctx:
        env = {}

    class Node:
        input = ["w"]
    c = Const(np.zeros((2, 3), np.float32), name="w")
    Ctx.env["w"] = c
    msg = _name_objects(Ctx, Node, f"TypeError: bad operand {object.__repr__(c)} and "
                        f"{object.__repr__(object())}")
    assert "object at 0x" not in msg and "tensor w" in msg and "a value" in msg
    assert repr(c) == "tensor w (2x3 float32)" and f"{Const(np.zeros(3))}".startswith("a const")


# --------------------------------------------------------------------------- prune and arrays

def _npy(tmp_path: Path, name: str, arr) -> Path:
    p = tmp_path / name
    np.save(p, arr)
    return p


@pytest.mark.parametrize("name,make,needle", [
    ("c.npy", lambda: np.ones((4, 4), complex), "complex"),
    ("s.npy", lambda: np.array([["a", "b"]]), "strings"),
    ("v.npy", lambda: np.arange(8.0), "2-D"),
])
def test_prune_refuses_arrays_it_cannot_rank(tmp_path, name, make, needle):
    p = _npy(tmp_path, name, make())
    one_line(cli(["prune", p, tmp_path / "o.npy", "--nm", "2:4"], tmp_path), str(p), needle)
    assert not (tmp_path / "o.npy").exists()


def test_prune_refuses_an_empty_file_and_an_empty_nm(tmp_path):
    (tmp_path / "z.npy").write_bytes(b"")
    one_line(cli(["prune", tmp_path / "z.npy", tmp_path / "o.npy", "--nm", "2:4"], tmp_path),
             "z.npy", "empty (0 bytes)")
    ok = _npy(tmp_path, "ok.npy", np.arange(16.0).reshape(4, 4))
    one_line(cli(["prune", ok, tmp_path / "o.npy", "--nm", ""], tmp_path), "--nm", "N:M")


@settings(max_examples=30, deadline=None, suppress_health_check=FUNCTION_SCOPED)
@given(shape=st.lists(st.integers(0, 1 << 40), min_size=1, max_size=3),
       dtype=st.sampled_from(["<f8", "<f4", "<i2", "|b1", "<c16"]),
       body=st.integers(0, 256))
def test_npy_headers_are_checked_before_any_allocation(tmp_path, shape, dtype, body):
    from numpy.lib import format as npf
    p = tmp_path / "h.npy"
    with open(p, "wb") as fh:
        npf.write_array_header_1_0(fh, {"descr": dtype, "fortran_order": False,
                                        "shape": tuple(shape)})
        fh.write(b"\0" * body)
    need = int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize
    if need <= body and need <= io_limits.limit("npy"):
        arr = io_limits.load_array(p, WorkloadError)
        assert arr.shape == tuple(shape)
        return
    with pytest.raises(WorkloadError, match="truncated|over the limit"):
        io_limits.load_array(p, WorkloadError)


def test_npz_whose_members_unpack_over_the_cap_is_refused(tmp_path, monkeypatch):
    np.savez_compressed(tmp_path / "z.npz", a=np.zeros((512, 512)))  # 2 MiB unpacked
    monkeypatch.setenv("SYSTOLIC_SIM_MAX_BYTES_NPY", "1M")
    with pytest.raises(WorkloadError, match="unpack to"):
        io_limits.load_array(tmp_path / "z.npz", WorkloadError)


# --------------------------------------------------------------------------- the command line

@pytest.mark.parametrize("args,needle", [
    (["llm", H100, "--model", "/dev/zero"], "character device"),
    (["run", "/dev/zero", "--gemm", "8x8x8"], "character device"),
    (["run", GEMMINI, "--topology", "/dev/urandom"], "character device"),
    (["run", GEMMINI, "--onnx", "/dev/zero"], "character device"),
    (["sweep", "/dev/zero", "--out", "r.csv"], "character device"),
    (["prune", "/dev/zero", "o.npy", "--nm", "2:4"], "character device"),
    (["llm", H100, "--model", "."], "directory"),
])
def test_devices_and_directories_end_in_one_line_quickly(tmp_path, args, needle):
    t0 = time.monotonic()
    one_line(cli(args, tmp_path, timeout=60), needle)
    assert time.monotonic() - t0 < 30


def test_largest_gemm_is_refused_up_front_with_the_rule(tmp_path):
    t0 = time.monotonic()
    proc = cli(["run", GEMMINI, "--gemm", "1048576x1048576x1048576"], tmp_path, timeout=60)
    one_line(proc, "gemm 1048576x1048576x1048576", "tile steps", "limit of 2^27")
    assert time.monotonic() - t0 < 30


def test_huge_training_batch_is_refused_before_allocating(tmp_path):
    proc = cli(["train", GEMMINI, "--set", "dtype=fp32", "--model", "mlp:64:32:10",
                "--batch", "1000000000000"], tmp_path, timeout=60)
    one_line(proc, "--batch 1000000000000", "SYSTOLIC_SIM_MAX_BYTES_MEMORY")


def test_llm_training_pipeline_is_closed_form_and_equals_the_list_form():
    from simulator.llm.phases import pipeline_seconds, pipeline_seconds_uniform
    stage = [0.5, 1.25, 0.75]
    for m in (1, 2, 7, 64):
        assert pipeline_seconds_uniform(stage, m, 0.1) == pytest.approx(
            pipeline_seconds([stage] * m, 0.1, decode=False), rel=1e-12)


def test_llm_train_with_a_huge_global_batch_answers_quickly(tmp_path):
    t0 = time.monotonic()
    proc = cli(["llm", H100, "--model", LLAMA, "--train", "--global-batch", "600000000"],
               tmp_path, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert time.monotonic() - t0 < 60


def test_ctrl_c_during_a_long_tile_walk_stops_within_a_second(tmp_path):
    import signal
    import subprocess
    import sys
    env = {**os.environ, "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR",
                                                           str(tmp_path / ".numba"))}
    # 2^27 tile steps (the limit): a walk of seconds, run off the main thread
    argv = [sys.executable, "-m", "simulator", "run", GEMMINI, "--gemm", "131072x65536x65536"]
    warm = subprocess.run(argv[:4] + [GEMMINI, "--gemm", "64x64x64"], cwd=ROOT, env=env,
                          capture_output=True, timeout=300)  # numba's cache, off the clock
    assert warm.returncode == 0, warm.stderr
    p = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)  # past start-up, inside the walk
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    err = p.communicate(timeout=60)[1]
    assert time.monotonic() - t0 < 1.0, err
    assert p.returncode == 130 and "Traceback" not in err and len(err.strip().splitlines()) == 1
