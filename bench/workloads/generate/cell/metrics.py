"""A generate cell's metrics from its reported load, in the registry's shapes
(``bench.metrics``): latency percentiles, token rates, goodput, the engine's prefill and decode
costs, and what they mean for the device (KV cache bytes, bandwidth and FLOPs utilisation of the
decode step, cost per million output tokens)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench.measure.flops import peak_flops
from bench.metrics import metric, unavailable, value_of
from bench.serve.generation.summary import GenSlo


def _at(probe: Mapping[str, Any]) -> str:
    if probe["offered_qps"] is None:
        return f"offline: {probe['requests']} requests at once"
    return f"{probe['arrivals']} arrivals at {probe['offered_qps']:.4g} requests/s offered"


def _spread(probe: Mapping[str, Any], name: str, method: str) -> dict[str, Any]:
    found = probe[name]
    stats = {k: v for k, v in found.items() if k != "unit" and v is not None}
    if not found.get("n"):
        return unavailable(f"no request measured it ({_at(probe)})", "s")
    return {
        "unit": "s",
        "method": f"{method}, nearest-rank over {probe['requests']} requests ({_at(probe)}); failed requests count as infinitely late",
        **stats,
    }


def generation_metrics(
    probe: Mapping[str, Any],
    slo: GenSlo,
    searched: Mapping[str, Any] | None,
    known: dict[str, Any],
    model: Any,
    args: Any,
    key: Mapping[str, Any],
    device_name: str,
    bandwidth: dict[str, Any],
    cpu_peak_flops: dict[str, Any] | None,
) -> dict[str, Any]:
    at = _at(probe)
    out: dict[str, Any] = dict(known)
    out["ttft_s"] = _spread(probe, "ttft_s", "scheduled arrival to the first token on the host")
    out["tpot_s"] = _spread(probe, "tpot_s", "per request, (last token - first) / (tokens - 1)")
    out["inter_token_s"] = _spread(probe, "itl_s", "every gap between consecutive tokens")
    out["request_latency_s"] = _spread(probe, "latency_s", "scheduled arrival to the last token")
    rate = probe["output_tokens_per_s"]
    out["output_tokens_per_s"] = (
        metric(rate, "tokens/s", f"{probe['output_tokens']} output tokens / {probe['seconds']:.4g} s, first arrival to last token ({at})")
        if rate else unavailable("no output token", "tokens/s")
    )  # fmt: skip
    total = probe["total_tokens_per_s"]
    out["total_tokens_per_s"] = (
        metric(total, "tokens/s", f"prompt and output tokens / the load's duration ({at})")
        if total else unavailable("no token", "tokens/s")
    )  # fmt: skip
    good = probe["goodput"]
    out["goodput_rps"] = (
        metric(good["requests_per_s"], "requests/s", f"{good['method']} ({at})", fraction=good["fraction"])
        if good["requests_per_s"] is not None else unavailable("the load took no time", "requests/s")
    )  # fmt: skip
    if searched is not None:
        out["max_compliant_qps"] = (
            metric(searched["max_qps"], "requests/s",
                   f"highest offered rate measured to meet {slo.describe()}; bracket "
                   f"{searched['bracket_qps']} searched below the offline rate "
                   f"({searched['offline_qps']:.4g} requests/s)")
            if searched["max_qps"] is not None else unavailable(searched["reason"], "requests/s")
        )  # fmt: skip
    if probe["prefill_tokens_per_s"]:
        out["prefill_tokens_per_s"] = metric(
            probe["prefill_tokens_per_s"], "tokens/s",
            f"prompt tokens / time in {probe['prefills']} prefill calls, host to host (padded to "
            "buckets: the padding is not counted)",
        )  # fmt: skip
    step = probe["decode_step_s"]
    if step:
        out["decode_step_s"] = metric(
            step, "s", f"median of {probe['decode_steps']} decode steps, host to host ({at})",
            by_active=probe["decode_step_s_by_active"], mean_active=probe["mean_active"],
        )  # fmt: skip
    slots, cache, precision = int(key["slots"]), int(key["cache_len"]), str(key["precision"])
    out["kv_cache_bytes"] = metric(
        model.kv_cache_bytes(args, slots, cache, precision), "bytes",
        f"analytic: {slots} slots x {cache} positions, keys and values of every layer, {precision}",
    )  # fmt: skip
    out.update(
        _utilisation(
            probe,
            model,
            args,
            key,
            bandwidth,
            cpu_peak_flops,
            out.get("decode_step_s"),
            device_name,
        )
    )
    price = value_of(out.get("price_per_hour_usd"))
    if price and rate:
        out["cost_usd_per_million_output_tokens"] = metric(
            price / 3600.0 / rate * 1e6,
            "USD",
            f"USD {price:g}/h / 3600 / output tokens/s x 1e6 ({at})",
        )
    else:
        why = "no price for the device" if not price else "no output token"
        out["cost_usd_per_million_output_tokens"] = unavailable(why, "USD")
    return out


def _utilisation(
    probe: Mapping[str, Any],
    model: Any,
    args: Any,
    key: Mapping[str, Any],
    bandwidth: dict[str, Any],
    cpu_peak_flops: dict[str, Any] | None,
    step_entry: Mapping[str, Any] | None,
    device_name: str,
) -> dict[str, Any]:
    """Decode step: bytes read over peak bandwidth (a decode step reads every weight and the
    whole cache, whatever the rows hold), and analytic FLOPs of the active rows over the peak."""
    step = value_of(dict(step_entry)) if step_entry else None
    if not step:
        why = "no decode step measured"
        return {
            "decode_bandwidth_util": unavailable(why, "fraction"),
            "decode_mfu": unavailable(why, "fraction"),
        }
    slots, cache, precision = int(key["slots"]), int(key["cache_len"]), str(key["precision"])
    out: dict[str, Any] = {}
    peak_bw = value_of(bandwidth)
    read = model.decode_step_bytes(args, slots, cache, precision)
    out["decode_bandwidth_util"] = (
        metric(read / step / peak_bw, "fraction",
               f"{read:,} bytes read per decode step (weights and the whole KV cache) / median step "
               f"{step * 1e3:.4g} ms / {bandwidth['method']}")
        if peak_bw else unavailable(bandwidth.get("unavailable", "no peak bandwidth"), "fraction")
    )  # fmt: skip
    if cpu_peak_flops is not None:
        peak = value_of(cpu_peak_flops)
    else:
        # The datasheet peak of the cell's precision (float32 cells that ran as TF32 on a GPU
        # read low here: the decode step is bandwidth-bound, its MFU small either way).
        peak = value_of(peak_flops(device_name, precision))
    active = probe["mean_active"] or 0.0
    context = (
        probe["prompt_tokens"] / max(1, probe["answered"])
        + probe["output_tokens"] / max(1, probe["answered"]) / 2
    )
    flops = model.decode_flops(args, int(context)) * active
    out["decode_mfu"] = (
        metric(flops / step / peak, "fraction",
               f"analytic decode FLOPs at the mean context ({context:.0f} tokens) x {active:.3g} "
               f"mean active rows / median step / peak")
        if peak else unavailable("no peak FLOP/s for the device", "fraction")
    )  # fmt: skip
    return out
