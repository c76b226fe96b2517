"""YAML chip configs -> validated nested dicts; the only module that knows YAML.

A config is checked against ``SCHEMA``, a flat table of every key the simulator understands, with
its type, default, unit and meaning. Every problem is reported as one line,
``FILE:LINE: dotted.key: message``, by raising :class:`simulator.errors.ConfigError`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..errors import ConfigError
from ..io_limits import read_user_file

__all__ = ["FORMATS", "Field", "SCHEMA", "flatten", "load_config", "parse_override", "schema_markdown", "validate_config"]


@dataclass(frozen=True)
class Field:
    """One config key: its dotted path, kind, default, unit and the constraint on its value."""

    path: str
    kind: str  # "int" | "float" | "bool" | "str" | "choice"
    default: Any
    unit: str
    doc: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None  # inclusive
    maximum: float | None = None  # inclusive
    positive: bool = False  # strictly > 0

    def describe_constraint(self) -> str:
        """Return the constraint in words, as used in error messages ("a positive integer")."""
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        noun = {"int": "integer", "float": "finite number", "bool": "boolean (true or false)",
                "str": "string"}[self.kind]
        if self.positive and self.maximum is not None:
            return f"a positive {noun} <= {_fmt(self.maximum)}"
        if self.positive:
            return f"a positive {noun}"
        if self.minimum is not None and self.maximum is not None:
            return f"an {noun} in [{_fmt(self.minimum)}, {_fmt(self.maximum)}]" if self.kind == "int" \
                else f"a {noun} in [{_fmt(self.minimum)}, {_fmt(self.maximum)}]"
        if self.minimum is not None:
            return ("an " if noun[0] in "aeiou" else "a ") + f"{noun} >= {_fmt(self.minimum)}"
        return ("an " if noun[0] in "aeiou" else "a ") + noun


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


# Number formats of the array's operands (dtype, precision.*), narrowest first within a family.
FORMATS = ("int8", "int4", "fp8_e4m3", "fp8_e5m2", "fp16", "bf16", "fp32")

# Largest array side we accept: far beyond any built chip, small enough that the PE-level
# reference's register arrays stay allocatable.
MAX_ARRAY_SIDE = 65536

SCHEMA: tuple[Field, ...] = (
    Field("name", "str", "chip", "-", "Chip name, echoed in reports."),
    Field("source", "str", "", "-", "Where the chip's numbers come from (paper, datasheet)."),
    Field("clock_hz", "float", 1.0e9, "Hz", "Clock of the array; converts cycles to seconds.",
          positive=True, maximum=1e13),
    Field("dtype", "choice", "int8", "-",
          "Input data type of both operands (and the default of precision.*). int8 and int4 "
          "(values in [-8, 7], two per byte in memory) accumulate in int32 (see "
          "accumulator_bits); fp8_e4m3 and fp8_e5m2 (ml_dtypes float8_e4m3fn and float8_e5m2), "
          "fp16, bf16 and fp32 accumulate in fp32.", choices=FORMATS),
    Field("overflow", "choice", "wrap", "-",
          "int8/int4 only: integer overflow policy of every add (PE and accumulator): "
          "two's-complement wrap-around or saturation.", choices=("wrap", "saturate")),
    Field("accumulator_bits", "int", 32, "bits",
          "int8/int4 only: width of the partial sums and accumulators (Gemmini's accType).",
          minimum=16, maximum=32),
    *[Field(f"precision.{cls}", "choice", "dtype", "-",
            f"Number format of {what}: dtype (the chip's dtype) or a format. It sets the bytes "
            f"they move and occupy (int4: ceil(elements / 2) bytes); weights and activations "
            f"together set the format the MACs run in (the wider of the two, weights converted "
            f"to it), hence the MAC rate (array.macs_per_pe_cycle) and MAC energy.",
            choices=("dtype", *FORMATS))
      for cls, what in (("weights", "weights: B operands that are parameters (a network's "
                                    "weights, an LLM's projection matrices)"),
                        ("activations", "activations: A operands and the network's other "
                                        "tensors"),
                        ("kv_cache", "the KV cache (systolic-sim llm: its bytes in memory and "
                                     "the attention matmuls' K and V operands)"))],
    *[Field(f"array.macs_per_pe_cycle.{fmt}", "int", 1, "MACs/PE/cycle",
            f"MACs one PE completes per cycle on {fmt} operands (the MAC rate of that format; "
            f"e.g. 2 for FP8 on H100, whose dense FP8 peak is twice its BF16 peak). A rate r is "
            f"modelled as the rate-1 array clocked r times faster against the same buffers and "
            f"DRAM: every array cycle count divides by r (docs/numerics.md).",
            positive=True, maximum=64)
      for fmt in FORMATS],
    Field("output.dtype", "choice", "accumulator", "-",
          "Number format results leave the array in (written to the buffer and DRAM, read by "
          "the next op): accumulator keeps the 4-byte accumulators (int32 or fp32); input is "
          "the chip's dtype (so it follows --set dtype=...); int8 "
          "requantises int32 accumulators (int8 chips: multiply by output.scale, round half to "
          "even, saturate to [-128, 127]); bf16/fp16 round fp32 accumulators to nearest even "
          "(float chips); fp32 on a float chip is the accumulator. A narrowing costs a "
          "requantisation pass on the vector unit after the array op. Partial sums that leave "
          "for accumulation across K tiles stay in accumulator precision.",
          choices=("accumulator", "input", "int8", "bf16", "fp16", "fp32")),
    Field("output.scale", "float", 0.0078125, "-",
          "int8 outputs: the multiplier applied to each int32 accumulator before rounding "
          "(s_a x s_b / s_out of the quantised layer); a program's matmul or conv2d may give "
          "its own (out_scale). The default 2**-7 is an assumption (values only; it changes "
          "no timing, traffic or energy).", positive=True, maximum=1e30),
    Field("array.rows", "int", 128, "PEs", "Rows R of processing elements.", positive=True,
          maximum=MAX_ARRAY_SIDE),
    Field("array.cols", "int", 128, "PEs", "Columns C of processing elements.", positive=True,
          maximum=MAX_ARRAY_SIDE),
    Field("array.dataflow", "choice", "ws", "-",
          "What stays in the PEs: os (outputs), ws (weights, B), is (inputs, A).",
          choices=("os", "ws", "is")),
    Field("array.fill_drain", "choice", "full", "-",
          "full: a partial fold pays skew for all R rows and C columns (SCALE-Sim); active: only "
          "for the rows and columns it uses.", choices=("full", "active")),
    Field("array.preload_overlap", "bool", True, "-",
          "ws/is: load the next fold's stationary operand while the current fold streams "
          "(double-buffered weight registers); the first fold always pays the load."),
    Field("array.fold_pipelining", "bool", False, "-",
          "Consecutive folds of an op overlap: the next fold's first row enters the cycle after "
          "the current fold's last, stationary registers switch as the wavefront passes, and "
          "fill and drain are paid once per run of same-shape folds (docs/dataflow.md). false "
          "is SCALE-Sim's per-fold behaviour."),
    Field("array.count", "int", 1, "arrays",
          "Identical arrays working on one op in parallel; they share the buffers and DRAM.",
          positive=True, maximum=4096),
    Field("array.split", "choice", "auto", "-",
          "How several arrays share an op: m (rows of O), n (columns of O), auto (the faster of "
          "the two), or tiles (O cut into split_tile_m x split_tile_n tiles dealt round-robin to "
          "the arrays, so the op runs in waves, as thread blocks on GPU SMs).",
          choices=("auto", "m", "n", "tiles")),
    Field("array.split_tile_m", "int", 128, "elements",
          "array.split tiles: rows of O per tile.", positive=True, maximum=1 << 20),
    Field("array.split_tile_n", "int", 128, "elements",
          "array.split tiles: columns of O per tile.", positive=True, maximum=1 << 20),
    Field("array.batch_placement", "choice", "auto", "-",
          "How an op's independent GEMMs (a batched matmul's batch x heads, a grouped conv's "
          "groups) go onto several arrays: whole (each array runs whole GEMMs, in rounds of "
          "array.count), split (each GEMM split over all arrays by array.split, one after "
          "another), or auto (the fastest of whole, split and mixes: groups of arrays sharing "
          "one GEMM). One array: no effect.", choices=("auto", "whole", "split")),
    Field("array.depthwise", "choice", "per_channel", "-",
          "How a grouped convolution maps: per_channel (one GEMM per group), packed (several "
          "groups at once as block-diagonal weights, the zeros streamed and counted as MACs), "
          "or vector (depthwise convolutions, one input channel per group, run on the vector "
          "unit; other grouped convolutions stay per group).",
          choices=("per_channel", "packed", "vector")),
    Field("overhead.launch_s", "float", 0.0, "s",
          "Fixed time added to every op (kernel launch, dispatch); 0 for a bare array.",
          minimum=0.0, maximum=1.0),
    Field("vector.lanes", "int", 128, "lanes",
          "SIMD lanes of the vector unit (elementwise ops, reductions); an assumed default.",
          positive=True, maximum=1 << 20),
    Field("vector.latency_cycles", "int", 4, "cycles",
          "Pipeline latency of the vector unit; an op over n elements costs "
          "ceil(n / lanes) * interval + latency - 1 cycles.", positive=True, maximum=1 << 20),
    Field("vector.output_dtype", "choice", "fp32", "-",
          "Format the vector unit stores its results in (the buffer and DRAM bytes of every "
          "tensor a vector op writes, and the bytes the next op reads): fp32 keeps the lanes' "
          "float32; bf16 or fp16 round each result to nearest even as it is stored (values "
          "change accordingly; the conversion is part of the store, no extra lane-ops); "
          "activations follows precision.activations where that is bf16, fp16 or fp32 and "
          "stores fp16 for 8- and 4-bit activations (their integer or fp8 forms would need a "
          "quantisation scale the model does not carry). Index-valued tensors (gather and "
          "scatter ids and what computes them, integer divisions) stay 4 bytes.",
          choices=("fp32", "bf16", "fp16", "activations")),
    Field("vector.fuse_epilogues", "bool", False, "-",
          "Elementwise ops that finish an array op's results (bias, activation, residual add, "
          "inference batch norm, a scale) run as its epilogue, as GEMM libraries and ML "
          "compilers fuse them: the intermediate results are never stored (no buffer space, "
          "no DRAM bytes), the vector unit works beside the array and the fused ops pay no "
          "launch overhead. An op fuses when it alone reads the array op's result, keeps its "
          "shape and its other inputs exist before the array op starts (docs/memory.md). "
          "Values are unchanged."),
    Field("vector.interval.add", "int", 1, "cycles",
          "Issue interval of add/sub/mul/fma lane-ops.", positive=True, maximum=1 << 20),
    Field("vector.interval.compare", "int", 1, "cycles",
          "Issue interval of compare/max/relu lane-ops.", positive=True, maximum=1 << 20),
    Field("vector.interval.transcendental", "int", 4, "cycles",
          "Issue interval of exp-like lane-ops.", positive=True, maximum=1 << 20),
    Field("vector.interval.reduction", "int", 1, "cycles",
          "Issue interval of reduction passes; a reduction also adds its tree depth.",
          positive=True, maximum=1 << 20),
    Field("vector.interval.divide", "int", 4, "cycles",
          "Issue interval of divide/sqrt/rsqrt lane-ops. Assumption: a quarter of the add rate "
          "(iterative dividers); no published figure for a TPU-like vector unit.",
          positive=True, maximum=1 << 20),
    Field("vector.interval.move", "int", 1, "cycles",
          "Issue interval of data-movement lane-ops (gather, concat, a permute or slice that "
          "moves data, im2col/col2im): one element read and written per lane. Assumption.",
          positive=True, maximum=1 << 20),
    Field("buffers.unified", "bool", False, "-",
          "One unified buffer holds A, B and O tiles (buffers.unified_buffer) instead of three "
          "separate ones (buffers.a, buffers.b, buffers.o)."),
    Field("buffers.residency", "bool", True, "-",
          "Programs keep each tensor in the on-chip buffer (unified_buffer, or a + b + o) from the "
          "op that defines it to its last use while it fits; what does not fit spills to DRAM, "
          "weights and inputs load once, outputs are written once. false: every matmul reads "
          "its operands from DRAM and writes its result back, vector ops touch no DRAM (the "
          "earlier model). Single GEMMs and topologies give the same result either way."),
    Field("buffers.double_buffered", "bool", True, "-",
          "Each buffer holds two tiles: the next tile loads while the current one computes, so "
          "a tile may use only half of it."),
    *[f for name, what in (("a", "A (input/ifmap) operand"), ("b", "B (weight/filter) operand"),
                           ("o", "O (4-byte accumulator)"), ("unified_buffer", "unified"))
      for f in (
          Field(f"buffers.{name}.bytes", "int", 0, "bytes",
                f"Capacity of the {what} buffer; 0 = unbounded (no tiling).", minimum=0,
                maximum=1 << 50),
          Field(f"buffers.{name}.port_bytes_per_cycle", "float", 0.0, "bytes/cycle",
                f"Read bandwidth from the {what} buffer into the array; 0 = unbounded.",
                minimum=0.0, maximum=1e12))],
    Field("dram.bandwidth_bytes_per_s", "float", 0.0, "bytes/s",
          "Off-chip bandwidth shared by all arrays; 0 = ideal memory (no transfer time).",
          minimum=0.0, maximum=1e16),
    Field("dram.latency_cycles", "int", 0, "cycles",
          "Latency added to each tile transfer (ignored with ideal memory).", minimum=0,
          maximum=1 << 30),
    Field("dram.ports", "choice", "shared", "-",
          "shared: one port carries every transfer (A, B, O read-back, O write-back) one after "
          "another at dram.bandwidth_bytes_per_s; per_operand: A, B and O each have their own "
          "port (dram.a/b/o.bandwidth_bytes_per_s) and transfer at the same time, as SCALE-Sim's "
          "separate ifmap, filter and ofmap DRAM interfaces.", choices=("shared", "per_operand")),
    *[Field(f"dram.{name}.bandwidth_bytes_per_s", "float", 0.0, "bytes/s",
            f"dram.ports per_operand only: bandwidth of the {what} port; 0 = "
            f"dram.bandwidth_bytes_per_s.", minimum=0.0, maximum=1e16)
      for name, what in (("a", "A (input/ifmap) read"), ("b", "B (weight/filter) read"),
                         ("o", "O (accumulator read-back and write-back)"))],
    Field("dram.capacity_bytes", "int", 0, "bytes",
          "Device memory (HBM) capacity: weights and KV cache must fit in it (systolic-sim llm); "
          "0 = unbounded.", minimum=0, maximum=1 << 50),
    Field("system.chips", "int", 1, "chips",
          "Chips in the system (systolic-sim llm): tensor x pipeline (x data) parallel groups "
          "must fit in it.", positive=True, maximum=1 << 20),
    Field("system.topology", "choice", "switch", "-",
          "Interconnect: ring, torus2d, torus3d (wrap-around links in every dimension) or switch "
          "(every chip one hop from every other).",
          choices=("ring", "torus2d", "torus3d", "switch")),
    Field("system.torus_dims", "str", "", "chips",
          "Torus shape as AxB or AxBxC (product = system.chips); empty = the most even "
          "factorisation."),
    Field("system.link_bandwidth_bytes_per_s", "float", 0.0, "bytes/s",
          "Bandwidth of one inter-chip link, one direction; 0 = no interconnect (one chip only).",
          minimum=0.0, maximum=1e15),
    Field("system.link_latency_s", "float", 0.0, "s",
          "Latency of one message over one link (the alpha of the alpha-beta model).",
          minimum=0.0, maximum=1.0),
    Field("system.links_per_chip", "int", 1, "links",
          "Inter-chip links of one chip; ring and switch collectives drive all of them, a torus "
          "splits them evenly over its dimensions.", positive=True, maximum=1024),
    Field("system.source", "str", "", "-", "Where the system's numbers come from."),
    Field("memory.conv_lowering", "choice", "memory", "-",
          "Where a convolution's im2col matrix comes from. memory: it is built in DRAM and read "
          "like any GEMM operand (every input pixel once per filter tap it meets; SCALE-Sim's "
          "model). feeder: DRAM and the A buffer hold the input feature map and the feeder's "
          "address generation expands the windows on chip, so an A tile loads (and occupies) "
          "only the input elements its windows touch, halos included (docs/conv-traffic.md). "
          "Compute cycles and values are the same for a given tiling.",
          choices=("memory", "feeder")),
    Field("tiling.loop_order", "choice", "auto", "-",
          "Order of the tile loops, outermost first (mnk: k innermost); auto picks the order "
          "with the least DRAM traffic.", choices=("auto", "mnk", "mkn", "nmk", "nkm", "kmn", "knm")),
    Field("tiling.tile_m", "int", 0, "elements", "Rows of O per tile; 0 = chosen to fit.",
          minimum=0, maximum=1 << 20),
    Field("tiling.tile_n", "int", 0, "elements", "Columns of O per tile; 0 = chosen to fit.",
          minimum=0, maximum=1 << 20),
    Field("tiling.tile_k", "int", 0, "elements", "Reduction depth per tile; 0 = chosen to fit.",
          minimum=0, maximum=1 << 20),
    Field("tiling.objective", "choice", "time", "-",
          "What the chosen tiling minimises: time (total cycles with memory stalls; ties: less "
          "DRAM traffic) or compute (array cycles first, as SCALE-Sim, whose compute ignores "
          "the SRAMs and whose memory only adds stalls; then total cycles). import-scalesim "
          "writes compute.", choices=("time", "compute")),
    *[f for name, unit, default, src, what in (
        ("mac_int8", "pj", 0.3, "Horowitz ISSCC 2014, 45 nm: 8-bit mult 0.2 + 32-bit add 0.1",
         "one int8 MAC with int32 accumulation"),
        ("mac_int4", "pj", 0.15, "assumed: half the int8 MAC (Horowitz ISSCC 2014, 45 nm: "
         "8-bit mult 0.2 + 32-bit add 0.1; a 4-bit multiplier is about a quarter of an 8-bit "
         "one, the int32 add unchanged: 0.05 + 0.1)", "one int4 MAC with int32 accumulation"),
        ("mac_fp8_e4m3", "pj", 1.1, "assumed: Horowitz ISSCC 2014 lists no FP8; an fp8 "
         "multiply (3- or 4-bit significands) taken as the 8-bit integer multiply 0.2, plus the "
         "fp32 add 0.9", "one fp8_e4m3 MAC with fp32 accumulation"),
        ("mac_fp8_e5m2", "pj", 1.1, "assumed: as mac_fp8_e4m3 (no published per-format figure)",
         "one fp8_e5m2 MAC with fp32 accumulation"),
        ("mac_fp16", "pj", 2.0, "Horowitz ISSCC 2014, 45 nm: fp16 mult 1.1 + fp32 add 0.9",
         "one fp16 MAC with fp32 accumulation"),
        ("mac_bf16", "pj", 2.0, "taken as fp16 (Horowitz ISSCC 2014 lists no bf16): 1.1 + 0.9",
         "one bf16 MAC with fp32 accumulation"),
        ("mac_fp32", "pj", 4.6, "Horowitz ISSCC 2014, 45 nm: fp32 mult 3.7 + fp32 add 0.9",
         "one fp32 MAC"),
        ("pe_hop", "pj_per_byte", 0.6,
         "Eyeriss (Chen et al., ISCA 2016) PE-to-PE = 2x a MAC (unverified) x 0.3 pJ int8 MAC",
         "moving one byte of an operand or partial sum to the neighbouring PE"),
        ("register_read", "pj_per_byte", 0.15,
         "Eyeriss (Chen et al., ISCA 2016) register file access = 1x a MAC per 16-bit word "
         "(unverified): 0.3 pJ int8 MAC / 2 bytes", "reading one byte of a PE register "
         "(stationary operand, moving operand or partial sum) for a MAC"),
        ("register_write", "pj_per_byte", 0.15,
         "assumed equal to a read (Eyeriss, Chen et al., ISCA 2016: 1x a MAC per 16-bit word)",
         "writing one byte into a PE register (an operand latched, a partial sum updated)"),
        ("buffer_read", "pj_per_byte", 1.25, "Horowitz ISSCC 2014: 8 KB SRAM, 64-bit read ~10 pJ",
         "reading one byte from an on-chip buffer"),
        ("buffer_write", "pj_per_byte", 1.25, "assumed equal to a read (Horowitz ISSCC 2014)",
         "writing one byte into an on-chip buffer"),
        ("dram", "pj_per_byte", 162.5, "Horowitz ISSCC 2014: DRAM 64-bit access 1300 pJ (low end)",
         "one byte moved to or from DRAM"),
        ("vector_lane_op", "pj", 0.9, "Horowitz ISSCC 2014, 45 nm: fp32 add 0.9",
         "one lane-op of the vector unit"),
        ("static", "watts", 0.0, "not modelled", "static (leakage and idle) power"))
      for f in (
          Field(f"energy.{name}.{unit}", "float", default,
                {"pj": "pJ", "pj_per_byte": "pJ/byte", "watts": "W"}[unit],
                f"Energy of {what}." if unit != "watts" else "Static power, charged for the whole "
                "run time.", minimum=0.0, maximum=1e9),
          Field(f"energy.{name}.source", "str", src, "-", f"Where energy.{name}.{unit} comes from."),
          # the node and voltage the entry was measured at (Horowitz 2014: 45 nm, 0.9 V); DRAM
          # and static power are properties of the device as built, not of a logic node
          Field(f"energy.{name}.node_nm", "float", 0.0 if name in ("dram", "static") else 45.0,
                "nm", f"Process node energy.{name}.{unit} was measured at; technology.node_nm "
                "scales it from there (0 = never scaled: off-chip or chip-level figures).",
                minimum=0.0, maximum=1000.0),
          Field(f"energy.{name}.voltage", "float", 0.0 if name in ("dram", "static") else 0.9,
                "V", f"Supply voltage energy.{name}.{unit} was measured at (0 = the node's "
                "nominal VDD, an assumed table).", minimum=0.0, maximum=5.0))],
    Field("energy.static.leakage_fraction", "float", 0.0, "-",
          "Adds static power such that leakage is this fraction of the total power with every "
          "PE doing a MAC each cycle: static += f / (1 - f) x PEs x MAC energy x clock (an "
          "assumption where no idle power is published).", minimum=0.0, maximum=0.95),
    Field("energy.sram.model", "choice", "auto", "-",
          "capacity: a buffer's pJ/byte is energy.buffer_read/write at energy.sram.ref_bytes "
          "scaled by (buffer bytes / ref_bytes) ** exponent; flat: the same pJ/byte for every "
          "buffer; auto: flat when the config gives energy.buffer_read or buffer_write "
          "pj_per_byte and no other energy.sram key (its own buffers' cost), else capacity "
          "(the shipped 8 KB reference). Unbounded buffers (bytes 0) get the reference value.",
          choices=("auto", "capacity", "flat")),
    Field("energy.sram.ref_bytes", "int", 8192, "bytes",
          "Capacity at which energy.buffer_read/write.pj_per_byte hold (Horowitz's 8 KB array).",
          positive=True, maximum=1 << 50),
    Field("energy.sram.exponent", "float", 0.4726, "-",
          "Power-law exponent of SRAM energy per access against capacity.", minimum=0.0,
          maximum=2.0),
    Field("energy.sram.source", "str", "power-law fit through Horowitz ISSCC 2014 45 nm SRAM "
          "reads: 8 KB 10 pJ, 32 KB 20 pJ, 1 MB 100 pJ per 64 bits (the last two unverified)",
          "-", "Where the SRAM capacity model comes from."),
    Field("sparsity.operand", "choice", "none", "-",
          "Which GEMM operand is sparse: a (input/ifmap), b (weights/filter), or none (dense).",
          choices=("none", "a", "b")),
    Field("sparsity.pattern", "choice", "nm", "-",
          "nm: N nonzeros in every M consecutive elements along K (NVIDIA 2:4, SCALE-Sim v3's "
          "N:M); unstructured: a fraction sparsity.density of nonzeros anywhere; block: whole "
          "blocks of sparsity.block elements along K kept or dropped, sparsity.density of them "
          "kept.", choices=("nm", "unstructured", "block")),
    Field("sparsity.n", "int", 2, "elements", "nm: nonzeros kept per group of M (N <= M).",
          positive=True, maximum=1 << 16),
    Field("sparsity.m", "int", 4, "elements", "nm: group length along K.", positive=True,
          maximum=1 << 16),
    Field("sparsity.density", "float", 1.0, "-",
          "unstructured/block: fraction of nonzero elements (blocks) in (0, 1].", positive=True,
          maximum=1.0),
    Field("sparsity.block", "int", 4, "elements", "block: block length along K.",
          positive=True, maximum=1 << 20),
    Field("sparsity.format", "choice", "dense", "-",
          "How the sparse operand is stored in the buffers and DRAM: dense (zeros stored), csr, "
          "csc (values + an index per value + 32-bit pointers), ellpack_block (SCALE-Sim v3: "
          "N slots per M-group + ceil(log2 M) index bits each) or nm (the same, NVIDIA-style).",
          choices=("dense", "csr", "csc", "ellpack_block", "nm")),
    Field("sparsity.action", "choice", "skip", "-",
          "What the array does with zeros: skip (K steps where every lane is zero are not "
          "streamed: cycles and energy saved), gate (zero MACs cost no energy, cycles as dense), "
          "none (computed like any value).", choices=("skip", "gate", "none")),
    Field("sparsity.source", "str", "", "-", "Where the sparsity figures come from."),
    Field("technology.node_nm", "float", 0.0, "nm",
          "Process node of the chip; every energy entry with a node is scaled to it with the "
          "Stillmaker & Baas (Integration 2017) energy fits, 7-180 nm (0 = no scaling: entries "
          "used as given).", minimum=0.0, maximum=1000.0),
    Field("technology.voltage", "float", 0.0, "V",
          "Supply voltage of the chip (0 = the node's nominal VDD, an assumed table).",
          minimum=0.0, maximum=5.0),
    Field("technology.flavor", "choice", "hp", "-",
          "Which Stillmaker & Baas fit to use below 65 nm: high-performance or low-power "
          "devices.", choices=("hp", "lp")),
    Field("technology.source", "str", "", "-", "Where the chip's node and voltage come from."),
    Field("area.die_mm2", "float", 0.0, "mm2",
          "The chip's real die area, from a public source (0 = not stated); run reports the "
          "modelled area's ratio to it (docs/area.md).", minimum=0.0, maximum=1e6),
    Field("area.control_io_share", "float", 0.12, "-",
          "Share of the die the area model adds for control and I/O, in [0, 0.9]; the default "
          "0.12 is TPU v1's I/O (10 %) plus control (2 %) share of its die (Jouppi et al., ISCA "
          "2017, Figure 2).",
          minimum=0.0, maximum=0.9),
    Field("area.source", "str", "", "-", "Where area.die_mm2 comes from."),
    Field("power.tdp_w", "float", 0.0, "W",
          "Thermal design power of the chip (0 = not stated). A run whose average power "
          "exceeds it says so in its report (text and JSON); the clock is not throttled.",
          minimum=0.0, maximum=1e6),
    Field("power.tdp_includes_dram", "bool", True, "-",
          "Whether power.tdp_w covers the DRAM's energy: true for memory in the package or on "
          "the board the TDP is stated for (HBM on a GPU module), false for DRAM chips outside "
          "the die the TDP is stated for (TPU v1's DDR3); then the TDP check leaves out energy.dram."),
    Field("power.source", "str", "", "-",
          "Where power.tdp_w comes from (datasheet or paper, with table or page)."),
)

_FIELDS: dict[str, Field] = {f.path: f for f in SCHEMA}
_SECTIONS: set[str] = {".".join(p.split(".")[:i]) for p in _FIELDS for i in range(1, p.count(".") + 1)}


# --------------------------------------------------------------------------- YAML with lines

class _AnchorFound(Exception):
    """A YAML anchor or alias at ``line`` (1-based); ``what`` is ``&name`` or ``*name``."""

    def __init__(self, line: int, what: str):
        super().__init__(what)
        self.line = line
        self.what = what


# A YAML file (chip config, model, sweep, explore spec) may hold at most this many nodes (keys,
# values, list items, mappings). PyYAML composes about 30,000 nodes a second (36 us a node on a
# loaded two-core machine: a 1 MiB file of 500,000 list items took 18 s and 400 MB), so the
# limit bounds parsing at about two seconds; the largest shipped file has under 2,000 nodes.
MAX_YAML_NODES = 1 << 16


class _TooManyNodes(Exception):
    """The node at ``line`` (1-based) is one more than MAX_YAML_NODES."""

    def __init__(self, line: int):
        super().__init__(line)
        self.line = line


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads YAML 1.2 floats such as ``700e6`` (PyYAML needs a dot),
    refuses anchors and aliases (chip configs and sweep files have no use for them, and nested
    aliases ``&a [*a, *a, ...]`` nine deep expand to billions of nodes), and stops at the node
    after the first MAX_YAML_NODES."""

    nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        """Compose the next node; raise _AnchorFound at the first anchor or alias and
        _TooManyNodes at the node over MAX_YAML_NODES."""
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _AnchorFound(event.start_mark.line + 1, f"*{event.anchor}")
        if getattr(event, "anchor", None) is not None:
            raise _AnchorFound(event.start_mark.line + 1, f"&{event.anchor}")
        self.nodes += 1
        if self.nodes > MAX_YAML_NODES:
            raise _TooManyNodes(event.start_mark.line + 1)
        return super().compose_node(parent, index)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                    |\.[0-9_]+(?:[eE][-+][0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def _to_python(node: yaml.Node, loader: _Loader, location: str, path: str,
               lines: dict[str, int]) -> Any:
    """Convert a composed YAML node to Python, recording the 1-based line of every dotted path."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                raise ConfigError(f"{location}:{line}", path or "(top level)",
                                  f"keys must be strings, got {key!r}")
            sub = f"{path}.{key}" if path else key
            if key in out:
                raise ConfigError(f"{location}:{line}", sub, "duplicate key")
            out[key] = _to_python(value_node, loader, location, sub, lines)
            lines[sub] = line
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(n, loader, location, f"{path}[{i}]", lines)
                for i, n in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _parse_yaml(text: str, location: str) -> tuple[Any, dict[str, int]]:
    """Parse YAML text; return (value, {dotted path: line}). Raises ConfigError on bad syntax."""
    loader = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        lines: dict[str, int] = {}
        value = None if node is None else _to_python(node, loader, location, "", lines)
    except _TooManyNodes as exc:
        raise ConfigError(f"{location}:{exc.line}", "", f"more than {MAX_YAML_NODES:,} YAML "
                          "nodes (keys, values, list items); no config, model or sweep needs "
                          "that many (an axis of many values is written {range: [start, stop, step]})"
                          ) from None
    except _AnchorFound as exc:
        raise ConfigError(f"{location}:{exc.line}", "", f"YAML anchors and aliases are not "
                          f"supported (found {exc.what}); write each value out") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = " ".join(str(exc.problem or exc.context or "invalid YAML").split())
        raise ConfigError(f"{location}:{line}", "", f"YAML syntax error: {problem}") from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        raise ConfigError(f"{location}:{line}", "", f"YAML syntax error: character "
                          f"#x{exc.character:04x} is not allowed") from None
    except yaml.YAMLError as exc:  # pragma: no cover - other unmarked errors are rare
        raise ConfigError(f"{location}:1", "", f"YAML error: {' '.join(str(exc).split())}") from None
    except ConfigError:
        raise
    except (ValueError, OverflowError, RecursionError) as exc:  # e.g. a timestamp out of range
        raise ConfigError(f"{location}:1", "", f"YAML value error: {' '.join(str(exc).split())[:120]}") from None
    finally:
        if loader is not None:
            loader.dispose()
    return value, lines


# --------------------------------------------------------------------------- validation

def _check_value(field: Field, value: Any, where: str) -> Any:
    """Return ``value`` converted to the field's kind, or raise ConfigError naming ``where``."""
    def bad() -> ConfigError:
        return ConfigError(where, field.path, f"must be {field.describe_constraint()}, got {value!r}")

    kind = field.kind
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad()
        return value
    if kind in ("str", "choice"):
        if not isinstance(value, str):
            raise bad()
        if kind == "choice" and value not in field.choices:
            raise bad()
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad()
    noun = "integer" if kind == "int" else "number"
    if kind == "int":
        if isinstance(value, float):
            if not (math.isfinite(value) and value.is_integer()):
                raise bad()
            value = int(value)
    else:
        try:
            value = float(value)
        except OverflowError:  # an integer beyond the float range
            raise bad() from None
        if not math.isfinite(value):
            raise bad()
    if field.positive and not value > 0:
        raise ConfigError(where, field.path, f"must be a positive {noun}, got {value!r}")
    if field.minimum is not None and value < field.minimum:
        raise ConfigError(where, field.path, f"must be >= {_fmt(field.minimum)}, got {value!r}")
    if field.maximum is not None and value > field.maximum:
        raise ConfigError(where, field.path, f"must be <= {_fmt(field.maximum)}, got {value!r}")
    return value


def _known_keys(section: str) -> list[str]:
    prefix = f"{section}." if section else ""
    keys = {p[len(prefix):].split(".", 1)[0] for p in list(_FIELDS) if p.startswith(prefix)}
    return sorted(keys)


def _flatten(data: Any, lines: Mapping[str, int], location: str, section: str,
             out: dict[str, tuple[Any, str]]) -> None:
    """Walk a parsed mapping, checking every key is known; collect {path: (value, where)}."""
    where = f"{location}:{lines.get(section, 1)}"
    if not isinstance(data, dict):
        raise ConfigError(where, section or "(top level)",
                          f"must be a mapping of keys to values, got {type(data).__name__}")
    for key, value in data.items():
        path = f"{section}.{key}" if section else key
        key_where = f"{location}:{lines.get(path, lines.get(section, 1))}"
        if path in _FIELDS:
            out[path] = (value, key_where)
        elif path in _SECTIONS:
            _flatten(value, lines, location, path, out)
        else:
            raise ConfigError(key_where, path,
                              f"unknown key (known here: {', '.join(_known_keys(section))})")


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Return a nested config as {dotted path: value} (the inverse of the nesting below)."""
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping):
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for path, value in flat.items():
        node = nested
        *parents, leaf = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return nested


def validate_config(data: Any, lines: Mapping[str, int], location: str,
                    overrides: Mapping[str, tuple[Any, str]] = (),
                    locations: dict[str, str] | None = None) -> dict[str, Any]:
    """Validate a parsed config plus overrides; return the complete nested config with defaults.

    ``overrides`` maps dotted paths to ``(value, where)``; they win over the file's values.
    Raises ConfigError (``FILE:LINE: key: message``) on the first problem found. When
    ``locations`` is given it receives, for every key set by the file or an override, where it
    was set (``FILE:LINE`` or the override), so later errors can point there too.
    """
    flat: dict[str, tuple[Any, str]] = {}
    _flatten({} if data is None else data, lines, location, "", flat)
    for path, (value, where) in dict(overrides).items():
        if path not in _FIELDS:
            raise ConfigError(where, path, f"unknown key (known: {', '.join(sorted(_FIELDS))})")
        flat[path] = (value, where)
    resolved = {}
    for field in SCHEMA:
        if field.path in flat:
            value, where = flat[field.path]
            resolved[field.path] = _check_value(field, value, where)
            if locations is not None:
                locations[field.path] = where
        else:
            resolved[field.path] = field.default
    resolved[SRAM_MODEL] = sram_model(resolved[SRAM_MODEL], set(flat))
    return _nest(resolved)


SRAM_MODEL = "energy.sram.model"
_SRAM_COSTS = ("energy.buffer_read.pj_per_byte", "energy.buffer_write.pj_per_byte")


def sram_model(model: str, given: set[str]) -> str:
    """Return the SRAM energy model a config means (capacity or flat): ``model`` unless it is
    ``auto``; then flat when the keys the config ``given`` (file or overrides) hold an SRAM
    cost (energy.buffer_read/write.pj_per_byte) and no energy.sram key besides the model, i.e.
    the config states its own buffers' cost, else capacity (the shipped 8 KB reference)."""
    if model != "auto":
        return model
    own_cost = any(k in given for k in _SRAM_COSTS)
    sram_keys = any(k.startswith("energy.sram.") and k != SRAM_MODEL for k in given)
    return "flat" if own_cost and not sram_keys else "capacity"


def parse_override(text: str) -> tuple[str, Any, str]:
    """Parse a command-line override ``dotted.path=VALUE``; return (path, value, where).

    The value is read as a YAML scalar, so ``8``, ``7.0e8``, ``ws`` and ``false`` get their
    natural types.
    """
    where = f"--set {text}"
    if "=" not in text:
        raise ConfigError(where, "", "expected PATH=VALUE, e.g. --set array.rows=8")
    path, raw = text.split("=", 1)
    path = path.strip()
    if not path:
        raise ConfigError(where, "", "expected PATH=VALUE, e.g. --set array.rows=8")
    value, _ = _parse_yaml(raw, where) if raw.strip() else (None, {})
    return path, value, where


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None,
                sources: Mapping[str, str] | None = None,
                locations: dict[str, str] | None = None) -> dict[str, Any]:
    """Read and validate a YAML chip config; return the complete nested config dict.

    ``overrides`` maps dotted paths to values (``{"array.rows": 8}``); ``sources`` optionally
    names where each came from (``--set array.rows=8``) for error messages. Command-line text
    goes through :func:`parse_override` first. Raises ConfigError.
    """
    location = str(path)
    text = read_user_file(path, ConfigError, "a YAML file", "config")
    data, lines = _parse_yaml(text, location)
    sources = sources or {}
    marked = {k: (v, sources.get(k, f"override {k}")) for k, v in (overrides or {}).items()}
    if locations is not None:
        locations[""] = f"{location}:1"  # the file itself, for keys left at their default
    return validate_config(data, lines, location, marked, locations)


def schema_markdown() -> str:
    """Return the documentation table of every config key (docs/config.md is this text)."""
    out = ["# Chip config keys", "",
           "Generated from `simulator.hardware.config.SCHEMA` (`systolic-sim keys > docs/config.md`).",
           "Every key is optional; the default applies when it is absent.", "",
           "| key | type | default | unit | meaning |", "|---|---|---|---|---|"]
    for f in SCHEMA:
        kind = f.describe_constraint()
        default = "`" + (repr(f.default) if not isinstance(f.default, bool) else
                         str(f.default).lower()) + "`"
        out.append(f"| `{f.path}` | {kind} | {default} | {f.unit} | {f.doc} |")
    return "\n".join(out) + "\n"
