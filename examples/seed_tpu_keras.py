"""The seed's TPU example in Keras, and the same training on a simulated TPU.

The seed defines ``AIModel`` as one ``Dense(10, activation='relu')`` and trains it with mean
squared error and SGD(0.01) for 100 steps, but its loop calls PyTorch methods on Keras objects
(``optimizer.zero_grad()``, ``loss.backward()``, ``optimizer.step()``), which Keras objects do
not have. What changed here: the Keras loop is the Keras way of one SGD step, the loss computed
under a ``tf.GradientTape``, its gradients taken with ``tape.gradient`` and applied with
``optimizer.apply_gradients`` (Keras has no separate zero_grad: a tape records one step only).

Then the same network (``asic.Linear`` + ``asic.ReLU``, Keras' kernel layout (in, out) is the
chip's) starts from the Keras model's initial weights and trains on the simulated TPU v4 MXU
(``configs/tpu-v4-mxu.yaml`` in fp32) with ``asic.MSELoss`` and ``asic.SGD(lr=0.01)`` on the
same data: every step's loss must equal Keras' to 1e-5 relative (asserted), and the chip's
report (cycles, time, energy per step) is printed.

    .venv/bin/python examples/seed_tpu_keras.py          # needs the [keras] extra (TensorFlow)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STEPS = 100
LR = 0.01
FEATURES = 8  # the seed does not say; any width works
BATCH = 64
TOLERANCE = 1e-5


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return (inputs (BATCH, FEATURES), targets (BATCH, 10)), float32: a seeded regression
    problem a ReLU layer can fit."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH, FEATURES)).astype(np.float32)
    w = rng.standard_normal((FEATURES, 10)).astype(np.float32)
    return x, np.maximum(x @ w, 0).astype(np.float32)


def train_keras(x: np.ndarray, y: np.ndarray) -> tuple[list[float], np.ndarray, np.ndarray]:
    """Return (Keras' loss before each step, initial kernel (in, 10), initial bias (10,))."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # plain fp32 kernels, no reordering
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)

    class AIModel(keras.Model):  # the seed's model
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(10, activation="relu")

        def call(self, inputs):
            return self.dense(inputs)

    model = AIModel()
    model(x[:1])  # build the weights
    kernel0 = model.dense.kernel.numpy().copy()
    bias0 = model.dense.bias.numpy().copy()
    criterion = keras.losses.MeanSquaredError()
    optimizer = keras.optimizers.SGD(learning_rate=LR)
    losses = []
    xt, yt = tf.constant(x), tf.constant(y)
    for _ in range(STEPS):
        # the seed's optimizer.zero_grad() / loss.backward() / optimizer.step(), in Keras:
        with tf.GradientTape() as tape:
            loss = criterion(yt, model(xt))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        losses.append(float(loss))
    return losses, kernel0, bias0


def train_chip(x: np.ndarray, y: np.ndarray, kernel0: np.ndarray, bias0: np.ndarray,
               config: Path) -> tuple[list[float], object]:
    """Return (the chip's loss before each step, the session report) of the same training on
    the simulated chip."""
    sys.path.insert(0, str(ROOT))
    import simulator.nn as asic

    asic.use_chip(config, overrides={"dtype": "fp32"})

    class AIModel(asic.Model):
        def __init__(self):
            super().__init__()
            self.linear = asic.Linear(FEATURES, 10)
            self.act = asic.ReLU()

        def forward(self, inputs):
            return self.act(self.linear(inputs))

    model = AIModel()
    model.linear.weight = asic.Parameter(kernel0)
    model.linear.bias = asic.Parameter(bias0.reshape(1, 10))
    criterion = asic.MSELoss()
    optimizer = asic.SGD(model.parameters(), lr=LR)
    losses = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, asic.report()


def main(config: Path = ROOT / "configs" / "tpu-v4-mxu.yaml") -> float:
    """Train both, assert the losses agree to TOLERANCE, print the chip's report; return the
    largest relative loss difference."""
    x, y = data()
    keras_losses, kernel0, bias0 = train_keras(x, y)
    chip_losses, report = train_chip(x, y, kernel0, bias0, config)
    k, c = np.array(keras_losses), np.array(chip_losses)
    worst = float(np.max(np.abs(c - k) / np.maximum(np.abs(k), 1e-30)))
    print(f"Keras loss {k[0]:.6g} -> {k[-1]:.6g}; chip loss {c[0]:.6g} -> {c[-1]:.6g}; "
          f"largest relative difference over {STEPS} steps {worst:.2e} (tolerance {TOLERANCE:g})")
    assert worst <= TOLERANCE, f"losses differ by {worst:.3g} relative"
    assert k[-1] < k[0], "training did not lower the loss"
    print(report)
    return worst


if __name__ == "__main__":
    main()
