"""The serial executor: every unit in this process, one after another (the default)."""
from __future__ import annotations

from typing import Sequence

import torch

from ...data import feature_cache
from ..execute import LoaderCache, library_versions, pending_conditions, run_unit
from . import BackendOptions, Execution, Executor
from .progress import GridProgress


class SerialExecutor(Executor):
    name = "serial"

    def __init__(self, options: BackendOptions):
        self.options = options

    def run(self, units: Sequence, settings, *, progress: bool, say) -> Execution:
        todo = [u for u in units if pending_conditions(settings.store, u.run)]
        execution = Execution(self.name, units=len(units), already_done=len(units) - len(todo))
        threads = self.options.threads
        previous_threads = torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(threads)
        versions = library_versions()
        loaders_cache = LoaderCache(settings.loader_workers, pin_memory=settings.device.type == "cuda")
        try:
            with GridProgress(len(units), execution.already_done, enabled=progress, backend=self.name) as bar:
                for unit in todo:
                    bar.started()
                    outcome = run_unit(unit, settings, loaders_cache, versions,
                                       lambda stage, title=unit.run.title: bar.show_stage(title, stage))
                    execution.record(outcome, bar, say)
                execution.wall_s = bar.wall_s
        finally:
            torch.set_num_threads(previous_threads)
            loaders_cache.clear()
            feature_cache.forget_kept()  # planning kept the first run's data; unused if that run had nothing to do
        return execution
