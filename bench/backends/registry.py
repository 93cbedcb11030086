"""The backends bench knows: one line each, name -> the package that holds it.

Adding a backend is a package under ``bench/backends/`` (see ``protocol``) and a line here.
Importing this module costs nothing: ``names()`` imports no package, ``spec()`` imports a
backend's ``__init__`` only (no framework), ``load()`` its framework-side module.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from bench.backends.protocol import Backend, BackendSpec

BACKENDS: dict[str, str] = {
    "jax": "bench.backends.jax",
    "tensorflow": "bench.backends.tensorflow",
    "litert": "bench.backends.litert",
}


class UnknownBackend(ValueError):
    """A framework name no backend is registered under."""

    def __init__(self, name: str):
        super().__init__(f"unknown framework {name!r}; expected one of: {', '.join(names())}")
        self.name = name


def names() -> tuple[str, ...]:
    """Every registered framework name, in registry order (the scenario's choices)."""
    return tuple(BACKENDS)


def _package(name: str) -> str:
    try:
        return BACKENDS[name]
    except KeyError:
        raise UnknownBackend(name) from None


def spec(name: str) -> BackendSpec:
    """The backend's declared facts, without importing its framework."""
    return cast("BackendSpec", importlib.import_module(_package(name)).SPEC)


def find(name: str) -> BackendSpec | None:
    """``spec(name)``, or None for a name no backend has (records written by another bench)."""
    return spec(name) if name in BACKENDS else None


def module(name: str, part: str) -> str:
    """The dotted name of one module of the backend's package (``selfcheck``), unimported."""
    return f"{_package(name)}.{part}"


def load(name: str) -> Backend:
    """The backend's worker-side module; imports its framework (``ImportError`` when absent)."""
    return cast("Backend", importlib.import_module(f"{_package(name)}.backend"))
