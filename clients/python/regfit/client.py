"""``Client``: the regfit HTTP API as Python calls (httpx underneath)."""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

import httpx
from pydantic import BaseModel

from regfit import __version__
from regfit.errors import RegfitError, ServiceUnreachable
from regfit.resources import Dataset, Job, Model, _pandas
from regfit.schemas import JobStatus, ModelSummary, RegularizationPath

DEFAULT_URL = "http://127.0.0.1:8000"

# Upload content types by file extension; anything else goes as CSV (the server sniffs
# nothing: it reads the part's declared type or the file name's extension).
UPLOAD_TYPES = {
    ".csv": "text/csv",
    ".parquet": "application/vnd.apache.parquet",
    ".pq": "application/vnd.apache.parquet",
    ".jsonl": "application/x-ndjson",
    ".ndjson": "application/x-ndjson",
}

B = TypeVar("B", bound=BaseModel)


class Client:
    """A connection to a regfit service.

    ``Client("http://127.0.0.1:8000", api_key="rfk_…")``; every method raises
    :class:`~regfit.errors.RegfitError` (with the problem document) on an API error and
    :class:`~regfit.errors.ServiceUnreachable` when nothing answers.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        headers = {"user-agent": f"regfit-client/{__version__}", "accept": "application/json"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport ---------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One API call; a 4xx/5xx answer raises :class:`RegfitError` with its problem."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServiceUnreachable(self.url, f"{type(exc).__name__}: {exc}") from exc
        if response.is_error:
            raise RegfitError(_problem_of(response), status=response.status_code)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def _bound(self, cls: type[B], body: Any) -> B:
        obj = cls.model_validate(body)
        bind = getattr(obj, "_bind", None)
        return bind(self) if bind is not None else obj

    # --- datasets ----------------------------------------------------------------------

    def upload(self, source: str | Path | Any, *, name: str | None = None) -> Dataset:
        """Uploads a CSV, Parquet or JSON Lines file (by extension), or a pandas DataFrame."""
        pandas = _pandas()
        if pandas is not None and isinstance(source, pandas.DataFrame):
            params = {"name": name} if name else {}
            body = source.to_csv(index=False).encode()
            response = self.request(
                "POST",
                "/v1/datasets",
                content=body,
                params=params,
                headers={"content-type": "text/csv"},
            )
            return self._bound(Dataset, response.json())
        path = Path(source)
        content_type = UPLOAD_TYPES.get(path.suffix.lower()) or (
            mimetypes.guess_type(path.name)[0] or "text/csv"
        )
        data = {"name": name} if name else None
        with path.open("rb") as fh:  # httpx streams the file in chunks
            response = self.request(
                "POST", "/v1/datasets", files={"file": (path.name, fh, content_type)}, data=data
            )
        return self._bound(Dataset, response.json())

    def datasets(self, *, limit: int = 50, offset: int = 0) -> list[Dataset]:
        """Datasets, newest first."""
        body = self._json("GET", "/v1/datasets", params={"limit": limit, "offset": offset})
        return [self._bound(Dataset, item) for item in body["items"]]

    def iter_datasets(self) -> Iterator[Dataset]:
        """Every dataset, newest first, a page at a time."""
        for item in self._pages("/v1/datasets"):
            yield self._bound(Dataset, item)

    def dataset(self, dataset_id: str) -> Dataset:
        return self._bound(Dataset, self._json("GET", f"/v1/datasets/{dataset_id}"))

    def dataset_rows(self, dataset_id: str, *, limit: int = 100, offset: int = 0) -> Any:
        return self._json(
            "GET", f"/v1/datasets/{dataset_id}/rows", params={"limit": limit, "offset": offset}
        )

    def delete_dataset(self, dataset_id: str) -> None:
        self.request("DELETE", f"/v1/datasets/{dataset_id}")

    # --- jobs --------------------------------------------------------------------------

    def train(
        self,
        dataset: Dataset | str,
        *,
        target: str,
        penalty: str | dict[str, Any] = "l1",
        alpha: float | None = None,
        l1_ratio: float | None = None,
        task: str | None = None,
        C: float | None = None,
        class_weight: str | None = None,
        tuning: dict[str, Any] | None = None,
        features: list[str] | None = None,
        preprocessing: dict[str, Any] | None = None,
        split: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> Job:
        """Submits a training job (``POST /v1/jobs``) and returns it, queued.

        ``penalty`` is a type (``"l1"``, ``"l2"``, ``"elasticnet"``) completed by
        ``alpha``/``l1_ratio``, or a whole penalty object (``{"lambda1": …}`` too).
        ``tuning`` is the API's tuning object, e.g. ``{"strategy": "grid", "space":
        {"alpha": [0.01, 0.1, 1]}, "cv": {"folds": 5}}``. ``task="classification"`` fits
        ``LogisticRegression`` with ``C`` (and ``class_weight="balanced"``) instead of alpha.
        """
        spec: dict[str, Any] = {
            "dataset_id": dataset.id if isinstance(dataset, Dataset) else dataset,
            "target": target,
            "penalty": penalty_object(
                penalty, alpha=alpha, l1_ratio=l1_ratio, C=C, class_weight=class_weight
            ),
        }
        optional = {
            "task": task,
            "tuning": tuning,
            "features": features,
            "preprocessing": preprocessing,
            "split": split,
            "name": name,
        }
        spec.update({key: value for key, value in optional.items() if value is not None})
        return self.submit(spec)

    def submit(self, spec: dict[str, Any]) -> Job:
        """Submits a job body exactly as given (the README's "A training job")."""
        return self._bound(Job, self._json("POST", "/v1/jobs", json=spec))

    def jobs(
        self, *, status: JobStatus | None = None, limit: int = 50, offset: int = 0
    ) -> list[Job]:
        """Jobs, newest first (optionally of one status)."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status is not None:
            params["status"] = status
        body = self._json("GET", "/v1/jobs", params=params)
        return [self._bound(Job, item) for item in body["items"]]

    def job(self, job_id: str) -> Job:
        return self._bound(Job, self._json("GET", f"/v1/jobs/{job_id}"))

    def cancel_job(self, job_id: str) -> Job:
        # No body, but the JSON content type all the same: the API's POST routes expect it.
        cancel = f"/v1/jobs/{job_id}/cancel"
        headers = {"content-type": "application/json"}
        return self._bound(Job, self._json("POST", cancel, headers=headers))

    # --- models ------------------------------------------------------------------------

    def models(self, *, limit: int = 50, offset: int = 0) -> list[ModelSummary]:
        """Models, newest first, as the list's compact items (``model(id)`` has the rest)."""
        body = self._json("GET", "/v1/models", params={"limit": limit, "offset": offset})
        return [ModelSummary.model_validate(item) for item in body["items"]]

    def iter_models(self) -> Iterator[ModelSummary]:
        for item in self._pages("/v1/models"):
            yield ModelSummary.model_validate(item)

    def model(self, model_id: str) -> Model:
        return self._bound(Model, self._json("GET", f"/v1/models/{model_id}"))

    def model_path(self, model_id: str) -> RegularizationPath:
        """``GET /v1/models/{ref}/path`` (``ref``: an id, ``name@alias``, ``name/versions/n``)."""
        return RegularizationPath.model_validate(self._json("GET", f"/v1/models/{model_id}/path"))

    @overload
    def predict(
        self, model_id: str, payload: dict[str, Any], *, full: Literal[False] = False
    ) -> list[Any]: ...

    @overload
    def predict(
        self, model_id: str, payload: dict[str, Any], *, full: Literal[True]
    ) -> dict[str, Any]: ...

    def predict(
        self, model_id: str, payload: dict[str, Any], *, full: bool = False
    ) -> list[Any] | dict[str, Any]:
        """``POST /v1/models/{id}/predict`` with ``{"rows": …}`` or ``{"records": …}`` (and
        ``"output": "proba"`` for a classifier's probabilities): the predictions (values,
        or a classifier's labels as uploaded), or with ``full`` the whole answer."""
        body = self._json("POST", f"/v1/models/{model_id}/predict", json=payload)
        if full:
            return dict(body)
        return list(body["predictions"])

    def predict_csv(self, model_id: str, csv_text: str | bytes) -> list[Any]:
        """Predictions for a CSV with a header row (columns by name)."""
        return list(self.predict_csv_answer(model_id, csv_text)["predictions"])

    def predict_csv_answer(
        self, model_id: str, csv_text: str | bytes, *, output: str = "predict"
    ) -> dict[str, Any]:
        """The whole answer for a CSV: ``predictions``, or with ``output="proba"`` a
        classifier's ``classes`` and ``probabilities``."""
        body: dict[str, Any] = self._json(
            "POST",
            f"/v1/models/{model_id}/predict",
            params={"output": output} if output != "predict" else None,
            content=csv_text.encode() if isinstance(csv_text, str) else csv_text,
            headers={"content-type": "text/csv"},
        )
        return body

    def export_model(self, model_id: str, path: str | Path | None = None) -> dict[str, Any]:
        """The portable JSON model; also written to ``path`` when given."""
        document: dict[str, Any] = self._json("GET", f"/v1/models/{model_id}/export")
        if path is not None:
            Path(path).write_text(json.dumps(document, indent=2) + "\n")
        return document

    def model_plot(self, model_id: str, kind: str, path: str | Path | None = None) -> bytes:
        """``GET /v1/models/{ref}/plots/{kind}``: the SVG (also written to ``path`` when given).

        ``model_id`` may be a registry reference, ``name@alias`` or ``name/versions/n``;
        ``kind`` one of coefficients, path, cv, residuals, comparison.
        """
        svg = self.request("GET", f"/v1/models/{model_id}/plots/{kind}").content
        if path is not None:
            Path(path).write_bytes(svg)
        return svg

    def delete_model(self, model_id: str) -> None:
        self.request("DELETE", f"/v1/models/{model_id}")

    def _pages(self, path: str, page_size: int = 200) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            body = self._json("GET", path, params={"limit": page_size, "offset": offset})
            yield from body["items"]
            offset += len(body["items"])
            if not body["items"] or offset >= body["total"]:
                return


def penalty_object(
    penalty: str | dict[str, Any],
    *,
    alpha: float | None = None,
    l1_ratio: float | None = None,
    C: float | None = None,
    class_weight: str | None = None,
) -> dict[str, Any]:
    """The job's ``penalty`` object from a type name and its parameters, or as given."""
    spec: dict[str, Any] = dict(penalty) if isinstance(penalty, dict) else {"type": penalty}
    given = {"alpha": alpha, "l1_ratio": l1_ratio, "C": C, "class_weight": class_weight}
    spec.update({key: value for key, value in given.items() if value is not None})
    return spec


def _problem_of(response: httpx.Response) -> dict[str, Any]:
    """The problem document of an error response (or one made up from a non-JSON body)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and ("title" in body or "detail" in body):
        return body
    return {
        "title": response.reason_phrase or "HTTP error",
        "status": response.status_code,
        "detail": response.text[:500],
    }
