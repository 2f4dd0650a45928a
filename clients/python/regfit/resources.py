"""Datasets, jobs and models as objects bound to the client that fetched them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import PrivateAttr

from regfit.errors import JobFailed
from regfit.schemas import (
    Body,
    CoefficientTable,
    DatasetBody,
    JobBody,
    ModelBody,
    RegularizationPath,
)

if TYPE_CHECKING:
    from regfit.client import Client

PREDICT_CHUNK_ROWS = 10_000  # per request, well under the server's REGFIT_MAX_PREDICT_ROWS


def _pandas() -> Any:
    """pandas when it is installed (an optional extra), else ``None``."""
    try:
        import pandas
    except ImportError:
        return None
    return pandas


class _Bound(Body):
    _client: Client | None = PrivateAttr(default=None)

    def _bind(self, client: Client) -> Any:
        self._client = client
        return self

    @property
    def client(self) -> Client:
        if self._client is None:
            raise RuntimeError("this object is not bound to a Client")
        return self._client


class Dataset(DatasetBody, _Bound):
    """A stored dataset (``GET /v1/datasets/{id}``)."""

    def rows(self, *, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        """A page of rows in upload order: ``{"columns", "rows", "total", …}``."""
        return self.client.dataset_rows(self.id, limit=limit, offset=offset)

    def delete(self) -> None:
        self.client.delete_dataset(self.id)


class Job(JobBody, _Bound):
    """A training job; :meth:`wait` follows it to the end."""

    def refresh(self) -> Job:
        """Reads the job again and updates this object in place."""
        fresh = self.client.job(self.id)
        for name, value in fresh.__dict__.items():
            object.__setattr__(self, name, value)
        return self

    def cancel(self) -> Job:
        fresh = self.client.cancel_job(self.id)
        for name, value in fresh.__dict__.items():
            object.__setattr__(self, name, value)
        return self

    def wait(
        self,
        *,
        progress: bool = False,
        timeout: float | None = None,
        raise_on_failure: bool = True,
        on_update: Callable[[Job], None] | None = None,
    ) -> Job:
        """Polls until the job has finished; returns it (updated in place).

        ``progress=True`` draws a progress bar from the job's ``progress`` (done/total
        fits and the message). A failed or cancelled job raises :class:`JobFailed`
        unless ``raise_on_failure=False``; ``timeout`` (seconds) raises ``TimeoutError``.
        """
        if progress:
            from regfit.progress import job_progress_bar

            with job_progress_bar(self) as update:
                self._poll(timeout, lambda job: (update(job), on_update and on_update(job)))
        else:
            self._poll(timeout, on_update)
        if raise_on_failure and self.status != "succeeded":
            raise JobFailed(self)
        return self

    def _poll(self, timeout: float | None, on_update: Callable[[Job], Any] | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        # Short first: a small job is done in well under a second; then at most 0.5 s apart.
        interval = 0.05
        while True:
            if on_update is not None:
                on_update(self)
            if self.finished:
                return
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {self.id} still {self.status} after {timeout} s")
            time.sleep(interval)
            interval = min(interval * 1.5, 0.5)
            self.refresh()

    def model(self) -> Model:
        """The model this job trained (the job must have succeeded)."""
        if self.model_id is None:
            self.refresh()
        if self.model_id is None and self.status in ("failed", "cancelled"):
            raise JobFailed(self)
        if self.model_id is None:
            raise RuntimeError(f"job {self.id} is {self.status}; no model yet (wait() first)")
        return self.client.model(self.model_id)


class Model(ModelBody, _Bound):
    """A trained model: coefficients, metrics, tuning, predictions, path, export."""

    def coefficient_rows(self) -> list[dict[str, Any]]:
        """One row per feature: its coefficient in original units and in scaled units (a
        classifier's: one row per class and feature, with ``class``)."""
        values = self.coefficient_values
        if isinstance(values, CoefficientTable):
            return [
                {"class": label, "feature": name, "coefficient": original[j], "scaled": scaled[j]}
                for label, original, scaled in zip(
                    values.rows, values.original, values.scaled, strict=True
                )
                for j, name in enumerate(values.columns)
            ]
        original, scaled = values.original, values.scaled
        return [
            {"feature": name, "coefficient": original.get(name), "scaled": scaled.get(name)}
            for name in (self.feature_names_out or list(original))
        ]

    @property
    def coefficients(self) -> Any:
        """The coefficients as a table: a ``pandas.DataFrame`` when pandas is installed,
        else a list of rows (``feature``, ``coefficient``, ``scaled``)."""
        rows = self.coefficient_rows()
        pandas = _pandas()
        return pandas.DataFrame(rows) if pandas is not None else rows

    def predict(self, data: Any, *, output: str = "predict") -> list[Any]:
        """Predictions for rows in ``features`` order, records (dicts) or a DataFrame: values,
        or a classifier's labels; ``output="proba"``: a classifier's probabilities, one list
        per row in the order of ``classes``."""
        predictions: list[Any] = []
        for payload in self._prediction_payloads(data):
            if output == "predict":
                predictions.extend(self.client.predict(self.id, payload))
            else:
                answer = self.client.predict(self.id, {**payload, "output": output}, full=True)
                predictions.extend(answer["probabilities"])
        return predictions

    def _prediction_payloads(self, data: Any) -> Iterable[dict[str, Any]]:
        pandas = _pandas()
        if pandas is not None and isinstance(data, pandas.DataFrame):
            missing = [name for name in self.features if name not in data.columns]
            if missing:
                raise ValueError(f"the DataFrame lacks the model's feature(s) {missing}")
            frame = data[self.features].astype(object)
            rows: Sequence[Any] = frame.where(frame.notna(), None).to_numpy().tolist()
            key = "rows"
        else:
            if hasattr(data, "tolist"):  # a numpy array
                data = data.tolist()
            rows = list(data)
            key = "records" if rows and isinstance(rows[0], dict) else "rows"
        for start in range(0, max(len(rows), 1), PREDICT_CHUNK_ROWS):
            yield {key: list(rows[start : start + PREDICT_CHUNK_ROWS])}

    def path(self) -> RegularizationPath:
        """The regularization path (and, for tuned models, the CV curve)."""
        return self.client.model_path(self.id)

    def plot(self, kind: str, path: str | Path | None = None) -> bytes:
        """The plot ``kind`` (coefficients, path, cv, residuals, comparison) as SVG bytes."""
        return self.client.model_plot(self.id, kind, path)

    def export(self, path: str | Path | None = None) -> dict[str, Any]:
        """The portable JSON model; also written to ``path`` when given."""
        return self.client.export_model(self.id, path)

    def delete(self) -> None:
        self.client.delete_model(self.id)
