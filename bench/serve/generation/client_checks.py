"""What a generation load says about the client and the server's counts, apart from latency:
whether the client kept up, whether its token counts agree with the server's, and how long the
prompts the server saw were.

- **A saturated client is not a slow server** (vLLM #39963). Two ways: the generator handed
  the requests over more than 5% slower than scheduled (as ``bench.serve.summary`` judges an
  endpoint cell) and by more than 10 ms, or the sender slots bound the load: requests found every slot busy, and the
  offered rate times the time a request held its slot (Little's law) needs more slots than
  there are. Either way, latency from the schedule includes the client's own queue: the rate
  was not measured.
- **Token counts** (inference-perf #580): the client counts a chunk as one token unless the
  chunk says more; the server's ``usage`` is the count TPOT uses. The share of requests whose
  two counts disagree is kept, and flagged over 5%: past that, per-chunk figures (inter-token
  gaps) do not describe tokens.
- **Prompt lengths**: for synthesised prompts (``prompt_text``) the server's count against the
  one asked, per request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.serve.generation.client_load import GenLoad
from bench.serve.generation.record import Generated
from bench.serve.summary import BEHIND_RATIO, nearest_rank

# The generator is behind when it spread the requests over 5% more time than scheduled (the
# serve endpoints' rule) and by more than this: in a short load a few thread wake-ups make 5%.
BEHIND_FLOOR_S = 0.010
DISAGREE_FLAG = 0.05  # a share of requests whose counts disagree beyond this flags the cell
CLIENT_CPU_NOTE = 0.8  # cores: the client's Python threads near one core can delay reading


def _spread(values: np.ndarray) -> dict[str, Any]:
    values = values[~np.isnan(values)]
    if not len(values):
        return {"n": 0}
    s = np.sort(values)
    return {
        "n": len(s), "mean": float(s.mean()), "p50": nearest_rank(s, 50),
        "p99": nearest_rank(s, 99), "max": float(s[-1]),
    }  # fmt: skip


def client_check(load: GenLoad) -> dict[str, Any]:
    """``saturated`` (bool) and its ``reason``, with the facts behind them: the generator's
    lateness (``generator_behind``), the wait for a sender, the slots needed by Little's law
    (``slots_bound``: they bound the load), the client's CPU."""
    recs = load.records
    scheduled = np.array([r.scheduled for r in recs], dtype=float)
    started = np.array([np.nan if r.started is None else r.started for r in recs], dtype=float)
    out: dict[str, Any] = {
        "slots": load.slots,
        "all_busy": load.all_busy,
        "lateness_s": _spread(load.issued - scheduled),
        "sender_wait_s": _spread(started - load.issued),
        "client_cpu_cores": load.client_cpu_s / load.seconds if load.seconds > 0 else None,
        "needed_slots": None,
        "generator_behind": False,
        "slots_bound": False,
    }
    n = len(recs)
    span = float(scheduled.max() - scheduled.min()) if n > 1 else 0.0
    issued = load.issued[~np.isnan(load.issued)]
    held = (load.released - started)[~(np.isnan(load.released) | np.isnan(started))]
    reasons = []
    if n > 1 and span > 0 and len(issued) > 1:
        issued_span = float(issued.max() - issued.min())
        if issued_span > span * BEHIND_RATIO and issued_span - span > BEHIND_FLOOR_S:
            out["generator_behind"] = True
            reasons.append(
                f"the load generator issued {n} requests over {issued_span:.3g} s where "
                f"{span:.3g} s were scheduled ({(n - 1) / issued_span:.4g} of "
                f"{(n - 1) / span:.4g} requests/s offered)"
            )
    if n > 1 and span > 0 and len(held):
        rate = (n - 1) / span
        needed = out["needed_slots"] = rate * float(held.mean())
        if load.all_busy and needed > load.slots:
            out["slots_bound"] = True
            wait = out["sender_wait_s"].get("p99", 0.0) * 1e3
            reasons.append(
                f"{load.all_busy} of {n} requests found all {load.slots} sender slots busy (wait "
                f"for a sender p99 {wait:.4g} ms, counted in every latency from the schedule); "
                f"at {rate:.4g} requests/s offered, each holding its slot {held.mean():.3g} s on "
                f"average, about {needed:.3g} slots are needed (Little's law): raise the sender "
                "slots (max_in_flight) or lower the rate"
            )
    out["saturated"] = bool(reasons)
    out["reason"] = "the client was saturated: " + "; and ".join(reasons) if reasons else ""
    cpu = out["client_cpu_cores"]
    if not reasons and cpu is not None and cpu > CLIENT_CPU_NOTE:
        out["note"] = (
            f"the client process was busy {cpu:.2f} cores during the load: its Python threads "
            "may have read chunks late; run the client on another machine to be sure"
        )
    return out


def token_agreement(records: Sequence[Generated]) -> dict[str, Any]:
    """Among the requests that succeeded with a server count: how many the client counted
    differently (``flagged`` over 5%); and how many had no server count at all."""
    ok = [r for r in records if r.ok]
    counted = [r for r in ok if r.server_output_tokens is not None]
    disagree = [r for r in counted if sum(r.chunk_tokens) != r.server_output_tokens]
    share = len(disagree) / len(counted) if counted else None
    return {
        "compared": len(counted),
        "disagree": len(disagree),
        "share": share,
        "flagged": share is not None and share > DISAGREE_FLAG,
        "no_usage": len(ok) - len(counted),
        "examples": [
            {"index": r.index, "client": sum(r.chunk_tokens), "server": r.server_output_tokens}
            for r in disagree[:3]
        ],
    }


def prompt_lengths(records: Sequence[Generated]) -> dict[str, Any]:
    """The server's prompt count against the one asked: ratio reported/asked over the requests
    that have one (``n``), and the share off by more than 10%."""
    pairs = [
        (r.prompt_tokens, r.server_prompt_tokens)
        for r in records
        if r.server_prompt_tokens is not None and r.prompt_tokens > 0
    ]
    if not pairs:
        return {"n": 0}
    ratio = np.sort(np.array([got / asked for asked, got in pairs]))
    return {
        "n": len(pairs),
        "asked_mean": float(np.mean([a for a, _ in pairs])),
        "reported_mean": float(np.mean([g for _, g in pairs])),
        "ratio_p50": nearest_rank(ratio, 50),
        "ratio_min": float(ratio[0]),
        "ratio_max": float(ratio[-1]),
        # In whole tokens, so that 11 of 10 asked is 10% off, not over by a rounding.
        "off_over_10pct": sum(abs(got - asked) * 10 > asked for asked, got in pairs) / len(pairs),
    }


def output_lengths(records: Sequence[Generated]) -> dict[str, Any]:
    """Requests whose server count differs from the output length asked (a server that ended
    early: no ``hold_length`` field it honours), over those that succeeded with a count."""
    counted = [r for r in records if r.ok and r.server_output_tokens is not None]
    short = [r for r in counted if r.server_output_tokens < r.output_tokens]  # type: ignore[operator]
    long = [r for r in counted if r.server_output_tokens > r.output_tokens]  # type: ignore[operator]
    return {"n": len(counted), "short": len(short), "long": len(long)}


def facts(load: GenLoad) -> dict[str, Any]:
    """Everything above for one load, as a cell records it, with the ``flags`` it raises
    (``client_saturated``: the rate was not measured; ``token_counts_disagree``: over 5% of
    requests) and ``text_fields``: how many answered requests' output came in each field (a reasoning
    model's ``reasoning_content`` named apart from ``content``)."""
    client = client_check(load)
    tokens = token_agreement(load.records)
    flags = [name for name, raised in (
        ("client_saturated", client["saturated"]),
        ("token_counts_disagree", tokens["flagged"]),
    ) if raised]  # fmt: skip
    fields: dict[str, int] = {}
    for found, record in zip(load.fields, load.records, strict=True):
        for name in found if record.ok else ():
            fields[name] = fields.get(name, 0) + 1
    return {
        "endpoint": load.endpoint,
        "flags": flags,
        "client": client,
        "token_counts": tokens,
        "prompt_lengths": prompt_lengths(load.records),
        "output_lengths": output_lengths(load.records),
        "text_fields": fields,
    }
