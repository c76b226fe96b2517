"""Frozen dataclasses of the hardware, built from a validated config (see simulator.hardware.config)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from . import sram, technology
from .config import FORMATS, flatten, load_config, validate_config
from ..errors import ConfigError
from .sparsity import DENSE, Sparsity, sparsity_from_config

__all__ = ["Buffer", "Buffers", "Chip", "Dram", "EnergyTable", "SystolicArray", "Tiling", "VectorUnit",
           "chip_from_config", "load_chip", "INPUT_BYTES", "ACC_BYTES", "ELEMENT_BITS",
           "OUTPUT_BYTES", "INTEGER_FORMATS", "tensor_bytes"]

# Bits per element of each operand format (int4: two per byte in memory).
ELEMENT_BITS = {"int8": 8, "int4": 4, "fp8_e4m3": 8, "fp8_e5m2": 8, "fp16": 16, "bf16": 16,
                "fp32": 32}
assert set(ELEMENT_BITS) == set(FORMATS)
# Formats the array multiplies as integers (int32 accumulators, overflow policy).
INTEGER_FORMATS = ("int8", "int4")
# Bytes per element of each input type in the tile model (whole bytes: an int4 element counts
# 1 byte there, see Chip.input_bytes), and of the 32-bit accumulators (int32 or fp32).
INPUT_BYTES = {d: max(1, bits // 8) for d, bits in ELEMENT_BITS.items()}


def tensor_bytes(fmt: str, elements: float) -> float:
    """Return the bytes ``elements`` values of format ``fmt`` occupy: ceil(elements * bits / 8)
    (int4: ceil(elements / 2)); a fractional count (a mean) is scaled without rounding."""
    total = elements * ELEMENT_BITS[fmt]
    if float(elements).is_integer():
        return int(-(-int(total) // 8))
    return total / 8
ACC_BYTES = 4
# Bytes per element of each output type the array can write (output.dtype).
OUTPUT_BYTES = {"accumulator": ACC_BYTES, "int8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1, "bf16": 2,
                "fp16": 2, "fp32": 4}


@dataclass(frozen=True)
class SystolicArray:
    """An R x C grid of multiply-accumulate PEs and the knobs of its timing (DESIGN section 2)."""

    rows: int
    cols: int
    dataflow: str  # "os" | "ws" | "is"
    fill_drain: str  # "full" | "active"
    preload_overlap: bool
    count: int = 1  # identical arrays sharing one op
    split: str = "auto"  # "m" | "n" | "auto" | "tiles"
    split_tile_m: int = 128
    split_tile_n: int = 128
    batch_placement: str = "auto"  # "auto" | "whole" | "split" (simulator.core.placement)
    depthwise: str = "per_channel"  # "per_channel" | "packed" | "vector"
    fold_pipelining: bool = False  # consecutive folds overlap (DESIGN section 12)

    @property
    def overlap_code(self) -> int:
        """Return the fold-overlap knobs as the bit set the cycle model takes: 1
        preload_overlap, 2 fold_pipelining."""
        return int(bool(self.preload_overlap)) | (2 if self.fold_pipelining else 0)

    @property
    def pes(self) -> int:
        """Return the number of PEs of one array, R*C."""
        return self.rows * self.cols


@dataclass(frozen=True)
class VectorUnit:
    """The SIMD vector unit: lanes, pipeline latency, issue interval per op class (cycles)."""

    lanes: int
    latency_cycles: int
    interval: Mapping[str, int]  # "add" | "compare" | "transcendental" | "reduction"
    output_dtype: str = "fp32"  # vector.output_dtype: the format its results are stored in
    fuse_epilogues: bool = False  # vector.fuse_epilogues: elementwise ops finish array results


@dataclass(frozen=True)
class Buffer:
    """An on-chip SRAM buffer: capacity and read port into the array (0 = unbounded)."""

    bytes: int
    port_bytes_per_cycle: float

    @property
    def bounded(self) -> bool:
        """Return True when the buffer has a finite capacity."""
        return self.bytes > 0


@dataclass(frozen=True)
class Buffers:
    """The on-chip buffers: separate A/B/O buffers, or one unified buffer."""

    unified: bool
    double_buffered: bool
    a: Buffer
    b: Buffer
    o: Buffer
    unified_buffer: Buffer
    residency: bool = True  # programs keep tensors on chip while they fit (DESIGN s.8)

    @property
    def residency_bytes(self) -> int:
        """Return the capacity tensors may stay resident in: the unified buffer, or a + b + o
        for separate buffers (0 = unbounded)."""
        if self.unified:
            return self.unified_buffer.bytes
        sizes = (self.a.bytes, self.b.bytes, self.o.bytes)
        return 0 if 0 in sizes else sum(sizes)

    @property
    def bounded(self) -> bool:
        """Return True when some buffer is finite, so that GEMMs may have to be tiled."""
        if self.unified:
            return self.unified_buffer.bounded
        return self.a.bounded or self.b.bounded or self.o.bounded


@dataclass(frozen=True)
class Dram:
    """Off-chip memory: bandwidth in bytes/s (0 = ideal), latency per transfer in cycles and
    capacity in bytes (0 = unbounded).

    ``ports`` "shared": one port at ``bandwidth_bytes_per_s`` carries every transfer;
    "per_operand": A, B and O have their own ports at ``port_bandwidth_bytes_per_s`` (A, B, O;
    0 = ideal), which transfer at the same time.
    """

    bandwidth_bytes_per_s: float
    latency_cycles: int
    capacity_bytes: int = 0  # device memory (HBM) capacity; 0 = unbounded
    ports: str = "shared"  # "shared" | "per_operand"
    port_bandwidth_bytes_per_s: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def per_operand(self) -> bool:
        """Return True when A, B and O have separate DRAM ports."""
        return self.ports == "per_operand"

    @property
    def ideal(self) -> bool:
        """Return True when transfers take no time (bandwidth 0 means unbounded)."""
        if self.per_operand:
            return all(bw <= 0 for bw in self.port_bandwidth_bytes_per_s)
        return self.bandwidth_bytes_per_s <= 0

    def bytes_per_cycle(self, clock_hz: float) -> tuple[float, float, float]:
        """Return the bandwidth of the A, B and O transfers in bytes per cycle (0 = ideal); with
        shared ports the three are the one port's."""
        bws = self.port_bandwidth_bytes_per_s if self.per_operand else \
            (self.bandwidth_bytes_per_s,) * 3
        return tuple(bw / clock_hz if bw > 0 else 0.0 for bw in bws)


@dataclass(frozen=True)
class Tiling:
    """Fixed tile sizes and loop order, where the config fixes them (0 / "auto" = choose)."""

    loop_order: str
    tile_m: int
    tile_n: int
    tile_k: int
    objective: str = "time"


@dataclass(frozen=True)
class EnergyTable:
    """Energy per event (pJ) and static power (W); ``sources`` names where each comes from."""

    mac_pj: Mapping[str, float]  # by input dtype
    pe_hop_pj_per_byte: float
    buffer_read_pj_per_byte: float
    buffer_write_pj_per_byte: float
    dram_pj_per_byte: float
    vector_lane_op_pj: float
    static_w: float
    sources: Mapping[str, str] = field(compare=False, hash=False)
    register_read_pj_per_byte: float = 0.0  # a PE register read (operand or partial sum)
    register_write_pj_per_byte: float = 0.0  # a PE register write (latch or partial sum)
    # pJ/byte (read, write) of each buffer ("a", "b", "o", "unified_buffer") after node scaling
    # and the SRAM capacity model
    buffer_pj_per_byte: Mapping[str, tuple[float, float]] = field(default_factory=dict,
                                                                   compare=False, hash=False)
    # the factor each entry was multiplied by for the chip's node, and the rule in words
    scale_factors: Mapping[str, float] = field(default_factory=dict, compare=False, hash=False)
    scaling: str = "none"

    def buffer_read_pj(self, name: str) -> float:
        """Return pJ per byte read from buffer ``name`` (a, b, o or unified_buffer)."""
        return self.buffer_pj_per_byte.get(name, (self.buffer_read_pj_per_byte,))[0]

    def buffer_write_pj(self, name: str) -> float:
        """Return pJ per byte written into buffer ``name`` (a, b, o or unified_buffer)."""
        return self.buffer_pj_per_byte.get(name, (0.0, self.buffer_write_pj_per_byte))[1]


@dataclass(frozen=True)
class Chip:
    """A whole chip: clock, number format and the systolic array."""

    name: str
    source: str
    clock_hz: float
    dtype: str  # one of config.FORMATS
    overflow: str  # "wrap" | "saturate" (int8/int4 only)
    accumulator_bits: int  # int8/int4 only
    array: SystolicArray
    vector: VectorUnit
    buffers: Buffers
    dram: Dram
    tiling: Tiling
    energy: EnergyTable
    launch_s: float  # fixed time per op
    config: Mapping[str, Any] = field(repr=False, compare=False, hash=False)
    # where each key was set ("FILE:LINE" or an override); keys left at their default are absent
    locations: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False,
                                         hash=False)
    sparsity: Sparsity = DENSE  # a sparse operand and what the array does with zeros
    output_dtype: str = "accumulator"  # what leaves the array (output.dtype)
    output_scale: float = 2.0 ** -7  # int8 outputs: multiplier of the int32 accumulator

    @property
    def output_bytes(self) -> int:
        """Return bytes per output element as it leaves the array (output.dtype)."""
        return OUTPUT_BYTES[self.output_dtype]

    @property
    def vector_store_dtype(self) -> str:
        """Return the format the vector unit stores its results in: vector.output_dtype, with
        ``activations`` resolved to the activations' format where that is bf16, fp16 or fp32
        and to fp16 for 8- and 4-bit activations (their integer or fp8 forms need a
        quantisation scale the model does not carry)."""
        fmt = self.vector.output_dtype
        if fmt != "activations":
            return fmt
        act = self.activations_dtype
        return act if act in ("bf16", "fp16", "fp32") else "fp16"

    @property
    def vector_output_bytes(self) -> int:
        """Return bytes per element of a vector-unit result as it is stored (4 for fp32, 2 for
        bf16 or fp16; see vector_store_dtype)."""
        return OUTPUT_BYTES[self.vector_store_dtype]

    @property
    def narrows_output(self) -> bool:
        """Return True when results are requantised to fewer bytes than the accumulator's
        before they leave the array (a vector-unit pass after each array op)."""
        return self.output_bytes < ACC_BYTES
    conv_lowering: str = "memory"  # "memory" (im2col in DRAM) | "feeder" (expanded on chip)
    # precision.weights / activations / kv_cache resolved ("dtype" -> the chip's dtype); "" =
    # the chip's dtype (a Chip built by hand)
    precision_weights: str = ""
    precision_activations: str = ""
    precision_kv_cache: str = ""
    # array.macs_per_pe_cycle: MACs per PE per cycle by operand format (absent: 1)
    macs_per_pe_cycle: Mapping[str, int] = field(default_factory=dict, compare=False,
                                                 hash=False)
    tdp_w: float = 0.0  # power.tdp_w: thermal design power in W (0 = not stated)
    tdp_includes_dram: bool = True  # power.tdp_includes_dram

    def where(self, key: str) -> str:
        """Return where config key ``key`` was set (``FILE:LINE``); for a key left at its default,
        the config file's first line."""
        return self.locations.get(key) or self.locations.get("", f"chip {self.name}")

    @property
    def pes(self) -> int:
        """Return the PEs of all arrays, count * R * C."""
        return self.array.count * self.array.pes

    @property
    def weights_dtype(self) -> str:
        """Return the format of weights (precision.weights; the chip's dtype by default)."""
        return self.precision_weights or self.dtype

    @property
    def activations_dtype(self) -> str:
        """Return the format of activations (precision.activations; the chip's dtype)."""
        return self.precision_activations or self.dtype

    @property
    def kv_dtype(self) -> str:
        """Return the format of the KV cache (precision.kv_cache; the chip's dtype)."""
        return self.precision_kv_cache or self.dtype

    @property
    def compute_dtype(self) -> str:
        """Return the format the MACs run in: weights and activations' common format, else the
        wider of the two (W4A16: weights converted to fp16 on the way into the array; a tie of
        two 8-bit formats: the activations'); integer and float formats mixed: the float one."""
        return _compute_format(self.weights_dtype, self.activations_dtype)

    def mac_rate_of(self, fmt: str) -> int:
        """Return MACs per PE per cycle on ``fmt`` operands (array.macs_per_pe_cycle)."""
        return int(self.macs_per_pe_cycle.get(fmt, 1))

    @property
    def mac_rate(self) -> int:
        """Return MACs per PE per cycle of the chip's compute format."""
        return self.mac_rate_of(self.compute_dtype)

    @property
    def input_bytes(self) -> int:
        """Return bytes per A and B element in the tile model: the wider of the activations' and
        weights' formats, in whole bytes (an int4 element counts 1 byte there; the LLM model's
        weight and KV bytes use tensor_bytes, exact)."""
        return max(INPUT_BYTES[self.weights_dtype], INPUT_BYTES[self.activations_dtype])

    @property
    def peak_macs_per_cycle(self) -> int:
        """Return the peak MACs per cycle of all arrays (PEs x the compute format's rate)."""
        return self.pes * self.mac_rate

    def peak_ops_per_s_of(self, fmt: str) -> float:
        """Return peak throughput in operations/s on ``fmt`` operands (a MAC is two ops)."""
        return 2.0 * self.pes * self.mac_rate_of(fmt) * self.clock_hz

    @property
    def peak_ops_per_s(self) -> float:
        """Return peak arithmetic throughput in operations/s of the compute format (a MAC
        counts as two ops)."""
        return self.peak_ops_per_s_of(self.compute_dtype)

    @property
    def launch_cycles(self) -> int:
        """Return the fixed cycles added to every op (overhead.launch_s at the clock, rounded up)."""
        return int(-(-self.launch_s * self.clock_hz // 1))

    @property
    def dram_bytes_per_cycle(self) -> float:
        """Return DRAM bandwidth in bytes per array clock cycle, all ports together (inf when
        any port is ideal)."""
        bpc = self.dram.bytes_per_cycle(self.clock_hz)
        if self.dram.per_operand:
            return float("inf") if min(bpc) <= 0 else float(sum(bpc))
        return float("inf") if bpc[0] <= 0 else bpc[0]

    def with_overrides(self, overrides: Mapping[str, Any]) -> "Chip":
        """Return a new Chip with dotted-path overrides applied (validated like a config file)."""
        flat = {p: (v, self.where(p)) for p, v in flatten(self.config).items()}
        flat.update({k: (v, f"override {k}") for k, v in overrides.items()})
        locations: dict[str, str] = {"": self.where("")} if "" in self.locations else {}
        cfg = validate_config({}, {}, f"chip {self.name}", flat, locations)
        return chip_from_config(cfg, locations)

    def to_dict(self) -> dict[str, Any]:
        """Return the resolved config (every key, defaults included) as a JSON-ready dict."""
        return copy.deepcopy(dict(self.config))


def chip_from_config(cfg: Mapping[str, Any], locations: Mapping[str, str] | None = None) -> Chip:
    """Build a Chip from a validated nested config dict (as returned by load_config); keys'
    ``locations`` (from validate_config) let errors found later point at the file and line."""
    arr = cfg["array"]
    buf = cfg["buffers"]
    en = cfg["energy"]

    def buffer(name: str) -> Buffer:
        return Buffer(bytes=int(buf[name]["bytes"]),
                      port_bytes_per_cycle=float(buf[name]["port_bytes_per_cycle"]))

    energy = _energy_table(cfg, locations or {})
    return Chip(
        name=cfg["name"],
        source=cfg["source"],
        clock_hz=float(cfg["clock_hz"]),
        dtype=cfg["dtype"],
        overflow=cfg["overflow"],
        accumulator_bits=int(cfg["accumulator_bits"]),
        array=SystolicArray(rows=arr["rows"], cols=arr["cols"], dataflow=arr["dataflow"],
                            fill_drain=arr["fill_drain"],
                            preload_overlap=arr["preload_overlap"], count=arr["count"],
                            split=arr["split"], split_tile_m=arr["split_tile_m"],
                            split_tile_n=arr["split_tile_n"],
                            batch_placement=arr["batch_placement"],
                            depthwise=arr["depthwise"],
                            fold_pipelining=arr["fold_pipelining"]),
        launch_s=float(cfg["overhead"]["launch_s"]),
        vector=VectorUnit(lanes=cfg["vector"]["lanes"],
                          latency_cycles=cfg["vector"]["latency_cycles"],
                          interval=dict(cfg["vector"]["interval"]),
                          output_dtype=cfg["vector"]["output_dtype"],
                          fuse_epilogues=cfg["vector"]["fuse_epilogues"]),
        buffers=Buffers(unified=buf["unified"], double_buffered=buf["double_buffered"],
                        a=buffer("a"), b=buffer("b"), o=buffer("o"),
                        unified_buffer=buffer("unified_buffer"),
                        residency=buf["residency"]),
        dram=Dram(bandwidth_bytes_per_s=float(cfg["dram"]["bandwidth_bytes_per_s"]),
                  latency_cycles=int(cfg["dram"]["latency_cycles"]),
                  capacity_bytes=int(cfg["dram"]["capacity_bytes"]), ports=cfg["dram"]["ports"],
                  port_bandwidth_bytes_per_s=tuple(
                      float(cfg["dram"][x]["bandwidth_bytes_per_s"])
                      or float(cfg["dram"]["bandwidth_bytes_per_s"]) for x in "abo")),
        tiling=Tiling(loop_order=cfg["tiling"]["loop_order"], tile_m=cfg["tiling"]["tile_m"],
                      tile_n=cfg["tiling"]["tile_n"], tile_k=cfg["tiling"]["tile_k"],
                      objective=cfg["tiling"]["objective"]),
        energy=energy,
        config=copy.deepcopy(dict(cfg)),
        locations=dict(locations or {}),
        conv_lowering=cfg["memory"]["conv_lowering"],
        tdp_w=float(cfg["power"]["tdp_w"]),
        tdp_includes_dram=bool(cfg["power"]["tdp_includes_dram"]),
        sparsity=sparsity_from_config(
            cfg, lambda key: (locations or {}).get(key) or (locations or {}).get("", "config")),
        output_dtype=_output_dtype(cfg, locations or {}),
        output_scale=float(cfg["output"]["scale"]),
        precision_weights=_precision(cfg, "weights"),
        precision_activations=_precision(cfg, "activations"),
        precision_kv_cache=_precision(cfg, "kv_cache"),
        macs_per_pe_cycle={f: int(arr["macs_per_pe_cycle"][f]) for f in FORMATS},
    )


def _compute_format(w: str, a: str) -> str:
    """Return the format MACs on ``w`` weights and ``a`` activations run in (Chip.compute_dtype)."""
    if w == a:
        return a
    if (w in INTEGER_FORMATS) != (a in INTEGER_FORMATS):
        return a if w in INTEGER_FORMATS else w
    return w if ELEMENT_BITS[w] > ELEMENT_BITS[a] else a


def _precision(cfg: Mapping[str, Any], cls: str) -> str:
    """Return precision.<cls> of a validated config, ``dtype`` resolved to the chip's dtype."""
    value = cfg["precision"][cls]
    return cfg["dtype"] if value == "dtype" else value


def _output_dtype(cfg: Mapping[str, Any], locations: Mapping[str, str]) -> str:
    """Return output.dtype of a validated config (``input`` resolved to the chip's dtype); raises ConfigError (FILE:LINE) for an output
    type the chip's accumulator cannot be requantised to (int8 needs an int8 chip with its
    int32 accumulators; bf16, fp16 and fp32 need a float chip)."""
    out, dtype = cfg["output"]["dtype"], cfg["dtype"]
    where = locations.get("output.dtype") or locations.get("", "config")
    if out == "input":  # the chip's own input type: int8 in, int8 out; bf16 in, bf16 out
        if dtype == "int4":
            raise ConfigError(where, "output.dtype", "input is not an output type of an int4 "
                              "chip (results are not requantised to int4); use int8 or "
                              "accumulator")
        return dtype
    integer = dtype in INTEGER_FORMATS
    if out == "int8" and not integer:
        raise ConfigError(where, "output.dtype", f"int8 outputs need dtype int8 or int4 (int32 "
                          f"accumulators), got dtype {dtype}")
    if out in ("bf16", "fp16", "fp32") and integer:
        raise ConfigError(where, "output.dtype", f"{out} outputs need a float dtype (fp32 "
                          f"accumulators), got dtype {dtype}; use int8 or accumulator")
    return out


_ENERGY_ENTRIES = {**{f"mac_{d}": "pj" for d in INPUT_BYTES}, "pe_hop": "pj_per_byte",
                   "register_read": "pj_per_byte", "register_write": "pj_per_byte",
                   "buffer_read": "pj_per_byte", "buffer_write": "pj_per_byte",
                   "dram": "pj_per_byte", "vector_lane_op": "pj", "static": "watts"}


def _energy_table(cfg: Mapping[str, Any], locations: Mapping[str, str]) -> EnergyTable:
    """Return the EnergyTable of a validated config: each entry scaled from its node and voltage
    to the chip's (technology.*, Stillmaker & Baas fits), buffer energies by capacity, static
    power with the assumed leakage share. Raises ConfigError (FILE:LINE) outside the model."""
    en = cfg["energy"]
    tech = cfg["technology"]

    def where(key: str) -> str:
        return locations.get(key) or locations.get("", "config")

    node, volt, flavor = float(tech["node_nm"]), float(tech["voltage"]), tech["flavor"]
    if node:
        try:
            technology.energy_factor(node, volt or technology.nominal_voltage(node), flavor)
        except ValueError as exc:
            in_range = technology.MIN_NODE_NM <= node <= technology.MAX_NODE_NM
            key = "technology.voltage" if in_range else "technology.node_nm"
            raise ConfigError(where(key), key, str(exc)) from None
    factors: dict[str, float] = {}
    scaled_from: set[str] = set()
    for name, unit in _ENERGY_ENTRIES.items():
        e_node, e_volt = float(en[name]["node_nm"]), float(en[name]["voltage"])
        if not node or not e_node:
            factors[name] = 1.0
            continue
        try:
            factors[name] = technology.scale_factor(e_node, e_volt, node, volt, flavor)
        except ValueError as exc:
            in_range = technology.MIN_NODE_NM <= e_node <= technology.MAX_NODE_NM
            key = f"energy.{name}.{'voltage' if in_range else 'node_nm'}"
            raise ConfigError(where(key), key, str(exc)) from None
        e_v = e_volt or technology.nominal_voltage(e_node)
        scaled_from.add(f"{e_node:g} nm {e_v:g} V")

    def val(name: str) -> float:
        return float(en[name][_ENERGY_ENTRIES[name]]) * factors[name]

    buf = cfg["buffers"]
    model = en["sram"]
    buffers = {}
    sram_factors: dict[str, float] = {}
    for b in ("a", "b", "o", "unified_buffer"):
        cap = int(buf[b]["bytes"]) if model["model"] == "capacity" else 0
        sram_factors[b] = sram.sram_pj_per_byte(1.0, cap, int(model["ref_bytes"]),
                                                float(model["exponent"]))
        buffers[b] = (val("buffer_read") * sram_factors[b], val("buffer_write") * sram_factors[b])
    mac = {d: val(f"mac_{d}") for d in INPUT_BYTES}
    arr = cfg["array"]
    compute = _compute_format(_precision(cfg, "weights"), _precision(cfg, "activations"))
    peak_mac_w = arr["count"] * arr["rows"] * arr["cols"] * mac[compute] * 1e-12 \
        * float(cfg["clock_hz"]) * int(arr["macs_per_pe_cycle"][compute])
    lf = float(en["static"]["leakage_fraction"])
    static_w = val("static") + lf / (1.0 - lf) * peak_mac_w
    if node:
        v = volt or technology.nominal_voltage(node)
        scaling = (f"{technology.SOURCE}, {flavor.upper()} fit: entries from "
                   f"{', '.join(sorted(scaled_from)) or '-'} to {node:g} nm {v:g} V (MAC x"
                   f"{factors['mac_' + compute]:.3g}); DRAM and static power unscaled")
    else:
        scaling = "none (technology.node_nm not set: energy entries used as given)"
    scaling += "; " + sram_scaling_text(model["model"], int(model["ref_bytes"]), sram_factors,
                                        bool(buf["unified"]))
    return EnergyTable(
        mac_pj=mac,
        pe_hop_pj_per_byte=val("pe_hop"),
        buffer_read_pj_per_byte=val("buffer_read"),
        buffer_write_pj_per_byte=val("buffer_write"),
        dram_pj_per_byte=val("dram"),
        vector_lane_op_pj=val("vector_lane_op"),
        static_w=static_w,
        sources={k: v["source"] for k, v in en.items()},
        register_read_pj_per_byte=val("register_read"),
        register_write_pj_per_byte=val("register_write"),
        buffer_pj_per_byte=buffers,
        scale_factors=factors,
        scaling=scaling,
    )


def sram_scaling_text(model: str, ref_bytes: int, factors: Mapping[str, float],
                      unified: bool) -> str:
    """Return, in words, which buffer energy entries the SRAM capacity model scaled and by what
    factor (``factors``: buffer name -> multiplier of energy.buffer_read/write), or that the
    config's buffer_read/write apply flat."""
    if model != "capacity":
        return "SRAM flat: energy.buffer_read/write used as given for every buffer"
    names = ("unified_buffer",) if unified else ("a", "b", "o")
    parts = ", ".join(f"{n} x{factors[n]:.3g}" for n in names)
    return f"SRAM by capacity from {ref_bytes:,} B: buffer_read/write {parts}"


def load_chip(path: str | Path, overrides: Mapping[str, Any] | None = None,
              sources: Mapping[str, str] | None = None) -> Chip:
    """Load a YAML chip config, apply dotted-path overrides, and return the frozen Chip.

    ``sources`` optionally names where each override came from, for error messages. Raises
    simulator.errors.ConfigError with a ``FILE:LINE: key: message`` text on bad input.
    """
    locations: dict[str, str] = {}
    cfg = load_config(path, overrides, sources, locations)
    return chip_from_config(cfg, locations)
