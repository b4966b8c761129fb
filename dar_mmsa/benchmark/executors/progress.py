"""The benchmark's progress bar, shared by the executors: units finished / running / failed, and
tqdm's ETA. Units already complete in the store count as done from the start (``initial``), so the
rate -- and the ETA -- come from the units run now."""
from __future__ import annotations

import sys
import time
from typing import Optional


class GridProgress:
    def __init__(self, total: int, done: int, *, enabled: bool, backend: str):
        from tqdm.auto import tqdm

        self.finished, self.running, self.failed = done, 0, 0
        self.stage: Optional[str] = None
        self.started_at = time.perf_counter()
        self.bar = tqdm(total=total, initial=done, desc=f"benchmark ({backend})", unit="run", file=sys.stderr,
                        disable=not enabled, dynamic_ncols=True)
        self._show()

    def _show(self) -> None:
        text = f"{self.finished} finished, {self.running} running, {self.failed} failed"
        if self.stage:
            text += f" | {self.stage}"
        self.bar.set_postfix_str(text, refresh=True)

    def started(self) -> None:
        self.running += 1
        self._show()

    def show_stage(self, title: str, stage: str) -> None:
        self.stage = f"{title}: {stage}"
        self._show()

    def ended(self, failed: bool) -> None:
        self.running -= 1
        self.finished += not failed
        self.failed += failed
        self.stage = None
        self.bar.update(1)
        self._show()

    def say(self, say, message: str) -> None:
        """A message line that does not tear the bar."""
        with self.bar.external_write_mode(file=sys.stderr):
            say(message)

    @property
    def wall_s(self) -> float:
        return time.perf_counter() - self.started_at

    def close(self) -> None:
        self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
