"""simulator.llm.collectives and System: closed forms on hand-checked cases."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from llm_strategies import make_llm_chip
from simulator.errors import ConfigError
from simulator.llm import collectives as col
from simulator.llm.system import system_of

GB = 1e9


def test_ring_all_reduce_hand_checked():
    # 1 GB over 8 chips at 100 GB/s, 1 us: 2 * 7/8 * 10 ms + 14 us
    assert col.all_reduce_ring(GB, 8, 100 * GB, 1e-6) == pytest.approx(0.0175 + 14e-6, rel=1e-12)
    assert col.all_gather(GB, 8, 100 * GB, 1e-6) == pytest.approx(0.00875 + 7e-6, rel=1e-12)
    assert col.reduce_scatter(GB, 8, 100 * GB, 1e-6) == col.all_gather(GB, 8, 100 * GB, 1e-6)
    assert col.all_reduce_ring(GB, 1, 100 * GB, 1e-6) == 0.0


def test_tree_and_all_to_all_hand_checked():
    # binomial tree over 8 chips: 2 * 3 * (alpha + S/B) = 6 * (1 us + 10 ms)
    assert col.all_reduce_tree(GB, 8, 100 * GB, 1e-6) == pytest.approx(6 * (1e-6 + 0.01))
    # pairwise all-to-all of 1 GB per chip over 4: 3 alpha + 3/4 * 10 ms
    assert col.all_to_all(GB, 4, 100 * GB, 1e-6) == pytest.approx(3e-6 + 0.0075)
    # on a 16-chip ring each byte crosses 4 links: bandwidth term x 4
    assert col.all_to_all(GB, 16, 100 * GB, 0.0, 4.0) == pytest.approx(15 / 16 * 0.01 * 4)


def test_torus_all_reduce_hand_checked():
    # 4x4 torus, 50 GB/s per dimension: ring over 4 of 1 GB, then ring over 4 of 0.25 GB
    want = (2 * 3 / 4 * GB / 50e9 + 6e-6) + (2 * 3 / 4 * 0.25 * GB / 50e9 + 6e-6)
    assert col.torus_all_reduce(GB, (4, 4), 50e9, 1e-6) == pytest.approx(want, rel=1e-12)
    assert col.torus_all_gather(GB, (4, 4), 50e9, 1e-6) == pytest.approx(want / 2, rel=1e-12)


@given(size=st.floats(1, 1e12), n=st.integers(2, 4096), bw=st.floats(1e6, 1e13),
       alpha=st.floats(0, 1e-3))
def test_all_reduce_is_reduce_scatter_plus_all_gather(size, n, bw, alpha):
    ar = col.all_reduce_ring(size, n, bw, alpha)
    assert ar == pytest.approx(col.reduce_scatter(size, n, bw, alpha) + col.all_gather(size, n, bw, alpha))
    # the bandwidth term never beats moving 2 (n-1)/n of the data through one chip's links
    assert ar >= 2 * (n - 1) / n * size / bw * (1 - 1e-12)


def system(**kw):
    flat = {"system.link_bandwidth_bytes_per_s": 25e9, "system.link_latency_s": 1e-6}
    flat.update({f"system.{k}": v for k, v in kw.items()})
    return system_of(make_llm_chip(**flat))


def test_system_bandwidths_by_topology():
    sw = system(chips=8, topology="switch", links_per_chip=18)
    assert sw.chip_bandwidth == 18 * 25e9
    s = 100e6
    assert sw.all_reduce(s, 8) == pytest.approx(min(col.all_reduce_ring(s, 8, 450e9, 1e-6),
                                                    col.all_reduce_tree(s, 8, 450e9, 1e-6)))
    ring = system(chips=8, topology="ring", links_per_chip=2)
    assert ring.all_reduce(s, 8) == col.all_reduce_ring(s, 8, 50e9, 1e-6)
    assert ring.p2p(s) == pytest.approx(1e-6 + s / 25e9)
    torus = system(chips=64, topology="torus3d", links_per_chip=6)
    assert torus.dims == (4, 4, 4)
    assert torus.group_dims(8) == (4, 2)
    assert torus.group_dims(4, inner=8) == (2, 2)
    assert torus.all_reduce(s, 16) == col.torus_all_reduce(s, (4, 4), 50e9, 1e-6)


def test_torus_shape_errors_point_at_the_key(tmp_path):
    with pytest.raises(ConfigError, match="system.torus_dims: 4x4 holds 16 chips"):
        system(chips=8, topology="torus2d", torus_dims="4x4")
    with pytest.raises(ConfigError, match="does not tile"):
        system(chips=64, topology="torus3d").group_dims(6)
