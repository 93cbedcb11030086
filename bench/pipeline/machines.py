"""Machine kinds: which machine each device's cells run on when a sweep is a pipeline.

A scenario says ``device: gpu``; a cluster needs to know *which* GPU, how many, and how much
CPU and memory to request. A machines file says it once per device, and may name several kinds
for one device (``gpu: [L4 x1, A100 x1]``): each kind gets its own tasks, so one pipeline
compares machines that no single host has.

    cpu: {cpu: 4, memory: 16G}
    gpu:
      - {name: l4x4, accelerator: NVIDIA_L4, count: 4, cpu: 16, memory: 64G}
    tpu:
      - {name: v5e-2x4, accelerator: tpu-v5-lite-podslice, topology: 2x4, count: 8}

For GPUs ``accelerator`` is what KFP's ``set_accelerator_type`` takes (``NVIDIA_L4`` on Vertex
AI; ``nvidia.com/gpu`` plus a ``node_selector`` on a GKE cluster). For TPUs it is the GKE node
label ``cloud.google.com/gke-tpu-accelerator`` and ``topology`` the label
``cloud.google.com/gke-tpu-topology``; the task then asks for ``count`` ``google.com/tpu``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bench import limits
from bench.limits import InputFileError, load_yaml, read_text_file

DEVICES = ("cpu", "gpu", "tpu")
TPU_RESOURCE = "google.com/tpu"  # the GKE device plugin's resource name for TPU chips
TPU_ACCELERATOR_LABEL = "cloud.google.com/gke-tpu-accelerator"
TPU_TOPOLOGY_LABEL = "cloud.google.com/gke-tpu-topology"
# What KFP accepts for memory: a number, or one with a Kubernetes unit suffix.
MEMORY = re.compile(r"([0-9]{1,20})(E|Ei|P|Pi|T|Ti|G|Gi|M|Mi|K|Ki)?")
UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
UNITS |= {f"{k}i": 2 ** (10 * i) for i, k in enumerate(("K", "M", "G", "T", "P", "E"), 1)}
# A machine's memory: at least what a Python process with a framework needs, at most more than
# the largest cloud machines have (about 32 TiB, so 64 TiB); outside, the file holds a typo.
MIN_MEMORY_BYTES, MAX_MEMORY_BYTES = 2**28, 2**46
# An accelerator as KFP and GKE name it: NVIDIA_L4, nvidia.com/gpu, tpu-v5-lite-podslice.
ACCELERATOR = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,99}")
# A Kubernetes label key or value (node_selector): letters, digits and . _ - / only.
LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._/-]{0,251}[A-Za-z0-9])?")


class MachinesError(ValueError):
    """Every problem in one machines file; ``str()`` lists one per line."""


class Machine(BaseModel):
    """One kind of machine a device's cells run on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("", pattern=r"^([a-z0-9][a-z0-9-]{0,30})?$")
    accelerator: str | None = None
    count: limits.count(256) = 1
    topology: str | None = Field(None, pattern=r"^[0-9]+(x[0-9]+){1,2}$")
    # Requests equal limits: a pod that gets exactly what it asked for shares no CPU with a
    # burstable neighbour (Kubernetes' Guaranteed class), which is what a timing needs.
    cpu: float = Field(4, gt=0, le=1024)
    memory: str = "16G"
    node_selector: dict[str, str] = Field(default_factory=dict)

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str) -> str:
        found = MEMORY.fullmatch(value)
        size = int(found.group(1)) * UNITS[found.group(2) or ""] if found else 0
        if not MIN_MEMORY_BYTES <= size <= MAX_MEMORY_BYTES:
            raise ValueError("a Kubernetes quantity such as 16G, 64Gi or 512M, from 256Mi to 64Ti")
        return value

    @field_validator("accelerator")
    @classmethod
    def _accelerator(cls, value: str | None) -> str | None:
        if value is not None and not ACCELERATOR.fullmatch(value):
            raise ValueError(
                "an accelerator name as KFP or GKE spells it, e.g. NVIDIA_L4, nvidia.com/gpu "
                "or tpu-v5-lite-podslice (letters, digits, . _ - /; at most 100)"
            )
        return value

    @field_validator("node_selector")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [
            f"{k}: {v}" for k, v in value.items() if not (LABEL.fullmatch(k) and LABEL.fullmatch(v))
        ]
        if bad:
            raise ValueError(
                f"Kubernetes label keys and values (letters, digits, . _ - /); found {bad[0]!r}"
            )
        return value

    def label(self, device: str) -> str:
        """The kind's name in task names: given, or made from what it asks for."""
        if self.name:
            return self.name
        if device == "cpu":
            return f"cpu{self.cpu:g}"
        acc = re.sub(r"[^a-z0-9]+", "-", (self.accelerator or device).lower()).strip("-")
        # A TPU slice is named by its shape (2x4); a GPU machine by how many it has.
        return f"{acc[:24]}-{self.topology}" if self.topology else f"{acc[:24]}x{self.count}"


class Machines(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu: list[Machine] = Field(default_factory=lambda: [Machine()])
    gpu: list[Machine] = Field(default_factory=list)
    tpu: list[Machine] = Field(default_factory=list)

    @field_validator("cpu", "gpu", "tpu", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value

    def kinds(self, device: str) -> list[Machine]:
        return list(getattr(self, device))


def chips(topology: str) -> int:
    """Chips in a TPU topology: 2x4 holds 8."""
    n = 1
    for part in topology.split("x"):
        n *= int(part)
    return n


def parse_machines(text: str, where: str) -> Machines:
    try:
        data = load_yaml(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise MachinesError(f"{where}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise MachinesError(
            f"{where}: expected a mapping of devices (cpu, gpu, tpu) to machine kinds, "
            f"found a {type(data).__name__}"
        )
    try:
        machines = Machines.model_validate(data)
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            path = "".join(
                f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p))
                for i, p in enumerate(e["loc"])
            )
            what = (
                "unknown key; expected one of: "
                + ", ".join(Machine.model_fields if len(e["loc"]) > 2 else DEVICES)
                if e["type"] == "extra_forbidden"
                else f"got {e.get('input')!r}; expected "
                + e["msg"].removeprefix("Value error, ").replace("Input should be ", "")
            )
            problems.append(f"{where}: {path}: {what}")
        raise MachinesError("\n".join(problems)) from None
    problems = []
    for device in DEVICES:
        for i, kind in enumerate(machines.kinds(device)):
            at = f"{where}: {device}[{i}]"
            if device == "cpu" and (kind.accelerator or kind.topology):
                problems.append(f"{at}: a cpu machine takes no accelerator or topology")
            if device != "cpu" and not kind.accelerator:
                example = "NVIDIA_L4" if device == "gpu" else "tpu-v5-lite-podslice"
                problems.append(f"{at}.accelerator: required for {device} machines, e.g. {example}")
            if device == "tpu" and not kind.topology:
                problems.append(f"{at}.topology: required for tpu machines, e.g. 2x2")
            elif device == "tpu" and kind.topology and chips(kind.topology) != kind.count:
                # A slice of more chips than one host has spans several hosts: that takes a
                # multi-host job (one pod per host), not one task.
                problems.append(
                    f"{at}.count: got {kind.count}; expected the {chips(kind.topology)} chips of "
                    f"topology {kind.topology} (one task is one host: single-host slices only)"
                )
            if device == "gpu" and kind.topology:
                problems.append(f"{at}.topology: only tpu machines have a topology")
        labels = [k.label(device) for k in machines.kinds(device)]
        for label in sorted({x for x in labels if labels.count(x) > 1}):
            problems.append(
                f"{where}: {device}: two machine kinds are both named {label!r}; expected a "
                "different name: for each"
            )
    if problems:
        raise MachinesError("\n".join(problems))
    return machines


def load_machines(path: str | Path | None) -> Machines:
    """The machines file at ``path``; with none, a 4-CPU, 16G machine for CPU cells only."""
    if path is None:
        return Machines()
    try:
        text = read_text_file(path, "a machines file")
    except InputFileError as exc:
        raise MachinesError(str(exc)) from None
    return parse_machines(text, str(path))
