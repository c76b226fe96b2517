"""examples/seed_tpu_keras.py: the seed's Keras model trained in Keras and on the simulated TPU
v4 MXU from the same initial weights and data; every step's loss agrees to 1e-5."""

from __future__ import annotations

import importlib.util

from conftest import ROOT


def test_the_seed_keras_example_trains_alike_on_the_chip(capsys):
    spec = importlib.util.spec_from_file_location("seed_tpu_keras",
                                                  ROOT / "examples" / "seed_tpu_keras.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    worst = mod.main()
    assert worst <= 1e-5
    out = capsys.readouterr().out
    assert "largest relative difference over 100 steps" in out
    assert "asic report on tpu-v4-mxu" in out
