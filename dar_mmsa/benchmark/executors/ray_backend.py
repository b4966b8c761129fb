"""The Ray executor: each work unit is one Ray task (``ray`` core tasks), on a local Ray started on
this machine's CPUs/GPUs or on a running cluster (``--ray-address``).

Before anything is trained, :meth:`RayExecutor.start` checks that some node can hold one run
(``--cpus-per-run``, ``--gpus-per-run``), that every node can import dar_mmsa, and that the output
folder is shared: one probe task per node writes a file there and this driver reads it back (the
data root and BERT must be there too). Any of these failing is one error line.

Then at most ``jobs`` units are in flight (default: as many as the nodes' resources hold). A task
stores its unit's trainings and evaluations itself, as soon as they exist, in the shared folder;
the driver only reads. A worker that dies (killed, out of memory, node lost) has its task retried
by Ray up to ``max_retries`` times -- the retry redoes only what is not stored -- and is then
reported as one failed run, with its log, while the grid goes on. A Python exception in a unit is
not retried (it would fail again): it is reported at once, traceback in the run's log.

Test hooks (``$DAR_MMSA_TEST_HOOKS`` = a folder, in the environment Ray's workers start with): a
file ``kill-once-<run_id>`` there makes that unit's worker exit when its second evaluation starts
(the first is stored) and removes the file; ``kill-always-<run_id>``, as each attempt starts;
``probe-elsewhere`` makes the storage probe write to a private folder, as on a node that does not
mount the output folder.
"""
from __future__ import annotations

import collections
import datetime
import logging
import math
import os
import socket
import tempfile
import uuid
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ...errors import ConfigError
from ..execute import UnitOutcome, failure_message, pending_conditions, unit_log_path
from . import DEFAULT_MAX_RETRIES, BackendOptions, Execution, Executor
from .progress import GridProgress

HOOKS_ENV = "DAR_MMSA_TEST_HOOKS"
LOCAL_OBJECT_STORE_BYTES = 512 * 2**20  # tasks pass small objects only (settings, a unit, its outcome)
PROBE_TIMEOUT_S = 300  # starting a worker on every node, first import of torch and MMSA included
EPS = 1e-9


def _hook(name: str) -> Optional[Path]:
    folder = os.environ.get(HOOKS_ENV)
    path = Path(folder) / name if folder else None
    return path if path is not None and path.exists() else None


# ---------------------------------------------------------------------------- worker side
_WORKER_LOADERS = None  # one loader cache per worker process, reused by the units it runs


def _test_kill_status(run_id: str):
    once, always = _hook(f"kill-once-{run_id}"), _hook(f"kill-always-{run_id}")
    started = 0

    def status(stage: str) -> None:
        nonlocal started
        started += stage.startswith("eval")
        if always is not None:
            os._exit(1)
        if started == 2 and once is not None and once.exists():
            once.unlink(missing_ok=True)
            os._exit(1)

    return status


def _enter(cwd: str) -> None:
    """Work in the driver's folder where this node has it, so relative paths mean the same."""
    if os.path.isdir(cwd):
        os.chdir(cwd)


def run_unit_task(unit, settings, threads: int, cwd: str) -> UnitOutcome:
    """Body of a unit's Ray task: torch threads pinned to the task's CPUs, then ``execute.run_unit``."""
    global _WORKER_LOADERS
    import torch

    from ..execute import LoaderCache, library_versions, run_unit

    _enter(cwd)
    torch.set_num_threads(threads)
    if _WORKER_LOADERS is None:
        from ...data.feature_cache import ENV_FEATURE_CACHE
        from ..heap import bound_heap

        bound_heap()
        # workers of one host map one copy of each feature file (data/feature_cache.py)
        os.environ.setdefault(ENV_FEATURE_CACHE, os.path.join(tempfile.gettempdir(), "dar_mmsa-feature-cache"))
        _WORKER_LOADERS = LoaderCache(settings.loader_workers, pin_memory=settings.device.type == "cuda")
    status = _test_kill_status(unit.run.run_id) if os.environ.get(HOOKS_ENV) else (lambda stage: None)
    return run_unit(unit, settings, _WORKER_LOADERS, library_versions(), status)


def probe_task(root: str, token: str, paths: List[str], cwd: str) -> dict:
    """On one node: write ``token`` into the output folder; name the input paths this node lacks."""
    _enter(cwd)
    target = Path(tempfile.mkdtemp()) if _hook("probe-elsewhere") else Path(root)
    name = f".shared-probe-{token}-{socket.gethostname()}-{os.getpid()}"
    out = {"host": socket.gethostname(), "file": name, "missing": [p for p in paths if not os.path.exists(p)]}
    try:
        (target / name).write_text(token)
    except OSError as exc:
        out["error"] = exc.strerror or str(exc)
    return out


# ---------------------------------------------------------------------------- driver side
def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0].strip() if lines else type(exc).__name__


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

    # ------------------------------------------------------------------ start
    def start(self, settings) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("--backend ray needs Ray, which is not installed: pip install 'dar_mmsa[ray]'") from None
        if not ray.is_initialized():
            common = dict(log_to_driver=False, logging_level=logging.WARNING)
            address = self.options.ray_address
            try:
                if address:
                    ray.init(address=address, **common)
                else:
                    ray.init(include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE_BYTES, **common)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = f"the Ray cluster at {address}" if address else "a local Ray"
                raise ConfigError(f"cannot start or join {where} ({_first_line(exc)}): start the cluster with "
                                  f"'ray start --head' on its head node and pass its address to --ray-address"
                                  ) from None
            self._started_ray = True
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        self._check_resources(nodes)
        self._check_shared_storage(ray, nodes, settings)

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

    def _check_shared_storage(self, ray, nodes: Sequence[dict], settings) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        root = settings.store.root
        token = uuid.uuid4().hex
        paths = [str(p) for p in (settings.data_root, settings.pretrained) if p]
        probe = ray.remote(num_cpus=0, max_retries=1)(probe_task)
        refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                .remote(str(root), token, paths, os.getcwd()) for n in nodes]
        try:
            answers = ray.get(refs, timeout=PROBE_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise ConfigError(f"the Ray workers did not answer within {PROBE_TIMEOUT_S}s: check the cluster "
                              f"('ray status') and retry") from None
        except ray.exceptions.RayError as exc:
            raise ConfigError(f"the Ray workers cannot run dar_mmsa ({_first_line(exc)}): install the same "
                              f"dar_mmsa, MMSA and torch on every node") from None
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
            if answer["missing"]:
                raise ConfigError(f"Ray node {answer['host']} cannot see {', '.join(answer['missing'])}: put the data "
                                  f"root and the BERT on storage every node mounts at the same path")

    # ------------------------------------------------------------------ run
    def run(self, units: Sequence, settings, *, progress: bool, say) -> Execution:
        import ray

        todo = collections.deque(u for u in units if pending_conditions(settings.store, u.run))
        execution = Execution(self.name, units=len(units), already_done=len(units) - len(todo))
        task = ray.remote(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=self.retries,
                          retry_exceptions=False)(run_unit_task)
        settings_ref = ray.put(settings)
        threads, cwd = self.options.threads, os.getcwd()
        with GridProgress(len(units), execution.already_done, enabled=progress, backend=self.name) as bar:
            try:
                while todo or self._in_flight:
                    while todo and len(self._in_flight) < self.jobs:
                        unit = todo.popleft()
                        ref = task.options(name=f"dar_mmsa:{unit.run.run_id}").remote(unit, settings_ref, threads, cwd)
                        self._in_flight[ref] = unit
                        bar.started()
                    ready, _ = ray.wait(list(self._in_flight), num_returns=1, timeout=1.0)
                    for ref in ready:
                        unit = self._in_flight.pop(ref)
                        execution.record(self._outcome(ray, ref, unit, settings), bar, say)
                    bar.bar.refresh()
            finally:
                for ref in self._in_flight:  # interrupted: stop the units still running
                    ray.cancel(ref, force=True)
                self._in_flight.clear()
            execution.wall_s = bar.wall_s
        return execution

    def _outcome(self, ray, ref, unit, settings) -> UnitOutcome:
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # raised outside run_unit's guard (e.g. unpickling the unit)
            cause = f"{type(exc.cause).__name__}: {_first_line(exc.cause)}" if exc.cause else _first_line(exc)
        except ray.exceptions.RayError as exc:  # the worker died on every attempt
            cause = f"its worker died on each of {self.retries + 1} attempt(s): {type(exc).__name__}"
        log_path = unit_log_path(settings.store, unit.run)
        try:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "a") as log:
                now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
                log.write(f"{now} dar_mmsa.benchmark [ERROR] (driver) {unit.run.title}: {cause}\n")
        except OSError:
            pass
        return UnitOutcome(failure=failure_message(unit.run, cause, log_path))

    def close(self) -> None:
        if self._started_ray:
            import ray

            ray.shutdown()
            self._started_ray = False
