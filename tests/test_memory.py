"""Device memory per cell: the compiled program's analysis, and the runtime peak only when it is
the cell's own (JAX's peak_bytes_in_use covers the worker's whole life and cannot be reset)."""

from __future__ import annotations

from types import SimpleNamespace

from bench.measure.memory import analysis_dict, compiled_memory, runtime_peak
from bench.metrics import value_of

MIB = 2**20
# What jax's CompiledMemoryStats holds, as attributes (a train step donating its 10 MiB carry).
STATS = SimpleNamespace(
    argument_size_in_bytes=12 * MIB,  # carry 10 MiB + batch 2 MiB
    output_size_in_bytes=10 * MIB,  # the new carry
    alias_size_in_bytes=10 * MIB,  # written into the donated carry: counted in both above
    temp_size_in_bytes=30 * MIB,
    generated_code_size_in_bytes=1 * MIB,
    host_temp_size_in_bytes=0,
)


def test_compiled_memory_counts_donated_buffers_once():
    found = compiled_memory(analysis_dict(STATS))
    # 12 + 10 - 10 + 30 + 1 = 43 MiB
    assert value_of(found) == 43 * MIB
    assert found["temp_bytes"] == 30 * MIB and found["alias_bytes"] == 10 * MIB
    assert "memory analysis" in found["method"]


def test_analysis_shapes_by_release():
    as_dict = {name: getattr(STATS, name) for name in vars(STATS)}
    assert analysis_dict([as_dict]) == analysis_dict(STATS)  # a one-element list of dicts
    assert analysis_dict(None) is None and analysis_dict(SimpleNamespace()) is None
    assert compiled_memory(None, "memory_analysis() failed: x")["unavailable"] == (
        "memory_analysis() failed: x"
    )


def test_runtime_peak_of_the_first_cell_is_its_own():
    found = runtime_peak([900 * MIB], [None], "jax Device.memory_stats() on gpu")
    assert value_of(found) == 900 * MIB and "first cell" in found["method"]


def test_a_small_cell_after_a_large_one_does_not_report_the_large_ones_peak():
    # cell 1 peaked at 900 MiB; cell 2 needs 50 MiB: the lifetime peak is still 900 MiB
    found = runtime_peak([900 * MIB], [900 * MIB], "jax")
    assert value_of(found) is None
    assert "set by an earlier cell" in found["unavailable"]
    assert "device_memory_bytes" in found["unavailable"]


def test_a_peak_that_grew_during_the_cell_is_the_cells():
    found = runtime_peak([1200 * MIB, 800 * MIB], [900 * MIB, 800 * MIB], "jax")
    assert value_of(found) == 1200 * MIB and "grew during this cell" in found["method"]


def test_no_memory_stats_says_so():
    assert (
        "reports no peak_bytes_in_use" in runtime_peak([None], [None], "jax on cpu")["unavailable"]
    )
