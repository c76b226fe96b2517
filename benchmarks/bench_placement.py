"""Every array busy (docs/placement.md): the figures of the placement, depthwise and size work.

1. BERT-base, batch 32, seq 384, int8 on configs/h100.yaml: each layer's ``attn.qk`` and
   ``attn.pv`` and the whole model, with ``array.batch_placement: split`` (every GEMM split over
   the 132 arrays, one after another) and ``auto``, against the engine before placement
   (``BEFORE``). Targets: qk and pv >= 10x fewer cycles, the model >= 2.5x.
2. MobileNetV2 and EfficientNet-B0 (224 x 224, batch 1) on configs/edge-tpu.yaml under
   ``array.depthwise`` per_channel, packed and vector: the depthwise layers' mapping efficiency
   (busy PE-cycles over PEs x compute cycles, over all depthwise layers) and whole-model cycles.
   Target: packed >= 4x per_channel's depthwise mapping efficiency.
3. ResNet-50 on configs/h100.yaml at batch 256 and 1024 (GEMMs beyond 2^20 rows cut into
   pieces): wall time of build + run (target < 5 s at batch 256) and the peak RSS of the process.

    .venv/bin/python benchmarks/bench_placement.py [--skip-bert] [--skip-mobile] [--skip-resnet]
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

from simulator import load_chip
from simulator.core.engine import run
from simulator.core.grouped import is_depthwise
from simulator.core.program import Conv2d

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.kernels.zoo import build_zoo  # noqa: E402

CONFIGS = ROOT / "configs"
# BERT-base b32 s384 int8 on h100 with the engine before placement (commit 735ad83, `systolic-sim
# run configs/h100.yaml --model zoo:bert-base --batch 32 --seq 384 --set dtype=int8`): l0's
# attn.qk and attn.pv and the model, in cycles. The split placement above differs from it in
# one way: consecutive GEMMs of a double-buffered chip now overlap one's load with the other's
# compute (docs/placement.md).
BEFORE = (536_006, 784_838, 32_169_546)


def bert() -> None:
    # BEFORE was measured when int8 ran at the bf16 rate: compare like for like at rate 1, then
    # show the chip as shipped (the datasheet's int8 rate, 2 MACs per PE per cycle)
    base = load_chip(CONFIGS / "h100.yaml", overrides={"dtype": "int8"})
    shipped = run(base, build_zoo("zoo:bert-base", batch=32, seq=384).program).total_cycles
    print(f"BERT-base b32 s384 int8 h100 as shipped (int8 at {base.mac_rate_of('int8')} MACs per "
          f"PE per cycle): {shipped:,} cycles ({shipped / base.clock_hz * 1e3:.3f} ms)")
    chip = base.with_overrides({"array.macs_per_pe_cycle.int8": 1})
    prog = build_zoo("zoo:bert-base", batch=32, seq=384).program
    rows = {}
    # "split" and "placed, fp32 vector" store vector results in fp32 and fuse nothing, as the
    # engine before placement did; "placed, fp16 vector" stores them as h100.yaml does
    # (vector.output_dtype: activations, fp16 in an int8 run); "placed (auto)" is h100.yaml as
    # shipped (also vector.fuse_epilogues: true)
    fp32 = {"vector.output_dtype": "fp32", "vector.fuse_epilogues": False}
    for label, c in (("split", chip.with_overrides({"array.batch_placement": "split", **fp32})),
                     ("placed, fp32 vector", chip.with_overrides(fp32)),
                     ("placed, fp16 vector", chip.with_overrides({"vector.fuse_epilogues":
                                                                  False})),
                     ("placed (auto)", chip)):
        t0 = time.perf_counter()
        rep = run(c, prog)
        dt = time.perf_counter() - t0
        by = {o.name: o for o in rep.ops}
        rows[label] = (by["l0.attn.qk"], by["l0.attn.pv"], rep.total_cycles)
        print(f"BERT-base b32 s384 int8 h100 (int8 rate 1), {label:20s}: qk {by['l0.attn.qk'].total_cycles:>9,} "
              f"pv {by['l0.attn.pv'].total_cycles:>9,} model {rep.total_cycles:>12,} cycles "
              f"({rep.total_cycles / c.clock_hz * 1e3:.3f} ms)  [{dt:.2f} s to run]")
        if by["l0.attn.qk"].placement:
            print(f"    qk placement {dict(by['l0.attn.qk'].placement)}")
    (qk0, pv0, m0), (qk1, pv1, m1) = rows["split"], rows["placed (auto)"]
    m32, m16 = rows["placed, fp32 vector"][2], rows["placed, fp16 vector"][2]
    print(f"    placed vs split: qk {qk0.total_cycles / qk1.total_cycles:.1f}x, "
          f"pv {pv0.total_cycles / pv1.total_cycles:.1f}x, model {m0 / m32:.2f}x with fp32 "
          f"vector results, {m0 / m16:.2f}x with 16-bit ones, {m0 / m1:.2f}x with 16-bit ones "
          f"and fused epilogues")
    qk_b, pv_b, m_b = BEFORE
    print(f"    placed vs the engine before placement (commit 735ad83: qk {qk_b:,}, pv {pv_b:,}, "
          f"model {m_b:,}): qk {qk_b / qk1.total_cycles:.1f}x (target 10x), "
          f"pv {pv_b / pv1.total_cycles:.1f}x (target 10x), model {m_b / m1:.2f}x (target 2.5x)")


def mobile() -> None:
    for model in ("zoo:mobilenet-v2", "zoo:efficientnet-b0"):
        prog = build_zoo(model, batch=1, image=224).program
        dw = {op.name for op in prog.ops if isinstance(op, Conv2d) and is_depthwise(prog, op)}
        eff = {}
        for mapping in ("per_channel", "packed", "vector"):
            chip = load_chip(CONFIGS / "edge-tpu.yaml", overrides={"array.depthwise": mapping})
            t0 = time.perf_counter()
            rep = run(chip, prog)
            dt = time.perf_counter() - t0
            layers = [o for o in rep.ops if o.name in dw]
            busy = sum(o.busy_pe_cycles for o in layers)
            comp = sum(o.compute_cycles for o in layers)
            dw_cycles = sum(o.total_cycles for o in layers)
            eff[mapping] = busy / (chip.pes * comp) if mapping != "vector" else None
            e = f"{100 * eff[mapping]:6.2f} %" if eff[mapping] is not None else "  (vector)"
            print(f"{model:20s} edge-tpu {mapping:11s}: model {rep.total_cycles:>11,} cycles "
                  f"({rep.total_cycles / chip.clock_hz * 1e3:.3f} ms), {len(layers)} depthwise "
                  f"layers {dw_cycles:>10,} cycles, their mapping efficiency {e}  [{dt:.2f} s]")
        print(f"    packed / per_channel depthwise mapping efficiency: "
              f"{eff['packed'] / eff['per_channel']:.2f}x (target 4x)")


def resnet() -> None:
    chip = load_chip(CONFIGS / "h100.yaml")
    for batch in (256, 1024):
        t0 = time.perf_counter()
        prog = build_zoo("zoo:resnet50", batch=batch, image=224).program
        rep = run(chip, prog)
        dt = time.perf_counter() - t0
        cut = [o for o in rep.ops if o.placement and "pieces" in o.placement]
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"ResNet-50 b{batch} h100: {rep.total_cycles:,} cycles "
              f"({batch / (rep.total_cycles / chip.clock_hz):,.0f} images/s), {len(cut)} ops cut "
              f"into pieces, build + run {dt:.2f} s (target < 5 s at b256), peak RSS so far "
              f"{rss:,.0f} MiB")


def main() -> None:
    args = set(sys.argv[1:])
    if "--skip-bert" not in args:
        bert()
    if "--skip-mobile" not in args:
        mobile()
    if "--skip-resnet" not in args:
        resnet()


if __name__ == "__main__":
    main()
