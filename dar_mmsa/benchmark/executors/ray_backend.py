"""The Ray executor: each work unit is one Ray task (``ray`` core tasks), on a local Ray started on
this machine's CPUs/GPUs or on a running cluster (``--ray-address``).

Without ``--ray-address`` a new local Ray is started (``address="local"``): never the cluster that
``$RAY_ADDRESS`` or the last ``ray start`` on this host points at.

Before anything is trained, :meth:`RayExecutor.start` checks that some node can hold one run
(``--cpus-per-run``, ``--gpus-per-run``), and one probe task per node (``ray_node.probe_task``;
again in :meth:`RayExecutor.run`, with the units' inputs) checks what a unit there would meet: the output folder is shared (the probe writes a file there and
this driver reads it back), its file locks work and are seen by every node (the probe must find the
driver's lock on the results folder held), every feature file exists with the fingerprint planned
here, the BERT resolves as a unit will resolve it, and the packages are the driver's versions. With
``--gpus-per-run``, one probe per GPU node runs on a GPU Ray hands out and checks the precision
there (never on the driver, which may have no GPU, or one Ray gives to a unit). Any of these
failing is one error line.

Then at most ``jobs`` units are in flight (default: as many as the nodes' resources hold). A task
stores its unit's trainings and evaluations itself, as soon as they exist, in the shared folder;
the driver only reads. A worker that dies (killed, out of memory, node lost) has its task retried
by Ray -- the retry redoes only what is not stored -- and after ``max_retries`` retries in all it is
reported as one failed run, with its log (for out-of-memory kills, Ray's own line: node and
memory), while the grid goes on. Ray counts out-of-memory kills against a separate budget
(``RAY_task_oom_retries``): this driver sets it to ``max_retries``, and every attempt also counts
itself in the run's folder and refuses to start past ``max_retries + 1`` (``ray_node.count_attempt``),
so the cap holds on clusters configured otherwise. A Python exception in a unit is not retried (it
would fail again): it is reported at once, traceback in the run's log.
"""
from __future__ import annotations

import collections
import logging
import math
import os
import re
import uuid
from typing import Dict, Sequence

from ...errors import ConfigError
from ..execute import UnitOutcome, failure_message, library_versions, pending_conditions, unit_log_path
from . import DEFAULT_MAX_RETRIES, BackendOptions, Execution, Executor
from .progress import GridProgress
from .ray_node import HOOKS_ENV, append_log, bert_spec, forget_attempts, gpu_probe_task, probe_task, run_unit_task

LOCAL_OBJECT_STORE_BYTES = 512 * 2**20  # tasks pass small objects only (settings, a unit, its outcome)
PROBE_TIMEOUT_S = 300  # starting a worker on every node, first import of torch and MMSA included
EPS = 1e-9
OOM_RETRIES_ENV = "RAY_task_oom_retries"

__all__ = ["RayExecutor", "HOOKS_ENV"]


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0].strip() if lines else type(exc).__name__


def oom_cause(exc: BaseException) -> str:
    """Ray's out-of-memory message in a few words: the node and its memory use when Ray gives them."""
    text = " ".join(str(exc).split())
    found = re.search(r"Memory on the node \(IP: ([^,]+), ID: (\w+)\) was ([\d.]+\s*\w+) / ([\d.]+\s*\w+)", text)
    if found:
        ip, node, used, total = found.groups()
        return f"out of memory on node {ip} ({node[:8]}): {used} of {total} in use when Ray's memory monitor killed it"
    return f"out of memory: {_first_line(exc)}"


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, options: BackendOptions):
        self.options = options
        self.cpus = options.cpus_per_run if options.cpus_per_run is not None else 1.0
        self.gpus = options.gpus_per_run or 0.0
        self.retries = options.max_retries if options.max_retries is not None else DEFAULT_MAX_RETRIES
        self.jobs = options.jobs
        self._started_ray = False
        self._in_flight: Dict = {}
        self._versions = None

    # ------------------------------------------------------------------ start
    def start(self, settings) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("--backend ray needs Ray, which is not installed: pip install 'dar_mmsa[ray]'") from None
        if not ray.is_initialized():
            self._init(ray)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        self._check_resources(nodes)
        self._versions = library_versions()
        self._probe_nodes(ray, nodes, settings, features={}, berts=[])

    def _init(self, ray) -> None:
        os.environ[OOM_RETRIES_ENV] = str(self.retries)  # read by this driver's core worker, which owns the tasks
        common = dict(log_to_driver=False, logging_level=logging.WARNING)
        address = self.options.ray_address
        try:
            if address:
                ray.init(address=address, **common)
            else:  # "local": a new Ray, whatever $RAY_ADDRESS or an earlier 'ray start' on this host say
                ray.init(address="local", include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                         **common)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {address}" if address else "a local Ray on this machine"
            fix = ("start the cluster with 'ray start --head' on its head node and pass its address to --ray-address"
                   if address else "check 'ray status' and the space in /tmp, or pass --ray-address of a running cluster")
            raise ConfigError(f"cannot start or join {where} ({_first_line(exc)}): {fix}") from None
        self._started_ray = True

    def _check_resources(self, nodes: Sequence[dict]) -> None:
        def slots(node) -> int:
            resources = node.get("Resources", {})
            n = math.floor(resources.get("CPU", 0) / self.cpus + EPS) if self.cpus else math.inf
            if self.gpus:
                n = min(n, math.floor(resources.get("GPU", 0) / self.gpus + EPS))
            return n

        total = sum(slots(n) for n in nodes)
        if not total:
            largest = max(nodes, key=lambda n: n.get("Resources", {}).get("CPU", 0), default={}).get("Resources", {})
            need = f"{self.cpus:g} CPU(s)" + (f" and {self.gpus:g} GPU(s)" if self.gpus else "")
            raise ConfigError(f"no Ray node has {need} for one run (the largest has {largest.get('CPU', 0):g} CPU(s), "
                              f"{largest.get('GPU', 0):g} GPU(s)): lower --cpus-per-run / --gpus-per-run or add nodes")
        self.jobs = min(self.jobs, total) if self.jobs else total

    def _probe_nodes(self, ray, nodes: Sequence[dict], settings, *, features: Dict[str, str], berts) -> None:
        """One probe per node (``ray_node.probe_task``), then one per GPU node on a GPU; one error line."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        def on(node):
            return NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)

        root = settings.store.root
        token = uuid.uuid4().hex
        probe = ray.remote(num_cpus=0, max_retries=1)(probe_task)
        refs = [probe.options(scheduling_strategy=on(n)).remote(str(root), token, features, berts, self._versions,
                                                                os.getcwd()) for n in nodes]
        answers = self._answers(ray, refs)
        readable = {}
        for answer in answers:  # read (and remove) every probe file before judging any
            seen = root / answer["file"]
            try:
                readable[answer["file"]] = seen.read_text() == token
                seen.unlink()
            except OSError:
                readable[answer["file"]] = False
        for answer in answers:
            if "error" in answer or not readable[answer["file"]]:
                why = answer.get("error") or "this machine cannot read what it wrote"
                raise ConfigError(f"output folder {root.absolute()} is not shared with Ray node {answer['host']} "
                                  f"({why}): put --out on storage that every node mounts at the same path (e.g. NFS)")
            if answer.get("lock"):
                raise ConfigError(f"Ray node {answer['host']}: {answer['lock']}")
            if answer["problems"]:
                raise ConfigError(f"Ray node {answer['host']} {'; '.join(answer['problems'])}: put the data and the "
                                  f"BERT on storage every node mounts at the same path (or the same copies on "
                                  f"every node), and install the same packages everywhere")
        if self.gpus:
            gpu_nodes = [n for n in nodes if n.get("Resources", {}).get("GPU", 0) + EPS >= self.gpus]
            gpu_probe = ray.remote(num_cpus=0, num_gpus=self.gpus, max_retries=1)(gpu_probe_task)
            for facts in self._answers(ray, [gpu_probe.options(scheduling_strategy=on(n)).remote(settings.precision)
                                             for n in gpu_nodes]):
                if facts.get("problem"):
                    raise ConfigError(f"Ray node {facts['host']} {facts['problem']}")

    def _answers(self, ray, refs):
        try:
            return ray.get(refs, timeout=PROBE_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise ConfigError(f"the Ray workers did not answer within {PROBE_TIMEOUT_S}s: check the cluster "
                              f"('ray status') and retry") from None
        except ray.exceptions.RayError as exc:
            raise ConfigError(f"the Ray workers cannot run dar_mmsa ({_first_line(exc)}): install the same "
                              f"dar_mmsa, MMSA and torch on every node") from None

    # ------------------------------------------------------------------ run
    def run(self, units: Sequence, settings, *, progress: bool, say) -> Execution:
        import ray

        todo = collections.deque(u for u in units if pending_conditions(settings.store, u.run))
        execution = Execution(self.name, units=len(units), already_done=len(units) - len(todo))
        features = {u.data["feature_path"]: u.data["fingerprint"] for u in todo if u.data}
        berts = sorted({bert_spec(u.args.get("pretrained")) for u in todo if u.args.get("use_bert")} - {None})
        if todo:  # what the units will open, where they will run
            self._probe_nodes(ray, [n for n in ray.nodes() if n.get("Alive")], settings, features=features,
                              berts=berts)
        task = ray.remote(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=self.retries,
                          retry_exceptions=False)(run_unit_task)
        settings_ref = ray.put(settings)
        threads, cwd = self.options.threads, os.getcwd()
        submission = uuid.uuid4().hex[:12]
        with GridProgress(len(units), execution.already_done, enabled=progress, backend=self.name) as bar:
            try:
                while todo or self._in_flight:
                    while todo and len(self._in_flight) < self.jobs:
                        unit = todo.popleft()
                        ref = task.options(name=f"dar_mmsa:{unit.run.run_id}").remote(
                            unit, settings_ref, threads, cwd, submission, self.retries + 1, self._versions)
                        self._in_flight[ref] = unit
                        bar.started()
                    ready, _ = ray.wait(list(self._in_flight), num_returns=1, timeout=1.0)
                    for ref in ready:
                        unit = self._in_flight.pop(ref)
                        execution.record(self._outcome(ray, ref, unit, settings, submission), bar, say)
                    bar.bar.refresh()
            finally:
                for ref in self._in_flight:  # interrupted: stop the units still running
                    ray.cancel(ref, force=True)
                self._in_flight.clear()
            execution.wall_s = bar.wall_s
        return execution

    def _outcome(self, ray, ref, unit, settings, submission: str) -> UnitOutcome:
        try:
            outcome = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # raised outside run_unit's guard (e.g. unpickling the unit)
            cause = f"{type(exc.cause).__name__}: {_first_line(exc.cause)}" if exc.cause else _first_line(exc)
        except ray.exceptions.OutOfMemoryError as exc:
            attempts = forget_attempts(settings.store, unit.run.run_id, submission)
            cause = f"{oom_cause(exc)}; its worker died on each of {len(attempts) or 1} attempt(s)"
        except ray.exceptions.RayError as exc:  # the worker died on every attempt
            attempts = forget_attempts(settings.store, unit.run.run_id, submission)
            cause = f"its worker died on each of {len(attempts) or self.retries + 1} attempt(s): {type(exc).__name__}"
        else:
            forget_attempts(settings.store, unit.run.run_id, submission)
            return outcome
        forget_attempts(settings.store, unit.run.run_id, submission)
        log_path = unit_log_path(settings.store, unit.run)
        append_log(log_path, f"{unit.run.title}: {cause}", who="(driver)")
        return UnitOutcome(failure=failure_message(unit.run, cause, log_path))

    def close(self) -> None:
        if self._started_ray:
            import ray

            ray.shutdown()
            self._started_ray = False
