"""The scheduler of a search: tasks on a thread pool, driven by the calling thread.

Folds and path chunks run on a pool of threads (coordinate descent and LAPACK release the
GIL). A task's ``done`` callback runs on the calling thread and returns the follow-up tasks
(the next chunk of a path); the calling thread also reports progress, polls ``should_stop``
and watches the deadline, so a cancel or a timeout acts within a fraction of a second.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Literal

StopCheck = Callable[[], bool]

POLL_SECONDS = 0.2


@dataclass(order=True)
class Task:
    """``run`` on a pool thread, then ``done(result)`` on the caller's: the follow-ups."""

    priority: tuple[int, ...]
    run: Callable[[], Any] = field(compare=False)
    done: Callable[[Any], list[Task]] = field(compare=False)


class StopSearch(Exception):
    """The search stops early: the job was ``cancelled``, or the ``timeout`` came."""

    def __init__(self, reason: Literal["cancelled", "timeout"]) -> None:
        super().__init__(reason)
        self.reason = reason


class Scheduler:
    """Runs tasks by priority on ``n_threads`` threads; the caller's thread drives it."""

    def __init__(
        self,
        n_threads: int,
        *,
        deadline: float | None,
        should_stop: StopCheck,
        report: Callable[[], None],
    ) -> None:
        self.pool = ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="regfit-cv")
        self.n_threads = n_threads
        self.deadline = deadline
        self.should_stop = should_stop
        self.report = report
        self.stop = threading.Event()
        self._counter = itertools.count()

    def close(self) -> None:
        self.stop.set()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _check(self) -> None:
        if self.should_stop():
            raise StopSearch("cancelled")
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise StopSearch("timeout")

    def run(self, tasks: Iterable[Task]) -> None:
        """Run ``tasks`` and the follow-ups their ``done`` returns, until none is left.

        Raises ``StopSearch`` on cancel or timeout, after the running tasks finished and
        were recorded (their follow-ups are dropped).
        """
        heap: list[tuple[Task, int]] = []
        for task in tasks:
            heapq.heappush(heap, (task, next(self._counter)))
        running: dict[Future[Any], Task] = {}
        try:
            while heap or running:
                self._check()
                while heap and len(running) < self.n_threads:
                    task, _ = heapq.heappop(heap)
                    running[self.pool.submit(task.run)] = task
                timeout = POLL_SECONDS
                if self.deadline is not None:
                    timeout = max(0.0, min(timeout, self.deadline - time.monotonic()))
                finished, _ = wait(running, timeout=timeout, return_when=FIRST_COMPLETED)
                for future in finished:
                    task = running.pop(future)
                    for follow_up in task.done(future.result()):
                        heapq.heappush(heap, (follow_up, next(self._counter)))
                self.report()
        except StopSearch:
            self.stop.set()
            for future, task in running.items():
                result = future.result()
                task.done(result)
            self.report()
            raise
        except BaseException:
            self.stop.set()
            wait(running)
            raise
