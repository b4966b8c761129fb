"""What the Ray executor runs on the nodes: the probe of each node, and the task of each unit.

Both resolve inputs with the same functions, so a node the probe accepts is a node where a unit
finds the same things:

* the BERT: :func:`bert_spec` turns what the driver resolved back into what the user named (a
  directory path, or the hub name behind a snapshot of the driver's Hugging Face cache), and
  :func:`node_bert` resolves that name on the node (``text_encoder.resolve_pretrained``, its
  tokenizer checked), in the node's own cache;
* the feature files: each must exist on the node with the fingerprint the driver planned with;
* the packages: :data:`PINNED` versions must be the driver's.

A unit also records what it ran on (:func:`node_facts`: host, GPU model, NVIDIA driver, CUDA and
cuDNN versions, packages, the fingerprint of the feature file it read) in its training and
evaluation records (``versions``), and checks them against the driver's plan before it trains.

Test hooks (``$DAR_MMSA_TEST_HOOKS`` = a folder, in the environment Ray's workers start with): a
file ``kill-once-<run_id>`` there makes that unit's worker exit when its second evaluation starts
(the first is stored) and removes the file; ``kill-always-<run_id>``, as each attempt starts;
``probe-elsewhere`` makes the storage probe write to a private folder, as on a node that does not
mount the output folder; ``lock-error`` makes the probe's lock check fail as on a mount without
locks (``ENOLCK``); ``node-data-root`` (two lines: a folder, another folder) makes this node read
feature files under the first from the second, as a node with its own copy at the same path.
"""
from __future__ import annotations

import errno
import os
import socket
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

from ...errors import DarMmsaError

HOOKS_ENV = "DAR_MMSA_TEST_HOOKS"
PINNED = ("python", "torch", "transformers", "numpy", "MMSA", "dar_mmsa")


def _hook(name: str) -> Optional[Path]:
    folder = os.environ.get(HOOKS_ENV)
    path = Path(folder) / name if folder else None
    return path if path is not None and path.exists() else None


def _enter(cwd: str) -> None:
    """Work in the driver's folder where this node has it, so relative paths mean the same."""
    if os.path.isdir(cwd):
        os.chdir(cwd)


# ---------------------------------------------------------------------------- inputs, as a unit sees them
def bert_spec(resolved: Optional[str]) -> Optional[str]:
    """What to resolve on a node for the BERT the driver resolved to ``resolved``: the hub name when
    it is a snapshot of a Hugging Face cache (``.../models--org--name/snapshots/<rev>``), else the path."""
    if not resolved:
        return None
    path = Path(resolved)
    repo = path.parent.parent.name
    if path.parent.name == "snapshots" and repo.startswith("models--"):
        return repo[len("models--"):].replace("--", "/")
    return str(resolved)


def node_bert(spec: str) -> str:
    """The local BERT directory ``spec`` names on this node (one-line ``PretrainedError`` if none)."""
    from ...text_encoder import check_tokenizer, resolve_pretrained

    path = resolve_pretrained(spec)
    check_tokenizer(path)
    return path


def node_path(path: str) -> str:
    """Where this node reads ``path`` (itself, except under the ``node-data-root`` test hook)."""
    hook = _hook("node-data-root")
    if hook is None:
        return path
    driver_root, node_root = hook.read_text().splitlines()[:2]
    return node_root + path[len(driver_root):] if path.startswith(driver_root) else path


def feature_problem(path: str, planned: str) -> Optional[str]:
    """Why this node cannot read the feature file ``path`` as planned (fingerprint ``planned``), or None."""
    from ...data.features import fingerprint

    shown, path = path, node_path(path)
    if not os.path.isfile(path):
        return f"cannot see {shown}"
    seen = fingerprint(path)
    if seen != planned:
        return f"has another {shown} (fingerprint {seen[:26]}, the driver planned with {planned[:26]})"
    return None


def version_problem(here: dict, planned: dict) -> Optional[str]:
    differ = [f"{k} {here.get(k)} (driver: {planned.get(k)})" for k in PINNED if here.get(k) != planned.get(k)]
    return f"runs other package versions: {', '.join(differ)}" if differ else None


def node_facts(gpu: bool) -> dict:
    """Host, and with ``gpu`` the model of the GPU this process sees, the NVIDIA driver, CUDA and cuDNN."""
    import torch

    facts = {"host": socket.gethostname()}
    if gpu and torch.cuda.is_available():
        facts.update(gpu=torch.cuda.get_device_name(0), cuda=torch.version.cuda,
                     cudnn=torch.backends.cudnn.version(), nvidia_driver=_nvidia_driver(),
                     bf16=bool(torch.cuda.is_bf16_supported()))
    return facts


def _nvidia_driver() -> Optional[str]:
    try:
        first = Path("/proc/driver/nvidia/version").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    words = [w for w in first.split() if w[:1].isdigit() and "." in w]
    return words[0] if words else first.strip()


# ---------------------------------------------------------------------------- probes
def probe_task(root: str, token: str, features: Dict[str, str], berts: List[str], driver_versions: dict,
               cwd: str) -> dict:
    """On one node: write ``token`` into the output folder, check its locks against the driver's,
    and resolve the feature files and the BERT as a unit will; returns what it found."""
    from .. import locks
    from ..execute import library_versions

    _enter(cwd)
    target = Path(tempfile.mkdtemp()) if _hook("probe-elsewhere") else Path(root)
    name = f".shared-probe-{token}-{socket.gethostname()}-{os.getpid()}"
    out = {"host": socket.gethostname(), "file": name, "problems": []}
    try:
        (target / name).write_text(token)
    except OSError as exc:
        out["error"] = exc.strerror or str(exc)
        return out
    if _hook("lock-error"):
        lock = str(locks.unsupported(Path(root) / ".lock", OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))))
    else:
        lock = locks.probe_coherent(Path(root) / ".lock")
    if lock:
        out["lock"] = lock
    out["problems"] += [p for p in (feature_problem(path, fp) for path, fp in sorted(features.items())) if p]
    for bert in berts:
        try:
            node_bert(bert)
        except DarMmsaError as exc:  # PretrainedError: its one line
            out["problems"].append(f"cannot use the BERT '{bert}' ({' '.join(str(exc).split())})")
    problem = version_problem(library_versions(), driver_versions)
    if problem:
        out["problems"].append(problem)
    return out


def gpu_probe_task(precision: str) -> dict:
    """On one GPU Ray hands out: what it is, and whether ``precision`` runs on it."""
    facts = node_facts(gpu=True)
    if "gpu" not in facts:
        facts["problem"] = "was given a GPU by Ray but torch sees no CUDA device"
    elif precision == "bf16" and not facts["bf16"]:
        facts["problem"] = f"has a GPU without bf16 support ({facts['gpu']}): use --precision fp16 or fp32"
    return facts


# ---------------------------------------------------------------------------- units
def append_log(log_path: Path, line: str, who: str = "") -> None:
    """One ERROR line in a unit's log, outside its run (a log that cannot be written is skipped)."""
    import datetime

    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a") as log:
            now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
            log.write(f"{now} dar_mmsa.benchmark [ERROR] {who or '(' + socket.gethostname() + ')'} {line}\n")
    except OSError:
        pass



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


def count_attempt(store, run_id: str, submission: str) -> int:
    """This attempt's number (1, 2, ...) at a unit submitted as ``submission``: one marker file per
    attempt in the run's folder, created exclusively, so the count holds whatever retried it (Ray's
    retries, its separate out-of-memory retries, a lost node)."""
    folder = store.run_dir(run_id) / "attempts"
    folder.mkdir(parents=True, exist_ok=True)
    number = 1
    while True:
        try:
            os.close(os.open(folder / f"{submission}-{number}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            return number
        except FileExistsError:
            number += 1


def forget_attempts(store, run_id: str, submission: str) -> List[int]:
    """Remove the attempt markers of one submission; returns their numbers."""
    numbers = []
    for marker in (store.run_dir(run_id) / "attempts").glob(f"{submission}-*"):
        numbers.append(int(marker.name.rsplit("-", 1)[1]))
        marker.unlink(missing_ok=True)
    return sorted(numbers)


def run_unit_task(unit, settings, threads: int, cwd: str, submission: str, max_attempts: int,
                  driver_versions: dict):
    """Body of a unit's Ray task: torch threads pinned to the task's CPUs, the attempt counted and
    capped, inputs resolved on this node and checked against the plan, then ``execute.run_unit``."""
    global _WORKER_LOADERS
    import torch

    from ...data.feature_cache import ENV_FEATURE_CACHE, default_cache_root
    from ..execute import LoaderCache, UnitOutcome, failure_message, library_versions, run_unit, unit_log_path
    from ..store import attempt_label

    _enter(cwd)
    number = count_attempt(settings.store, unit.run.run_id, submission)
    log_path = unit_log_path(settings.store, unit.run)
    if number > max_attempts:  # Ray retried past --max-retries (e.g. its own out-of-memory budget)
        cause = f"its worker died on each of {max_attempts} attempt(s) (--max-retries {max_attempts - 1})"
        append_log(log_path, f"{unit.run.title}: {cause}; attempt {number} not started")
        return UnitOutcome(failure=failure_message(unit.run, cause, log_path))
    torch.set_num_threads(threads)
    if _WORKER_LOADERS is None:
        # workers of one host map one copy of each feature file (data/feature_cache.py), in this user's folder
        os.environ.setdefault(ENV_FEATURE_CACHE, str(default_cache_root()))
        _WORKER_LOADERS = LoaderCache(settings.loader_workers, pin_memory=settings.device.type == "cuda")
    versions = dict(library_versions(), **node_facts(gpu=settings.device.type == "cuda"))
    problem = (feature_problem(unit.data["feature_path"], unit.data["fingerprint"])
               or version_problem(versions, driver_versions))
    spec = bert_spec(unit.args.get("pretrained")) if unit.args.get("use_bert") else None
    if spec and not problem:
        try:
            unit.args["pretrained"] = node_bert(spec)  # this node's copy, found as the probe found it
        except DarMmsaError as exc:
            problem = f"cannot use the BERT '{spec}' ({' '.join(str(exc).split())})"
    unit.args["featurePath"] = node_path(str(unit.args["featurePath"]))
    if problem:
        cause = f"node {versions['host']} {problem}; nothing trained"
        append_log(log_path, f"{unit.run.title}: {cause}")
        return UnitOutcome(failure=failure_message(unit.run, cause, log_path))
    versions["feature_fingerprint"] = unit.data["fingerprint"]
    status = _test_kill_status(unit.run.run_id) if os.environ.get(HOOKS_ENV) else (lambda stage: None)
    return run_unit(unit, settings, _WORKER_LOADERS, versions, status, attempt=attempt_label(number))
