"""A scenario's cells cut into pipeline tasks: one per group that must run on one kind of machine.

The runner already runs a (framework, device) group in one worker; a pipeline task is that group
on one machine kind from the machines file (``bench.pipeline.machines``), so a device with two
kinds (L4 x1, L4 x4) gives two tasks running the same cells. Pure: no kfp here, so the plan is
tested without it and ``bench pipeline compile`` reports a bad scenario before importing kfp.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.pipeline.machines import Machine, Machines, MachinesError
from bench.run.scenario import LoadedScenario


@dataclass(frozen=True)
class Task:
    """One pipeline task: these cells, on this machine kind."""

    name: str  # unique in the pipeline, a valid KFP task name
    framework: str
    device: str
    machine: Machine
    cells: tuple[str, ...]

    def describe(self) -> dict[str, Any]:
        return {
            "task": self.name,
            "framework": self.framework,
            "device": self.device,
            "machine": self.machine.model_dump(exclude_defaults=True),
            "cells": list(self.cells),
        }


def plan_tasks(loaded: LoadedScenario, machines: Machines, where: str = "machines") -> list[Task]:
    """Tasks in the scenario's cell order; MachinesError when a device has no machine kind."""
    groups: dict[tuple[str, str], list[str]] = {}
    for cell in loaded.cells:
        groups.setdefault(cell.group, []).append(cell.cell_id)
    missing = sorted({device for _, device in groups if not machines.kinds(device)})
    if missing:
        example = {"gpu": "{accelerator: NVIDIA_L4, count: 1}", "tpu": TPU_EXAMPLE}
        raise MachinesError(
            "\n".join(
                f"{where}: {device}: {loaded.path} has device: {device} cells "
                f"({sum(len(ids) for (_, d), ids in groups.items() if d == device)}) and no "
                f"machine kind for them; expected e.g. {device}: {example[device]}"
                for device in missing
            )
        )
    tasks = []
    for (framework, device), ids in groups.items():
        for kind in machines.kinds(device):
            name = f"{framework}-{device}-{kind.label(device)}".replace("_", "-").lower()
            tasks.append(Task(name, framework, device, kind, tuple(ids)))
    return tasks


TPU_EXAMPLE = "{accelerator: tpu-v5-lite-podslice, topology: 2x2, count: 4}"
