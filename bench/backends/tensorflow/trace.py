"""Read the op events of a ``tf.profiler.experimental`` trace folder.

TensorFlow writes an XSpace protobuf (``plugins/profile/<time>/<host>.xplane.pb``) and ships
its schema: ``tensorflow.tsl.profiler.protobuf.xplane_pb2``, imported here, so reading needs no
package beyond TensorFlow itself (XProf, ``pip install xprof``, is only needed to look at the
trace). Which events are ops:

- on a GPU or TPU, the events of the device's plane (``/device:GPU:0``): its ``XLA Ops`` line
  where there is one, else its ``TensorFlow Ops`` line, else its stream lines (kernels);
- on a CPU, the events XLA's runtime tags with an ``hlo_op`` (``xla: true`` cells) or, without
  XLA, TensorFlow's op events, named ``name:Type`` (``dense/MatMul:MatMul``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bench.measure.breakdown import OpEvent

TF_OP = re.compile(r"^[^:\s]+:[A-Za-z_]\w*$")  # "dense/MatMul:MatMul"
NOT_OP_LINES = ("XLA Modules", "Steps", "Framework", "Source code", "TensorFlow Name Scope")


def xplane_file(folder: Path) -> Path:
    found = sorted(folder.glob("plugins/profile/*/*.xplane.pb"))
    if not found:
        raise FileNotFoundError(f"no .xplane.pb under {folder}/plugins/profile")
    return found[-1]


def read_events(path: Path) -> tuple[list[OpEvent], str]:
    """(op events, what their lines are) from one XSpace file."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    space.ParseFromString(path.read_bytes())
    devices = [p for p in space.planes if p.name.startswith("/device:") and "CPU" not in p.name]
    out: list[OpEvent] = []
    if devices:
        chosen_names: set[str] = set()
        for plane in devices:
            names = [line.name for line in plane.lines]
            prefer = [n for n in ("XLA Ops", "TensorFlow Ops") if n in names]
            wanted = {prefer[0]} if prefer else {n for n in names if not n.startswith(NOT_OP_LINES)}
            chosen_names |= wanted
            for line in plane.lines:
                if line.name in wanted:
                    out += _line_events(plane, line, lambda md, e: md.name)
        kinds = sorted({p.name.removeprefix("/device:").split(":")[0] for p in devices})
        return out, f"{'/'.join(kinds)} device lines ({', '.join(sorted(chosen_names))})"
    hosts = [p for p in space.planes if p.name == "/host:CPU"]
    for plane in hosts:
        hlo_stat = {i for i, m in plane.stat_metadata.items() if m.name == "hlo_op"}
        for line in plane.lines:
            out += _line_events(plane, line, _xla_op(hlo_stat))
    if out:
        return out, "CPU threads running XLA ops"
    for plane in hosts:
        for line in plane.lines:
            out += _line_events(plane, line, lambda md, e: md.name if TF_OP.match(md.name) else "")
    return out, "CPU threads running TensorFlow ops (tf_Compute executor threads)"


def _xla_op(hlo_stat: set[int]) -> Any:
    def name(md: Any, event: Any) -> str:
        stats = list(event.stats) + list(md.stats)
        return md.name if any(s.metadata_id in hlo_stat for s in stats) else ""

    return name


def _line_events(plane: Any, line: Any, op_name: Any) -> list[OpEvent]:
    """The events of one line that ``op_name(metadata, event)`` names (``""``: not an op)."""
    found = []
    key = f"{plane.id}:{plane.name}/{line.id}"
    for event in line.events:
        md = plane.event_metadata[event.metadata_id]
        op = op_name(md, event)
        if not op:
            continue
        start_ps = line.timestamp_ns * 1000 + event.offset_ps
        found.append(OpEvent(key, op, start_ps / 1e6, event.duration_ps / 1e6))
    return found
