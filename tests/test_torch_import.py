"""The PyTorch importer (simulator.frontends.torch_import): the zoo's networks written in
PyTorch (tests/torch_zoo.py) against the zoo builders and against PyTorch itself."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch_zoo as TZ  # noqa: E402
from test_zoo import SMALL, rel  # noqa: E402
from simulator.kernels.zoo import build_zoo  # noqa: E402


def zoo_small(name, batch=2):
    m = build_zoo(f"zoo:{name}", batch=batch, **SMALL[name])
    return m, m.inputs(seed=3)


def torch_twin(name, m):
    """The nn.Module twin of zoo model ``m`` with the zoo's seeded parameters copied in."""
    mod = TZ.build_module(name, m.cfg_kw.get("cfg"), image=m.sizes.get("image"))
    return TZ.copy_zoo_params(mod, name, m.net.init_params(3))


@pytest.mark.parametrize("name", sorted(SMALL))
def test_torch_zoo_modules_equal_the_numpy_twins(name):
    m, vals = zoo_small(name)
    with torch.no_grad():
        got = torch_twin(name, m)(*TZ.torch_inputs(name, vals)).numpy()
    want = m.numpy(vals)
    assert got.shape == want.shape
    assert rel(got, want) < 1e-5
