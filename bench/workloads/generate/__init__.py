"""``workload: generate``: text generation from the zoo decoder with a KV cache, in the
worker's own engine (or from an OpenAI-compatible server over the network, ``endpoint: NAME``): requests of seeded lengths arriving under load, prefill and decode timed
apart, the static or continuous scheduler, TTFT, TPOT, tokens/s and goodput against the
scenario's slo. docs/generation.md."""

from __future__ import annotations

from bench.workloads.spec import WorkloadSpec

SPEC = WorkloadSpec(
    name="generate",
    help="text generation from a decoder with a KV cache: TTFT, TPOT, tokens/s, goodput",
    measure="bench.workloads.generate.cell:measure",
    compiled_pass="predict",
    offline=False,
    axes=("arrivals", "endpoint", "scheduler", "slots", "cache_len"),
    # The decode step's batch is ``slots``; a request is one sequence.
    fixed={"batch_size": 1},
    requires={"replicas": 1, "steps_per_call": 1, "input": "synthetic"},
    accepts={
        "arrivals": ("poisson", "constant", "gamma", "offline"),
        "framework": ("jax", "tensorflow"),
    },
    metrics=(
        "ttft_s",
        "tpot_s",
        "inter_token_s",
        "request_latency_s",
        "output_tokens_per_s",
        "total_tokens_per_s",
        "goodput_rps",
        "max_compliant_qps",
        "prefill_tokens_per_s",
        "decode_step_s",
        "kv_cache_bytes",
        "decode_bandwidth_util",
        "decode_mfu",
        "cost_usd_per_million_output_tokens",
        "server_ttft_overhead_s",
        "server_tpot_overhead_s",
    ),
    throughput="output_tokens_per_s",
    gates=("ttft", "tpot", "tokens_per_s"),
    needs=("prefill_flops", "decode_flops", "kv_cache_bytes", "weight_bytes"),
    sections=("generation",),
    module=__name__,
)
