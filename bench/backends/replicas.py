"""How a global batch splits over data-parallel replicas: the arithmetic a backend places by.

A cell's ``batch_size`` is the GLOBAL batch of one step, split evenly over its ``replicas``
(across every process of a multi-host run); see ``bench.read.scaling`` for how well
throughput then scales.
"""

from __future__ import annotations


class BatchSplitError(ValueError):
    """A global batch that does not split evenly over the replicas (or processes)."""


def per_device_batch(global_batch: int, replicas: int, processes: int = 1) -> int:
    """Examples each replica computes per step; raises when the split is uneven."""
    if replicas < 1:
        raise BatchSplitError(f"replicas must be at least 1, got {replicas}")
    if replicas % processes:
        raise BatchSplitError(
            f"{replicas} replicas do not spread evenly over {processes} processes; expected a "
            f"multiple of {processes} (each process contributes the same number of devices)"
        )
    if global_batch % replicas:
        raise BatchSplitError(
            f"batch_size {global_batch} (the global batch) does not split evenly over "
            f"{replicas} replicas"
        )
    return global_batch // replicas


def resolve_replicas(requested: int | str, available: int, processes: int = 1) -> int:
    """The device count a cell runs on: ``all`` is every device the worker sees (every device of
    every process in a multi-host run); a number must not exceed that."""
    if requested == "all":
        return available
    count = int(requested)
    if count > available:
        where = f"{processes} processes together see" if processes > 1 else "the worker sees"
        raise BatchSplitError(f"replicas {count} asked for, but {where} only {available} device(s)")
    return count
