"""Online serving, framework-free: arrival schedules, an open-loop load generator, a dynamic
batcher, per-rate summaries and the search for the highest rate that meets an SLO.

Nothing here imports a framework or knows a backend: the model is a callable
``infer(ids, bucket)`` that runs one padded batch and returns once its results are on the host.
``bench.workloads.serve.cell.inprocess`` hands it a backend's compiled predict steps; tests hand it a stand-in
that sleeps for a known time, so queueing theory can check the numbers.
"""
