"""A 2-layer LSTM of speech-model size as a Program, with its numpy twin.

Sizes (one small table): 80 log-mel features in, 1024 hidden units per layer, 2 layers, as the
recurrent stacks of speech recognisers (DeepSpeech 2 uses 1024-2560-wide recurrent layers,
Amodei et al., ICML 2016; 80 log-mel bins are the common front end). Gate order i, f, g, o and
the equations of torch.nn.LSTM:

    gates = x_t W_ih + h_{t-1} W_hh + b,   i, f, o = sigmoid(.), g = tanh(.)
    c_t = f * c_{t-1} + i * g,             h_t = o * tanh(c_t)

Per layer, the input projection of all time steps is one GEMM (M = batch x seq); each step's
recurrent matmul is a GEMM with M = batch; gate slices are free (offsets into the gate tensor).
h_0 = c_0 = 0, so the first step has no recurrent matmul. Output: the top layer's h for every
step, (batch, seq, hidden).
"""

from __future__ import annotations

import math

import numpy as np

from . import nnref as R
from .netbuild import Net

__all__ = ["LSTM_SPEECH", "build_lstm", "lstm_numpy"]

LSTM_SPEECH = {"input": 80, "hidden": 1024, "layers": 2}


def build_lstm(batch: int, seq: int, cfg: dict = LSTM_SPEECH) -> tuple[Net, str]:
    """Return (Net, output) of the LSTM stack; input x (batch, seq, input features)."""
    net = Net(f"lstm b{batch} s{seq}")
    p, hd = net.p, cfg["hidden"]
    x = net.input("x", (batch, seq, cfg["input"]))
    d_in = cfg["input"]
    bound = 1 / math.sqrt(hd)
    for layer in range(cfg["layers"]):
        n = f"lstm{layer}"
        w_ih = net.param(f"{n}.W_ih", (d_in, 4 * hd), ("uniform", -bound, bound))
        w_hh = net.param(f"{n}.W_hh", (hd, 4 * hd), ("uniform", -bound, bound))
        b = net.param(f"{n}.b", (4 * hd,), ("uniform", -bound, bound))
        xp = p.linear(f"{n}.in", x, w_ih, b, out=f"{n}.xp")
        h = c = None
        outs = []
        for t in range(seq):
            s = f"{n}.t{t}"
            g = p.slice(f"{s}.x", xp, 1, t, t + 1, out=f"{s}.xs")
            g = p.reshape(f"{s}.x2", g, (batch, 4 * hd), out=f"{s}.x2d")
            if h is not None:
                r = p.matmul(f"{s}.rec", h, w_hh, out=f"{s}.hw")
                g = p.elementwise(f"{s}.gates", "add", g, r, out=f"{s}.g")
            i_, f_, g_, o_ = p.split(f"{s}.split", g, [hd] * 4, axis=-1)
            i_ = p.elementwise(f"{s}.i", "sigmoid", i_, out=f"{s}.ig")
            g_ = p.elementwise(f"{s}.gg", "tanh", g_, out=f"{s}.gt")
            o_ = p.elementwise(f"{s}.o", "sigmoid", o_, out=f"{s}.og")
            ig = p.elementwise(f"{s}.ixg", "mul", i_, g_, out=f"{s}.ixg")
            if c is None:
                c = ig
            else:
                f_ = p.elementwise(f"{s}.f", "sigmoid", f_, out=f"{s}.fg")
                fc = p.elementwise(f"{s}.fxc", "mul", f_, c, out=f"{s}.fxc")
                c = p.elementwise(f"{s}.c", "add", fc, ig, out=f"{s}.c")
            tc = p.elementwise(f"{s}.tanh_c", "tanh", c, out=f"{s}.tc")
            h = p.elementwise(f"{s}.h", "mul", o_, tc, out=f"{s}.h")
            outs.append(p.reshape(f"{s}.h3", h, (batch, 1, hd), out=f"{s}.h3d"))
        x = outs[0] if seq == 1 else p.vector(f"{n}.stack", "concat", *outs, out=f"{n}.out",
                                              axis=1)
        d_in = hd
    return net, x


def lstm_numpy(w: dict, x: dict, mm, cfg: dict = LSTM_SPEECH) -> np.ndarray:
    """Return the top layer's hidden states in numpy float32 (the twin of build_lstm)."""
    hd = cfg["hidden"]
    seq_in = x["x"]
    for layer in range(cfg["layers"]):
        n = f"lstm{layer}"
        xp = mm(seq_in, w[f"{n}.W_ih"]) + w[f"{n}.b"]
        h = c = None
        outs = []
        for t in range(seq_in.shape[1]):
            g = xp[:, t]
            if h is not None:
                g = g + mm(h, w[f"{n}.W_hh"])
            i_, f_, g_, o_ = (g[:, j * hd:(j + 1) * hd] for j in range(4))
            ig = R.sigmoid(i_) * np.tanh(g_)
            c = ig if c is None else R.sigmoid(f_) * c + ig
            h = R.sigmoid(o_) * np.tanh(c)
            outs.append(h[:, None])
        seq_in = np.concatenate(outs, axis=1)
    return seq_in
