"""BERT-Large with the SQuAD span head (MLPerf Inference BERT-99), in plain PyTorch.

    systolic-sim run configs/h100.yaml --set dtype=int8 \\
        --torch examples/models/bert_large.py:make --input 32x384 --input 32x384

The encoder is Hugging Face's ``BertModel`` (bert-large-uncased: 24 layers, hidden 1024, 16
heads, intermediate 4096, GELU in its erf form, post-LayerNorm with eps 1e-12, vocabulary
30522, 512 positions, 2 token types) written out as a user would, without the ``transformers``
package; the head is ``BertForQuestionAnswering``'s ``qa_outputs``, a Linear 1024 -> 2 whose
two columns are the start and end logits of the answer span. That is the model MLPerf
Inference's BERT-99 benchmark runs (SQuAD v1.1, sequences padded to 384 tokens). Like
``BertForQuestionAnswering`` it has no pooler. The parameters are named as in Hugging Face's
``BertForQuestionAnswering`` (``bert.encoder.layer.0.attention.self.query.weight``,
``qa_outputs.weight``, ...; not checked against a real checkpoint here). The weights are random
(uniform with std 0.02, Hugging Face's ``initializer_range``; biases too, LayerNorm scales
about 1): no download.

``forward(input_ids, token_type_ids, attention_mask=None)`` returns ``(start_logits,
end_logits)``, each (batch, seq). ``make()`` returns the full model and example inputs
(batch 1, 384 tokens: input ids and token-type ids); ``make_tiny()`` the same architecture
with 2 layers, hidden 64, 4 heads, intermediate 256 (for tests). With ``attention_mask``
(1 = token, 0 = padding) the scores get Hugging Face's additive mask (-10000 on padding); it
changes the values but not the work of a run padded to 384 tokens, so the factories leave it
out.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

LARGE = dict(layers=24, hidden=1024, heads=16, intermediate=4096, vocab=30522, positions=512,
             type_vocab=2, ln_eps=1e-12)
TINY = dict(LARGE, layers=2, hidden=64, heads=4, intermediate=256)


class BertEmbeddings(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        h = cfg["hidden"]
        self.word_embeddings = nn.Embedding(cfg["vocab"], h)
        self.position_embeddings = nn.Embedding(cfg["positions"], h)
        self.token_type_embeddings = nn.Embedding(cfg["type_vocab"], h)
        self.LayerNorm = nn.LayerNorm(h, eps=cfg["ln_eps"])

    def forward(self, input_ids, token_type_ids):
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = (self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
             + self.position_embeddings(pos))
        return self.LayerNorm(x)  # dropout: identity at inference


class BertSelfAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        h = cfg["hidden"]
        self.heads, self.head_dim = cfg["heads"], h // cfg["heads"]
        self.query, self.key, self.value = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)

    def split_heads(self, x):
        b, s, _ = x.shape
        return x.view(b, s, self.heads, self.head_dim).transpose(1, 2)  # (b, heads, s, dh)

    def forward(self, x, mask=None):
        q, k, v = (self.split_heads(f(x)) for f in (self.query, self.key, self.value))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        if mask is not None:
            scores = scores + mask
        ctx = F.softmax(scores, dim=-1) @ v
        b, _, s, _ = ctx.shape
        return ctx.transpose(1, 2).reshape(b, s, self.heads * self.head_dim)


class BertSelfOutput(nn.Module):
    def __init__(self, cfg, d_in):
        super().__init__()
        self.dense = nn.Linear(d_in, cfg["hidden"])
        self.LayerNorm = nn.LayerNorm(cfg["hidden"], eps=cfg["ln_eps"])

    def forward(self, x, residual):
        return self.LayerNorm(self.dense(x) + residual)  # post-LN


class BertAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.self = BertSelfAttention(cfg)
        self.output = BertSelfOutput(cfg, cfg["hidden"])

    def forward(self, x, mask=None):
        return self.output(self.self(x, mask), x)


class BertIntermediate(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.dense = nn.Linear(cfg["hidden"], cfg["intermediate"])

    def forward(self, x):
        return F.gelu(self.dense(x))  # the erf form, Hugging Face's "gelu"


class BertLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.attention = BertAttention(cfg)
        self.intermediate = BertIntermediate(cfg)
        self.output = BertSelfOutput(cfg, cfg["intermediate"])

    def forward(self, x, mask=None):
        x = self.attention(x, mask)
        return self.output(self.intermediate(x), x)


class BertEncoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(cfg) for _ in range(cfg["layers"]))

    def forward(self, x, mask=None):
        for layer in self.layer:
            x = layer(x, mask)
        return x


class BertModel(nn.Module):
    """Hugging Face's BertModel without the pooler (add_pooling_layer=False)."""

    def __init__(self, cfg):
        super().__init__()
        self.embeddings = BertEmbeddings(cfg)
        self.encoder = BertEncoder(cfg)

    def forward(self, input_ids, token_type_ids, attention_mask=None):
        mask = None
        if attention_mask is not None:  # (b, s) of 1/0 -> additive (b, 1, 1, s)
            mask = (1.0 - attention_mask[:, None, None, :].float()) * -10000.0
        return self.encoder(self.embeddings(input_ids, token_type_ids), mask)


class BertForQuestionAnswering(nn.Module):
    """BERT + the SQuAD span head: start and end logits per token."""

    def __init__(self, cfg=LARGE):
        super().__init__()
        self.cfg = dict(cfg)
        self.bert = BertModel(cfg)
        self.qa_outputs = nn.Linear(cfg["hidden"], 2)

    def forward(self, input_ids, token_type_ids, attention_mask=None):
        logits = self.qa_outputs(self.bert(input_ids, token_type_ids, attention_mask))
        start, end = logits.split(1, dim=-1)
        return start.squeeze(-1), end.squeeze(-1)


A = 0.02 * math.sqrt(3)  # uniform(-A, A) has std 0.02; three times cheaper to draw than normal


def _build(cfg, batch, seq, seed=0):
    torch.manual_seed(seed)
    with torch.device("meta"):  # shapes only: no default init to overwrite (334M parameters)
        model = BertForQuestionAnswering(cfg)
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for name, p in model.named_parameters():
            # std 0.02 (Hugging Face's initializer_range) about 0, LayerNorm scales about 1;
            # biases random too (not zero as Hugging Face's init) so that tests see them
            centre = 1.0 if name.endswith("LayerNorm.weight") else 0.0
            p.uniform_(centre - A, centre + A)
    ids = torch.randint(0, cfg["vocab"], (batch, seq))
    ids[0, 0] = cfg["vocab"] - 1  # --input draws ids from [0, max(example) + 1): the vocabulary
    types = torch.zeros(batch, seq, dtype=torch.long)
    types[:, seq // 2:] = 1  # question | context, as SQuAD's segment ids
    return model.eval(), (ids, types)


def make():
    """BERT-Large + span head (random weights) and example inputs: input ids and token-type
    ids, batch 1, 384 tokens (``--input BxS --input BxS`` sets other sizes)."""
    return _build(LARGE, 1, 384)


def make_tiny():
    """The same architecture, 2 layers, hidden 64, 4 heads, intermediate 256; batch 2, 32
    tokens."""
    return _build(TINY, 2, 32)
