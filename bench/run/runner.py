"""The runner: plans a scenario's cells, groups them by (framework, device), drives one worker
process per group, and streams each record to the run folder as it arrives.

A worker runs one framework only, so TensorFlow and JAX never share a process. The runner never
imports a framework. A cell whose worker hangs past ``measure.timeout_s`` is killed and
recorded as ``timeout``; a worker that dies gets its cell recorded as ``failed`` or ``oom`` with
the reason; either way the sweep goes on with a fresh worker for the group's remaining cells.

Before a group starts, the runner decides what its worker needs to see: on CPUs, as many
virtual devices as the group's largest ``replicas`` asks for; on a legacy TPU node named by
the scenario, the node's health (checked here, through the Cloud TPU API) and its endpoints. In
a multi-host run (``bench.platform.cluster``) every worker gets the cluster settings, and every process's
runner walks the same cells in the same order, so the workers meet in each cell's collectives.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import __version__
from bench.backends import registry
from bench.backends.workload import ENV_CPU_DEVICES, ENV_TPU_RESOLVER
from bench.finite import finite_record
from bench.inputs import verdict
from bench.measure.repeats import merge_repeats
from bench.platform.cluster import Cluster
from bench.platform.environment import collect
from bench.platform.tpu import NodeCheck, check_node, recheck_lost
from bench.run.generate_block import buckets, length_json
from bench.run.scenario import Cell, LoadedScenario, ScenarioError, TpuNode, parse_scenario
from bench.runfolder import (
    FAILED,
    WORKER_LOG,
    ResultsError,
    Run,
    RunWriter,
    load_run,
    open_in_run,
    os_problem,
    utc_now,
)
from bench.serve import protocols
from bench.workloads import registry as workloads
from bench.workloads.cell.message import CellMessage

# Importing TensorFlow takes ~5 s on a small CPU; a TPU runtime can take a minute to attach.
STARTUP_TIMEOUT_S = 300.0
EXIT_OK, EXIT_CELL_FAILED, EXIT_USAGE, EXIT_NOTHING_RAN, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

Events = Callable[..., None]
TpuCheck = Callable[[TpuNode], NodeCheck]
TpuRecheck = Callable[[NodeCheck], str | None]


class WorkerDied(Exception):
    pass


def worker_env(
    framework: str,
    device: str,
    cpu_devices: int = 0,
    cluster: Cluster | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The worker's environment: what its backend declares it needs (``BackendSpec.env`` and
    ``device_env``). ``cpu_devices`` > 1 splits the host CPU into that many virtual devices
    (BENCH_CPU_DEVICES, and the framework's own variable where it has one), unless the user
    already chose a count."""
    spec = registry.spec(framework)
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # tf.data may log in any worker
    env.update(spec.env)
    env.update(spec.device_env.get(device, {}))
    if device == "cpu" and cpu_devices > 1:
        count = str(cpu_devices)
        if spec.cpu_devices_env:
            count = env.setdefault(spec.cpu_devices_env, count)
        env.setdefault(ENV_CPU_DEVICES, count)
    if cluster is not None:
        env.update(cluster.to_env())
    env.update(extra or {})
    return env


def worker_batches(framework: str, cells: list[Cell]) -> list[list[Cell]]:
    """The cells of one (framework, device) group, cut into the runs of one worker each.

    A backend that declares ``worker_per_replica_count`` gets a fresh worker per replica count.
    TensorFlow does: its collective all-reduce keys groups by a per-process counter, so a second
    MirroredStrategy over a different number of devices in the same process joins a group of
    the wrong size and aborts every collective after it ("joining a group with size 4, but
    that group has size 2"). JAX has no such state.
    """
    if not registry.spec(framework).worker_per_replica_count:
        return [cells]
    by_replicas: dict[str, list[Cell]] = {}
    for cell in cells:
        by_replicas.setdefault(str(cell.key.replicas), []).append(cell)
    return list(by_replicas.values())


def cpu_devices_for(cells: Iterable[Cell], processes: int = 1) -> int:
    """Virtual CPU devices per process for a CPU group: enough for its largest numeric
    ``replicas`` (spread over the processes); "all" then means that many."""
    counts = [c.key.replicas for c in cells]
    largest = max((n for n in counts if isinstance(n, int)), default=1)
    return max(1, -(-largest // processes))


def oom_kills() -> int | None:
    """The cgroup's OOM-kill counter, to tell an OOM kill from any other SIGKILL."""
    try:
        for line in Path("/sys/fs/cgroup/memory.events").read_text().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


class WorkerProcess:
    def __init__(
        self,
        framework: str,
        device: str,
        log_path: Path,
        python: str = sys.executable,
        env: dict[str, str] | None = None,
    ):
        self.log = open_in_run(log_path, "ab")  # closed in close(); never through a link
        self.log.write(f"\n=== worker {framework}/{device} started {utc_now()}\n".encode())
        self.log.flush()
        self.log_path = log_path
        self.proc = subprocess.Popen(
            [python, "-m", "bench.run.worker", framework, device],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=env if env is not None else worker_env(framework, device),
            start_new_session=True,  # Ctrl-C reaches the runner only; it stops the worker
        )
        self._buffer = b""

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps(message) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError as exc:
            raise WorkerDied from exc

    def receive(self, timeout: float) -> dict[str, Any]:
        """The next message; TimeoutError past ``timeout``; WorkerDied at end of output."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                if not selector.select(remaining):
                    continue
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise WorkerDied
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        try:
            self.send({"type": "stop"})
            self.proc.wait(timeout=30)
        except (WorkerDied, subprocess.TimeoutExpired):
            self.kill()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream:
                stream.close()
        self.log.close()

    def log_tail(self, lines: int = 1) -> str:
        try:
            with open_in_run(self.log_path) as f:
                size = os.fstat(f.fileno()).st_size
                f.seek(max(0, size - 65536))  # the tail is all we show
                text = f.read().decode(errors="replace").strip().splitlines()
        except (OSError, ResultsError):
            return ""
        useful = [t for t in text if t.strip() and not t.startswith("===")]
        return " | ".join(useful[-lines:])[-300:]


def death_reason(returncode: int | None, oom_delta: int, log_tail: str) -> tuple[str, str]:
    """Status and one-line reason for a worker that stopped answering mid-cell."""
    tail = f"; last log line: {log_tail}" if log_tail else ""
    if returncode is not None and returncode < 0:
        name = signal.Signals(-returncode).name
        if returncode == -signal.SIGKILL and oom_delta > 0:
            return "oom", "worker killed by the kernel OOM killer (out of host memory)"
        return "failed", f"worker killed by {name}{tail}"
    return "failed", f"worker exited with code {returncode} mid-cell{tail}"


def cell_message(
    loaded: LoadedScenario, cell: Cell, cluster: Cluster | None = None, run_dir: Path | None = None
) -> CellMessage:
    s = loaded.scenario
    return CellMessage(
        cell_id=cell.cell_id,
        key=cell.key,
        model_args=s.model_args,
        seed=s.seed,
        measure=s.measure.model_dump(),
        optimizer=s.optimizer.model_dump(),
        data=s.data.model_dump(),
        pricing=s.pricing or {},
        slo=s.slo.model_dump() if s.slo is not None else None,
        endpoints={name: e.model_dump() for name, e in s.endpoints.items()},
        generate=generate_message(loaded, cell),
        # Where a cell keeps files beside its record (profiles/, parity/, litert/).
        run_dir=str(run_dir.resolve()) if run_dir is not None else None,
        cluster=cluster.describe() if cluster else None,
        plugins=plugins(s, cell),
    )


def generate_message(loaded: LoadedScenario, cell: Cell) -> dict[str, Any]:
    """What a generate cell needs of the scenario's generate block: lengths as JSON, its
    prompt buckets, and the trace's rows (the worker never reads the scenario's files)."""
    if cell.key.workload != "generate":
        return {}
    block = loaded.scenario.generate
    return {
        **block.model_dump(exclude={"prompt_tokens", "output_tokens", "prompt_buckets"}),
        "prompt_tokens": length_json(block.prompt_tokens),
        "output_tokens": length_json(block.output_tokens),
        "prompt_buckets": buckets(block, loaded.trace, int(cell.key["cache_len"])),
        "trace_rows": loaded.trace,
    }


def plugins(scenario: Any, cell: Cell) -> tuple[str, ...]:
    """The modules of the plug-ins a cell uses (its workload, its endpoint's protocol) that a
    worker would not find by name: it imports them before measuring the cell."""
    found = [workloads.spec(cell.key.workload)]
    endpoint = scenario.endpoints.get(cell.key.get("endpoint") or "")
    if endpoint is not None and (protocol := protocols.find(endpoint.protocol)) is not None:
        found.append(protocol)  # the openai-* protocols are no plug-ins: none is None
    builtin = {*workloads.BUILTIN.values(), *protocols.BUILTIN.values()}
    return tuple(dict.fromkeys(f.module for f in found if f.module not in builtin))


def runner_record(cell: Cell, status: str, reason: str) -> dict[str, Any]:
    return {
        "cell_id": cell.cell_id,
        "key": cell.key.to_dict(),
        "status": status,
        "reason": reason,
        "flags": [],
        "metrics": {},
        "finished_at": utc_now(),
    }


@dataclass
class RunOutcome:
    run: Run
    status: str  # complete | interrupted | failed
    exit_code: int


def exit_code(statuses: Iterable[str]) -> int:
    counts = Counter(statuses)
    if any(counts[s] for s in FAILED):
        return EXIT_CELL_FAILED
    if counts and counts["skipped"] == sum(counts.values()):
        return EXIT_NOTHING_RAN
    return EXIT_OK


class Runner:
    def __init__(
        self,
        loaded: LoadedScenario,
        writer: RunWriter,
        on_event: Events,
        python: str,
        cluster: Cluster | None = None,
        tpu_check: TpuCheck = check_node,
        tpu_recheck: TpuRecheck = recheck_lost,
        recorded: dict[str, dict[str, Any]] | None = None,
    ):
        self.loaded = loaded
        self.writer = writer
        self.on_event = on_event
        self.python = python
        self.cluster = cluster
        self.tpu_check = tpu_check
        self.tpu_recheck = tpu_recheck
        self.node: NodeCheck | None = None
        self.worker: WorkerProcess | None = None
        # Every record of this run so far (a resumed run starts with the stored ones): the
        # input_bound rule compares a cell with its synthetic twin, whichever finished first.
        self.recorded: dict[str, dict[str, Any]] = dict(recorded or {})

    def run(self, cells: list[Cell]) -> None:
        groups: dict[tuple[str, str], list[Cell]] = {}
        for cell in cells:
            groups.setdefault(cell.group, []).append(cell)
        for (framework, device), whole in groups.items():
            blocked = self._blocked(framework, device)
            if blocked is not None:
                for cell in whole:
                    self._finish(runner_record(cell, *blocked))
                continue
            # Virtual CPU devices from the whole group, so "all" means the same in each worker.
            env = self._env(framework, device, whole)
            for group in worker_batches(framework, whole):
                self._run_group(framework, device, group, env)

    def _run_group(
        self, framework: str, device: str, group: list[Cell], env: dict[str, str]
    ) -> None:
        repeats = self.loaded.scenario.measure.repeats
        if repeats == 1:
            pending = list(group)
            while pending:
                self._run_worker(framework, device, pending, self._finish, env)
                if pending and self._node_lost(framework, device, pending):
                    break
            return
        for cell in group:
            # Each repeat in a fresh process: that is what shows between-process variance.
            records: list[dict[str, Any]] = []
            for _ in range(repeats):
                self._run_worker(framework, device, [cell], records.append, env)
            self._finish(merge_repeats(records))

    def _blocked(self, framework: str, device: str) -> tuple[str, str] | None:
        """(status, reason) when no worker should start for this group: its TPU node is not
        usable, or its backend cannot drive a legacy node (JAX)."""
        spec = self.loaded.scenario.tpu
        if device != "tpu" or spec is None:
            return None
        cannot = registry.spec(framework).no_tpu_node
        if cannot:
            return "skipped", cannot
        if self.node is None:
            self.node = self.tpu_check(spec)
            env = self.writer.meta["environment"]
            env["tpu_node"] = self.node.describe()
            self.writer.update()
            self.on_event("tpu_node", node=self.node)
        if not self.node.usable:
            return self.node.status, self.node.reason
        return None

    def _node_lost(self, framework: str, device: str, pending: list[Cell]) -> bool:
        """After a worker was lost on a TPU node: if the node itself is gone (preempted), fail
        the group's remaining cells with that reason instead of restarting workers at it."""
        if device != "tpu" or self.node is None or not self.node.usable:
            return False
        lost = self.tpu_recheck(self.node)
        if lost is None:
            return False
        self.node.status, self.node.reason = "failed", lost
        while pending:
            self._finish(runner_record(pending.pop(0), "failed", lost))
        return True

    def _env(self, framework: str, device: str, group: list[Cell]) -> dict[str, str]:
        processes = self.cluster.num_processes if self.cluster else 1
        extra: dict[str, str] = {}
        if device == "tpu" and self.node is not None and self.node.usable:
            extra[ENV_TPU_RESOLVER] = json.dumps(self.node.resolver_target())
            if self.node.accelerator_type:
                # The TF backend names TPUs from it, as on a TPU VM (bench.platform.tpu.device_name).
                extra["TPU_ACCELERATOR_TYPE"] = self.node.accelerator_type
        return worker_env(framework, device, cpu_devices_for(group, processes), self.cluster, extra)

    def finish(self, record: dict[str, Any]) -> None:
        """Record a cell's result: judged, appended to the run folder, announced."""
        self._finish(record)

    def _finish(self, record: dict[str, Any]) -> None:
        record = verdict.apply(finite_record(record), self.recorded.values())
        self.writer.append_cell(record)
        self.recorded[record["cell_id"]] = record
        self.on_event("cell_done", record=record)
        # A synthetic cell that arrives after its numpy/tfdata twins: judge those again and
        # append their corrected records (the last record of a cell wins).
        for updated in verdict.rejudge(record, self.recorded.values()):
            self.writer.append_cell(updated)
            self.recorded[updated["cell_id"]] = updated
            self.on_event("cell_updated", record=updated)

    def _run_worker(
        self,
        framework: str,
        device: str,
        pending: list[Cell],
        emit: Callable[[dict], None],
        env: dict[str, str] | None = None,
    ) -> None:
        """Run cells from ``pending`` (removing them, handing each record to ``emit``) until it
        is empty or the worker is lost."""
        worker = self.start_worker(framework, device, pending, emit, env)
        if worker is None:
            return
        try:
            if self.feed(worker, pending, emit):
                worker.stop()
        finally:
            worker.close()
            self.worker = None

    def start_worker(
        self,
        framework: str,
        device: str,
        pending: list[Cell],
        emit: Callable[[dict], None],
        env: dict[str, str] | None = None,
    ) -> WorkerProcess | None:
        """A ready worker for (framework, device); None when it did not start, after recording
        every cell of ``pending`` as failed with the reason. ``bench tune`` keeps one across
        several ``feed`` calls."""
        log = self.writer.path / WORKER_LOG.format(framework=framework, device=device)
        self.writer.check()  # no link where this worker and its cells write
        try:
            worker = WorkerProcess(framework, device, log, self.python, env)
        except OSError as exc:
            raise ResultsError(f"{log}: {os_problem(exc, 'open')}") from None
        self.worker = worker
        try:
            ready = worker.receive(STARTUP_TIMEOUT_S)
        except (TimeoutError, WorkerDied):
            reason = (
                f"{framework} worker for {device} did not start: {worker.log_tail() or 'no output'}"
            )
            while pending:
                emit(runner_record(pending.pop(0), "failed", reason))
            worker.close()
            self.worker = None
            return None
        frameworks = self.writer.meta["environment"]["frameworks"]
        frameworks.setdefault(framework, {})[device] = {
            k: v for k, v in ready.items() if k != "type"
        }
        self.writer.update()
        self.on_event("worker_ready", framework=framework, device=device, ready=ready)
        return worker

    def feed(
        self, worker: WorkerProcess, pending: list[Cell], emit: Callable[[dict], None]
    ) -> bool:
        """Send ``worker`` the cells of ``pending`` one by one (removing each, handing its
        record to ``emit``). False when the worker was lost (killed on a timeout, or died): its
        cell is recorded with the reason and the worker must not be used again."""
        from bench.measure.reference import cell_kernel

        while pending:
            cell = pending[0]
            self.on_event("cell_start", cell=cell)
            kills_before = oom_kills()
            machine = cell_kernel()  # the worker waits for its cell: the machine is quiet
            self.writer.check()
            try:
                worker.send(
                    cell_message(self.loaded, cell, self.cluster, self.writer.path).to_dict()
                )
                reply = worker.receive(self.loaded.scenario.measure.timeout_s)
            except TimeoutError:
                worker.kill()
                limit = self.loaded.scenario.measure.timeout_s
                emit(
                    runner_record(
                        pending.pop(0),
                        "timeout",
                        f"no result within measure.timeout_s={limit:g}s; worker killed",
                    )
                )
                return False
            except WorkerDied:
                returncode = worker.proc.wait()
                kills_after = oom_kills()
                delta = (
                    (kills_after - kills_before) if None not in (kills_before, kills_after) else 0
                )
                status, reason = death_reason(returncode, delta, worker.log_tail())
                emit(runner_record(pending.pop(0), status, reason))
                return False
            pending.pop(0)
            record = reply["record"]
            record.setdefault("metrics", {})["machine_matmul_s"] = machine
            emit(record)
        return True

    def abort(self) -> None:
        if self.worker is not None:
            self.worker.close()


def time_reference_kernel(writer: RunWriter, moment: str, **extra: Any) -> None:
    """Time the fixed numpy reference kernel and keep it in run.json under ``moment``.

    The gate compares these timings between baseline and candidate, and between the start and
    the end of one run, to tell a slower machine from slower code (bench.measure.reference).
    """
    from bench.measure.reference import METHOD, VERSION, run_reference_kernel

    entry = writer.meta.get("reference_kernel") or {"version": VERSION, "method": METHOD}
    entry[moment] = {"at": utc_now(), **run_reference_kernel(), **extra}
    writer.update(reference_kernel=entry)


def _drive(
    loaded: LoadedScenario,
    writer: RunWriter,
    cells: list[Cell],
    on_event: Events,
    python: str,
    cluster: Cluster | None = None,
    recorded: dict[str, dict[str, Any]] | None = None,
    before: dict[str, Any] | None = None,
) -> RunOutcome:
    """Run ``cells`` into ``writer``'s folder. ``before``: what run.json says if the folder
    refuses a write part way (a link planted where bench writes): the run stops as it was before
    this command (a new run: interrupted), to be resumed once the folder is fixed."""
    from bench.measure.reference import cpu_snapshot, others_cpu

    runner = Runner(loaded, writer, on_event, python, cluster, recorded=recorded)
    status = "complete"
    cpu_before = cpu_snapshot()
    try:
        # A resumed run keeps its first start: its start and end then span the break, and a
        # machine that changed across it is worth knowing about.
        if "start" not in writer.meta.get("reference_kernel", {}):
            time_reference_kernel(writer, "start")
        runner.run(cells)
        time_reference_kernel(writer, "end", host_cpu=others_cpu(cpu_before, cpu_snapshot()))
    except KeyboardInterrupt:
        status = "interrupted"
        runner.abort()
    except ResultsError:
        runner.abort()
        try:
            with contextlib.suppress(ResultsError):  # run.json itself may be the link
                writer.update(**(before or {"status": "interrupted", "finished_at": utc_now()}))
        finally:
            writer.close()
        raise
    except BaseException:
        runner.abort()
        try:
            writer.finish("failed")
        finally:
            writer.close()  # the lock goes with the writer, however the run ended
        raise
    writer.finish(status)
    run = load_run(writer.path)
    code = (
        EXIT_INTERRUPTED
        if status == "interrupted"
        else exit_code(r["status"] for r in run.cells.values())
    )
    return RunOutcome(run, status, code)


def multihost_meta(cluster: Cluster | None) -> dict[str, Any] | None:
    if cluster is None:
        return None
    role = (
        "primary: its cells hold every process's figures (hosts) and the aggregate"
        if cluster.is_primary
        else "secondary: its cells hold this process's own figures; process 0 holds the merge"
    )
    return {**cluster.describe(), "role": role}


def start_run(
    loaded: LoadedScenario,
    results_dir: Path,
    on_event: Events,
    python: str = sys.executable,
    cluster: Cluster | None = None,
    only: list[str] | None = None,
) -> RunOutcome:
    """Run ``loaded``'s cells into a new run folder; ``only``: the ids ``bench run --only``
    chose (``loaded.cells`` already holds just those), kept so a resume runs just those."""
    meta = {
        "bench_version": __version__,
        "command": sys.argv,
        "scenario": {
            "name": loaded.scenario.name,
            "path": loaded.path,
            "sha256": loaded.sha256,
            "overrides": list(loaded.overrides),
            "text": loaded.text,
            **({"only": list(only)} if only else {}),
        },
        "cells_planned": [c.cell_id for c in loaded.cells],
        "environment": collect(
            Path(loaded.path).resolve().parent,
            [p for name in registry.names() for p in registry.spec(name).packages],
        ),
        "multihost": multihost_meta(cluster),
    }
    writer = RunWriter.create(results_dir, meta)
    on_event("start", run_id=writer.meta["run_id"], path=writer.path, cells=loaded.cells)
    return _drive(loaded, writer, loaded.cells, on_event, python, cluster)


@dataclass
class ResumePlan:
    """What ``bench run --resume`` would do: the run as recorded and the cells still to run."""

    run: Run
    loaded: LoadedScenario
    todo: list[Cell]


def plan_resume(run_dir: Path, retry_failed: bool = False) -> ResumePlan:
    """Read ``run_dir`` (writing nothing) and list the cells a resume would run: those with no
    record yet, and failed ones if asked. ResultsError for a run that cannot be resumed."""
    run = load_run(run_dir)
    return _plan(run, retry_failed)


def _plan(run: Run, retry_failed: bool) -> ResumePlan:
    scenario = run.meta["scenario"]
    where = f"{run.path / 'run.json'}: scenario.text"
    if not isinstance(scenario.get("text"), str):
        raise ResultsError(f"{where}: missing; this run cannot be resumed")
    try:
        loaded = parse_scenario(
            scenario["text"],
            scenario.get("path") or "scenario",
            tuple(scenario.get("overrides") or ()),
        )
    except ScenarioError as exc:
        problems = "; ".join(exc.problems)
        raise ResultsError(f"{where}: no longer a valid scenario ({problems})") from None
    redo = set(FAILED) if retry_failed else set()
    # A run started with `bench run --only` runs those cells of the scenario, resumed too.
    only = scenario.get("only")
    todo = [
        c
        for c in loaded.cells
        if (not only or c.cell_id in only)
        and (c.cell_id not in run.cells or run.cells[c.cell_id]["status"] in redo)
    ]
    return ResumePlan(run, loaded, todo)


def resume_run(
    run_dir: Path, on_event: Events, retry_failed: bool = False, python: str = sys.executable
) -> RunOutcome:
    """Run the cells of ``run_dir`` that have no record yet (and failed ones if asked).

    The folder is locked first, then read: a second resumer is refused before it measures
    anything. A run with nothing left to run is returned as it is, with nothing written.
    """
    run_dir = Path(run_dir).resolve()  # a link given on the command line, resolved once
    plan = plan_resume(run_dir, retry_failed)
    if not plan.todo:
        return RunOutcome(
            plan.run, "complete", exit_code(r["status"] for r in plan.run.cells.values())
        )
    writer, run = RunWriter.reopen(run_dir)
    try:
        for note in writer.notes:
            on_event("repaired", message=note)
        plan = _plan(run, retry_failed)  # as the run is now, under the lock
        if not plan.todo:
            writer.close()
            return RunOutcome(run, "complete", exit_code(r["status"] for r in run.cells.values()))
        before = {k: run.meta.get(k) for k in ("status", "finished_at", "resumed_at")}
        writer.resume()
    except BaseException:
        writer.close()
        raise
    on_event("start", run_id=run.run_id, path=writer.path, cells=plan.todo, resumed=len(run.cells))
    return _drive(
        plan.loaded, writer, plan.todo, on_event, python, recorded=run.cells, before=before
    )
