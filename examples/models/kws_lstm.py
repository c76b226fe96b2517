"""A keyword-spotting LSTM in plain PyTorch: one second of audio as 49 frames of 10 MFCCs, an
LSTM of 128 cells, and a linear layer over its last output to 12 classes (the ten Speech
Commands keywords, silence and unknown), the input and output sizes of the LSTM keyword spotters
of Zhang et al., "Hello Edge: Keyword Spotting on Microcontrollers" (arXiv:1711.07128, 2017);
the 128 cells are this example's choice.

    systolic-sim run configs/edge-tpu.yaml --torch examples/models/kws_lstm.py:make

``make()`` returns the module (seeded weights) and one example input (batch 1, 49 x 10).
"""

import torch
from torch import nn

FRAMES, MFCC, HIDDEN, CLASSES = 49, 10, 128, 12


class KwsLstm(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(MFCC, HIDDEN, batch_first=True)
        self.fc = nn.Linear(HIDDEN, CLASSES)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


def make():
    """Return the model (seeded weights) and an example input of shape (1, 49, 10)."""
    torch.manual_seed(0)
    return KwsLstm(), torch.randn(1, FRAMES, MFCC)
