"""Text generation served from a decoder with a KV cache: requests drawn from length
distributions, the static and continuous schedulers, and the per-request metrics (TTFT, TPOT,
inter-token latency, goodput). Framework-free: a backend supplies the compiled decoder
(``bench.serve.generation.decoder.CompiledDecoder``)."""
