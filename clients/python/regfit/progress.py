"""A rich progress bar that follows a job's ``progress`` (done/total fits and message)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

if TYPE_CHECKING:
    from regfit.resources import Job


@contextmanager
def job_progress_bar(job: Job, console: Console | None = None) -> Iterator[Callable[[Job], None]]:
    """Yields ``update(job)``, which moves the bar to the job's current progress."""
    bar = Progress(
        TextColumn("[bold]{task.fields[job_id]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]} {task.fields[message]}"),
        console=console or Console(stderr=True),
        transient=False,
    )
    with bar:
        task = bar.add_task("job", total=None, job_id=job.id, status=job.status, message="")

        def update(current: Job) -> None:
            bar.update(
                task,
                total=current.progress.total or None,
                completed=current.progress.done,
                status=current.status,
                message=current.progress.message or "",
            )

        yield update
