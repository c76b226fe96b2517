"""Which tensors of a Program stay in the on-chip buffer and which spill to DRAM (DESIGN s.8).

Liveness over the program's schedule (its op order): a program input is live from its first use
to its last (it is loaded from DRAM at the first use), an op's output from its defining op to
its last use (an output nobody reads lives for its defining op only). Free layout ops (reshapes,
slices, and permutes only array ops read) alias their input: one buffer, whose life runs to
the last use of any alias.

Admission, in priority order (earlier start first, then program order): a tensor is resident
iff at every op of its life it fits together with ALL higher-priority tensors live there,
resident or not. Counting the spilled ones too wastes some space, but makes the resident set
grow monotonically with the capacity (each tensor's test only gets easier), so a larger buffer
never moves more bytes to DRAM, and the resident tensors always fit.

DRAM transfers (per op, each named with its reason):
- ``input``: a resident program input, loaded at its first use (weights once per Program; an
  embedding table read by a gather loads only the rows gathered);
- ``spill``: a spilled tensor, written at its definition and read at every use (a spilled
  program input is read at every use);
- ``output``: a program output, written once at its definition.

Bytes per element: the chip's input type for tensors only array ops read (they are stored in
the array's operand format), 4 (fp32 / int32) for the rest; an array op's result on a chip that
narrows its outputs (output.dtype) at most output.dtype's bytes, and a vector op's result on a
chip that stores them narrower (vector.output_dtype) at most that format's bytes, unless it is
index-valued (``index_tensors``); the intermediate results of a fused epilogue
(vector.fuse_epilogues) are never stored: 0 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..hardware.chip import ACC_BYTES, Chip
from .fusion import epilogue_fusion
from .grouped import runs_on_vector
from .program import Conv2d, Elementwise, Layout, MatMul, Program
from .vector import ID_INPUT

__all__ = ["ResidencyPlan", "free_layout_ops", "index_tensors", "plan_residency",
           "vector_narrowed"]

_ID_INPUT = ID_INPUT  # the input position of the integer ids of the vector ops that take them


def index_tensors(program: Program) -> set[str]:
    """Return the tensors that carry integers: the ids of gathers and scatters and, back
    through their producers, everything that computes them; integer divisions (div_trunc)
    and index-valued results (argmax, argmin) and, forward, elementwise or layout ops of their
    results."""
    producer = {op.output: op for op in program.ops}
    out: set[str] = set()
    todo = [op.inputs[_ID_INPUT[op.kind]] for op in program.ops
            if getattr(op, "kind", "") in _ID_INPUT]
    while todo:
        t = todo.pop()
        if t in out:
            continue
        out.add(t)
        op = producer.get(t)
        if op is not None and not isinstance(op, (MatMul, Conv2d)):
            todo.extend(op.inputs)
    for op in program.ops:  # program order: producers come first
        if getattr(op, "kind", "") in ("div_trunc", "argmax", "argmin",
                                         "topk_indices") or (
                isinstance(op, (Elementwise, Layout)) and any(t in out for t in op.inputs)
                and getattr(op, "op_class", "move") in ("add", "compare", "divide", "move")):
            out.add(op.output)
    return out


def vector_narrowed(chip: Chip, program: Program, free: set[str]) -> set[str]:
    """Return the tensors the vector unit stores in vector.output_dtype (narrower than 4
    bytes): the outputs of ops it runs, free layout aliases of them, less index-valued ones.
    Empty when the chip stores vector results in fp32."""
    if chip.vector_output_bytes >= ACC_BYTES:
        return set()
    ids = index_tensors(program)
    out: set[str] = set()
    for op in program.ops:
        if op.name in free:
            if op.inputs[0] in out:
                out.add(op.output)
        elif (not isinstance(op, (MatMul, Conv2d)) or runs_on_vector(chip, program, op)) \
                and op.output not in ids:
            out.add(op.output)
    return out


def free_layout_ops(program: Program) -> set[str]:
    """Return the names of the Layout ops that cost nothing: reshapes and slices (an offset and
    strides for whichever unit reads them), and permutes whose every consumer (looking through
    other free layout ops) is an array op."""
    uses = program.consumers()
    memo: dict[str, bool] = {}

    def only_array(tensor: str) -> bool:
        if tensor in memo:
            return memo[tensor]
        memo[tensor] = False
        ok = bool(uses.get(tensor))
        for op in uses.get(tensor, ()):
            if isinstance(op, (MatMul, Conv2d)):
                continue
            if isinstance(op, Layout) and only_array(op.output):
                continue
            ok = False
            break
        memo[tensor] = ok
        return ok

    free = set()
    for op in program.ops:
        if isinstance(op, Layout) and (op.kind in ("reshape", "slice") or only_array(op.output)):
            free.add(op.name)
    return free


@dataclass
class ResidencyPlan:
    """Per tensor: root buffer, bytes, resident flag; per op: DRAM reads and writes."""

    root: dict[str, str]
    nbytes: dict[str, int]  # per root
    resident: dict[str, bool]  # per root
    outputs: set[str]  # roots that are program outputs
    reads: list[dict[str, tuple[int, str]]] = field(default_factory=list)  # tensor -> (bytes, why)
    writes: list[dict[str, tuple[int, str]]] = field(default_factory=list)
    buffer_bytes: list[int] = field(default_factory=list)  # resident bytes live at each op
    first_use: dict[str, int] = field(default_factory=dict)  # input root -> op index

    def spilled(self) -> list[str]:
        """Return the roots that do not stay on chip."""
        return [t for t, r in self.resident.items() if not r]


def plan_residency(chip: Chip, program: Program, free: set[str] | None = None) -> ResidencyPlan:
    """Return the residency plan of ``program`` on ``chip`` (see module doc)."""
    free = free_layout_ops(program) if free is None else free
    ops = program.ops
    root: dict[str, str] = {t: t for t in program.inputs}
    for op in ops:
        root[op.output] = root[op.inputs[0]] if op.name in free else op.output
    start: dict[str, int] = {}
    last: dict[str, int] = {}
    array_only: dict[str, bool] = {}
    order: list[str] = []
    inputs = set(program.inputs)
    for i, op in enumerate(ops):
        aliased = op.name in free
        for t in op.inputs:
            r = root[t]
            if r not in start:
                start[r] = i
                order.append(r)
            last[r] = i
            if not aliased:
                array_only[r] = array_only.get(r, True) and isinstance(op, (MatMul, Conv2d)) \
                    and not runs_on_vector(chip, program, op)
        if not aliased:
            r = op.output
            start[r] = i
            last[r] = i
            order.append(r)
    outputs = {root[t] for t in program.program_outputs()}
    nbytes = {}
    # results of array ops leave the array in output.dtype (narrower than the accumulators
    # when the chip requantises them)
    narrowed = {op.output for op in ops if chip.narrows_output and isinstance(op, (MatMul, Conv2d))
                and not runs_on_vector(chip, program, op)}
    by_vector = vector_narrowed(chip, program, free)
    virtual = epilogue_fusion(chip, program, free).virtual  # never stored
    for r in order:
        per = chip.input_bytes if array_only.get(r, False) else ACC_BYTES
        if r in narrowed:
            per = min(per, chip.output_bytes)
        if r in by_vector:
            per = min(per, chip.vector_output_bytes)
        nbytes[r] = 0 if r in virtual else program.numel(r) * per
    cap = chip.buffers.residency_bytes
    n = len(ops)
    resident = {}
    res_load = np.zeros(n, np.int64)
    if cap == 0 or sum(nbytes.values()) <= cap:
        for r in order:
            resident[r] = True
            res_load[start[r]:last[r] + 1] += nbytes[r]
    else:
        load = np.zeros(n, np.int64)
        for r in order:  # order is by start, then program order
            s, e, b = start[r], last[r] + 1, nbytes[r]
            seg = load[s:e]
            ok = r in virtual or (b <= cap and int(seg.max()) + b <= cap)
            resident[r] = ok
            seg += b
            if ok:
                res_load[s:e] += b
    plan = ResidencyPlan(root, nbytes, resident, outputs,
                         buffer_bytes=[int(v) for v in res_load])
    seen: set[str] = set()
    for i, op in enumerate(ops):
        reads: dict[str, tuple[int, str]] = {}
        writes: dict[str, tuple[int, str]] = {}
        if op.name not in free:
            for t in op.inputs:
                r = root[t]
                if r in reads:
                    continue
                size = nbytes[r]
                if getattr(op, "kind", "") == "gather" and t == op.inputs[0]:
                    # an embedding lookup fetches only the rows it gathers
                    size = min(size, program.numel(op.output) * ACC_BYTES)
                if not resident[r]:
                    reads[r] = (size, "spill")
                elif r in inputs and r not in seen:
                    reads[r] = (size, "input")
                if r in inputs and r not in seen:
                    plan.first_use[r] = i
                seen.add(r)
            r = op.output
            if r in outputs:
                writes[r] = (nbytes[r], "output")
            elif not resident[r]:
                writes[r] = (nbytes[r], "spill")
        plan.reads.append(reads)
        plan.writes.append(writes)
    return plan
