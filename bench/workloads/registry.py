"""The workloads bench knows: the built-in ones, one package each, and registered plug-ins.

Adding a workload is a package with a ``SPEC`` (``bench.workloads.spec.WorkloadSpec``) and a
measuring function, then either a line in ``BUILTIN`` or, from outside bench, ``register(SPEC)``
in the module that declares it (a test, a user's package; a package may also list its module
under the ``bench.workloads`` entry-point group). Importing this module costs nothing:
``spec()`` imports a workload's ``__init__`` only, never its measuring module.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any

from bench.workloads.spec import WorkloadSpec

BUILTIN: dict[str, str] = {
    "train": "bench.workloads.train",
    "predict": "bench.workloads.predict",
    "serve": "bench.workloads.serve",
    "generate": "bench.workloads.generate",
}
ENTRY_POINTS = "bench.workloads"

_registered: dict[str, WorkloadSpec] = {}


class UnknownWorkload(ValueError):
    """A workload name no registered workload has."""

    def __init__(self, name: object):
        super().__init__(f"unknown workload {name!r}; expected one of: {', '.join(names())}")
        self.name = name


def register(spec: WorkloadSpec) -> WorkloadSpec:
    """Make ``spec`` known under its name (a plug-in's module calls this at import)."""
    if spec.name in BUILTIN:
        raise ValueError(f"workload {spec.name!r} is built in; choose another name")
    if not spec.module:
        raise ValueError(f"workload {spec.name!r}: module must name the module declaring it")
    _registered[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    _registered.pop(name, None)


def _entry_points() -> dict[str, str]:
    try:
        return {e.name: e.value for e in metadata.entry_points(group=ENTRY_POINTS)}
    except Exception:  # a broken installed distribution must not break bench
        return {}


def names() -> tuple[str, ...]:
    """Every workload name: built-ins first, then entry points, then registered plug-ins."""
    found = dict.fromkeys(BUILTIN)
    found.update(dict.fromkeys(_entry_points()))
    found.update(dict.fromkeys(_registered))
    return tuple(found)


def spec(name: object) -> WorkloadSpec:
    """The workload's declared facts, without importing its measuring code."""
    if isinstance(name, str):
        if name in _registered:
            return _registered[name]
        module = BUILTIN.get(name) or _entry_points().get(name)
        if module is not None:
            found = importlib.import_module(module).SPEC
            assert isinstance(found, WorkloadSpec), f"{module}.SPEC is not a WorkloadSpec"
            return found
    raise UnknownWorkload(name)


def find(name: object) -> WorkloadSpec | None:
    """``spec(name)``, or None for a name no workload has (a record from another bench)."""
    try:
        return spec(name)
    except UnknownWorkload:
        return None


def measure_function(found: WorkloadSpec) -> Any:
    """The function that measures a cell of the workload (imports its measuring module)."""
    module, _, attribute = found.measure.partition(":")
    return getattr(importlib.import_module(module), attribute)


def is_offline(name: object) -> bool:
    """Timed as back-to-back batches; unknown names (another bench's records) count as such."""
    found = find(name)
    return found is None or found.offline


def trains(name: object) -> bool:
    found = find(name)
    return found is not None and found.compiled_pass == "train"


def checks_parity(name: object) -> bool:
    found = find(name)
    return found is not None and found.parity


def adds_section(name: object, anchor: str) -> bool:
    """Whether the workload adds the report section ``anchor`` (``WorkloadSpec.sections``)."""
    found = find(name)
    return found is not None and anchor in found.sections


def declares_axis(name: object, axis: str) -> bool:
    found = find(name)
    return found is not None and axis in found.axes


def fixed_axes(name: object) -> dict[str, Any]:
    found = find(name)
    return dict(found.fixed) if found is not None else {}
