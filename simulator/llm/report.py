"""Text tables of ``llm`` results (inference, training step, sweep)."""

from __future__ import annotations

from typing import Any, Sequence

__all__ = ["fmt_bytes", "fmt_s", "inference_text", "sweep_text", "training_text"]


def fmt_s(seconds: float | None) -> str:
    """Return seconds with a readable unit (s, ms, us, ns); "-" for a time that does not
    exist (None)."""
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.4g} {unit}"
    return f"{seconds / 1e-9:.4g} ns"


def _rate(value: float | None) -> str:
    """Return a rate (tokens/s) as text with thousands separators; "-" when it does not exist."""
    return "-" if value is None else f"{value:,.1f}"


def fmt_bytes(n: float) -> str:
    """Return bytes in GiB / MiB / KiB."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


def _shares(breakdown: dict[str, float]) -> str:
    total = sum(breakdown.values()) or 1.0
    return ", ".join(f"{k} {100 * v / total:.1f} %" for k, v in breakdown.items() if v > 0)


def _ops_table(rows: Sequence[dict[str, Any]], top: int, total_s: float) -> list[str]:
    rows = sorted(rows, key=lambda r: -r["seconds"])[:top]
    out = [f"  {'op':<22}{'kind':<15}{'shape':<24}{'runs':>6}{'time':>12}{'share':>8}  bound"
           f"     ops/byte"]
    for r in rows:
        shape = "x".join(map(str, r["shape"])) + (f" (x{r['count']})" if r["count"] > 1 else "")
        ai = r["intensity_ops_per_byte"]
        out.append(f"  {r['name']:<22}{r['kind']:<15}{shape:<24}{r['runs']:>6}"
                   f"{fmt_s(r['seconds']):>12}{100 * r['seconds'] / (total_s or 1):>7.1f}%  "
                   f"{r['bound']:<9}{'' if ai is None else f'{ai:.3g}'}")
    return out


def inference_text(d: dict[str, Any], top: int = 8) -> str:
    """Return the report of one inference run (a to_dict() of InferenceResult) as text."""
    p, mem, pre, dec, tot = d["parallel"], d["memory"], d["prefill"], d["decode"], d["totals"]
    sysd = d["system"]
    lines = [f"llm {d['model']['name']} ({d['model']['parameters'] / 1e9:.3g} B parameters) on "
             f"{d['chip']['name']} ({p['dtype']}): batch {p['batch']}, prompt {p['prompt']}, "
             f"generate {p['generate']}; tp {p['tp']} x pp {p['pp']} = {tot['chips_used']} of "
             f"{sysd['chips']} chips ({sysd['topology']}), {p['micro_batches']} micro-batch(es) "
             f"of up to {p['micro_batch_size']}"]
    prec = p.get("precision")
    if prec:
        peaks = d["chip"].get("peak_ops_per_s_by_format", {})
        lines.append(f"precision        weights {prec['weights']}, activations "
                     f"{prec['activations']}, KV cache {prec['kv_cache']}; MACs in "
                     f"{prec['compute']}: peak {d['chip']['peak_ops_per_s'] / 1e12:,.1f} "
                     f"TFLOP/s per chip"
                     + "".join(f", {f} {peaks[f] / 1e12:,.1f}" for f in ("bf16", "fp8_e4m3")
                               if f in peaks and f != prec["compute"]))
    cap = mem["capacity_bytes"]
    lines.append(f"memory per chip  weights {fmt_bytes(mem['weight_bytes_per_chip'])} + KV cache "
                 f"{fmt_bytes(mem['kv_bytes_per_chip'])} = {fmt_bytes(mem['need_bytes_per_chip'])}"
                 + (f" of {fmt_bytes(cap)}: {'fits' if mem['fits'] else 'DOES NOT FIT'}" if cap
                    else " (capacity unbounded)"))
    lines.append(f"prefill (TTFT)   {fmt_s(pre['time_s'])}, bound by {pre['bound']}: "
                 f"{_shares(pre['breakdown_s'])}")
    if dec["steps"]:
        at = "".join(f", at {k} {fmt_s(v)}" for k, v in dec["tpot_at_s"].items())
        lines.append(f"decode           {dec['steps']} steps in {fmt_s(dec['time_s'])}: TPOT mean "
                     f"{fmt_s(dec['tpot_mean_s'])} (first {fmt_s(dec['tpot_first_s'])}, last "
                     f"{fmt_s(dec['tpot_last_s'])}{at}), bound by {dec['bound']}: "
                     f"{_shares(dec['breakdown_s'])}")
        lines.append(f"                 {dec['evaluated_contexts']} context lengths costed "
                     f"({'every step' if p['exact_decode'] else 'interpolated between them'})")
    lines.append(f"throughput       {tot['tokens_per_s']:,.1f} tokens/s overall, "
                 f"{_rate(tot['decode_tokens_per_s'])} tokens/s in decode; "
                 f"{fmt_bytes(tot['bytes_moved'])} moved (memory + links, all chips)")
    lines.append(f"prefill ops (one chip of the slowest stage, all layers):")
    lines += _ops_table(d["prefill_ops"], top, pre["time_s"])
    if dec["steps"]:
        lines.append("decode ops (one step at the middle context):")
        lines += _ops_table(d["decode_ops"], top, dec["tpot_mean_s"])
    return "\n".join(lines)


def training_text(d: dict[str, Any]) -> str:
    """Return the report of one training step (a to_dict() of TrainResult) as text."""
    p, st, mem = d["parallel"], d["step"], d["memory"]
    cap = mem["capacity_bytes"]
    return "\n".join([
        f"llm train {d['model']['name']} on {d['chip']['name']} ({p['dtype']}): global batch "
        f"{p['global_batch']} x seq {p['seq']}; dp {p['dp']} x tp {p['tp']} x pp {p['pp']} = "
        f"{p['chips_used']} of {d['system']['chips']} chips; {p['micro_batches']} micro-batches "
        f"of {p['micro_batch']}",
        f"step             {fmt_s(st['time_s'])}, {st['tokens_per_s']:,.0f} tokens/s, "
        f"{100 * st['flops_utilisation']:.1f} % of peak FLOP/s; bound by {st['bound']}",
        f"breakdown        {_shares(st['breakdown_s'])}",
        f"data parallel    gradient all-reduce {fmt_s(st['dp_all_reduce_s'])}, exposed "
        f"{fmt_s(st['breakdown_s']['dp_exposed'])}",
        f"memory per chip  weights {fmt_bytes(mem['weight_bytes_per_chip'])} + gradients "
        f"{fmt_bytes(mem['grad_bytes_per_chip'])} + activations "
        f"{fmt_bytes(mem['activation_bytes_per_chip'])} = {fmt_bytes(mem['need_bytes_per_chip'])}"
        + (f" of {fmt_bytes(cap)}: {'fits' if mem['fits'] else 'DOES NOT FIT'}" if cap
           else " (capacity unbounded)")])


def sweep_text(rows: Sequence[dict[str, Any]], best: Sequence[dict[str, Any]]) -> str:
    """Return a sweep's rows and its best (tp, pp) per (chips, batch) as text."""
    head = f"{'chips':>6}{'batch':>7}{'tp':>4}{'pp':>4}{'TTFT':>12}{'TPOT':>12}{'tokens/s':>13}" \
           f"  {'prefill':<9}{'decode':<9}fits"
    out = [head]
    for r in rows:
        if r["status"] != "ok":
            out.append(f"{r['chips']:>6}{r['batch']:>7}{r['tp']:>4}{r['pp']:>4}  -- {r['status']}")
            continue
        out.append(f"{r['chips']:>6}{r['batch']:>7}{r['tp']:>4}{r['pp']:>4}{fmt_s(r['ttft_s']):>12}"
                   f"{fmt_s(r['tpot_s']):>12}{r['tokens_per_s']:>13,.1f}  {r['prefill_bound']:<9}"
                   f"{r['decode_bound']:<9}{'yes' if r['fits'] else 'no'}")
    out.append("best (tp, pp) per (chips, batch), most tokens/s among points that fit:")
    for r in best:
        out.append(f"  chips {r['chips']}, batch {r['batch']}: tp {r['tp']} x pp {r['pp']} -> "
                   f"{r['tokens_per_s']:,.1f} tokens/s, TTFT {fmt_s(r['ttft_s'])}, TPOT "
                   f"{fmt_s(r['tpot_s'])} (prefill {r['prefill_bound']}, "
                   + (f"decode {r['decode_bound']}-bound)" if r["tpot_s"] is not None
                      else "no decode)"))
    return "\n".join(out)
