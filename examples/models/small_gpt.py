"""A small GPT written in plain PyTorch, as a user would bring it (nanoGPT-style blocks).

    systolic-sim run configs/tpu-v4-mxu.yaml --torch examples/models/small_gpt.py:make
    systolic-sim run configs/tpu-v4-mxu.yaml --onnx small_gpt.onnx     # after export_onnx()

``make()`` returns the module and example token ids (batch 2, 64 tokens); ``export_onnx(path)``
writes the same model as an ONNX file with PyTorch's exporter.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

VOCAB, D, HEADS, LAYERS, CONTEXT = 512, 128, 4, 2, 64


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(D), nn.LayerNorm(D)
        self.qkv, self.proj = nn.Linear(D, 3 * D), nn.Linear(D, D)
        self.fc, self.out = nn.Linear(D, 4 * D), nn.Linear(4 * D, D)

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(D, dim=2)
        q, k, v = (z.view(b, t, HEADS, D // HEADS).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(D // HEADS)
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool, device=x.device), 1)
        att = F.softmax(att.masked_fill(mask, float("-inf")), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, D)
        x = x + self.proj(y)
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class SmallGPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok, self.pos = nn.Embedding(VOCAB, D), nn.Embedding(CONTEXT, D)
        self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))
        self.ln_f, self.head = nn.LayerNorm(D), nn.Linear(D, VOCAB, bias=False)

    def forward(self, ids):
        x = self.tok(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def make():
    """Return the model (seeded weights) and example token ids (2, 64)."""
    torch.manual_seed(0)
    return SmallGPT(), torch.randint(0, VOCAB, (2, CONTEXT))


def export_onnx(path):
    """Write the model to ``path`` as ONNX (PyTorch's dynamo exporter); return the path."""
    model, ids = make()
    torch.onnx.export(model.eval(), (ids,), str(path), dynamo=True)
    return path
