"""The ``regfit`` command line: datasets, training (with tuning), jobs, models, predictions.

Built on :class:`regfit.Client`; needs only the client's dependencies. The server
distribution adds its own commands (``serve``, ``migrate``, ``worker``, ``keys``) through
the entry-point group ``regfit.commands``: each entry is a function ``register(app)``.

Exit codes: 0 success, 1 an API error (the problem is printed), 2 a usage error, 3 a job
that failed or was cancelled, 4 the service did not answer, 130 interrupted.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from regfit import __version__
from regfit.client import DEFAULT_URL, Client
from regfit.errors import JobFailed, RegfitError, ServiceUnreachable
from regfit.resources import Dataset, Job, Model
from regfit.schemas import PenaltyPath

EXIT_OK, EXIT_API_ERROR, EXIT_USAGE, EXIT_JOB_FAILED, EXIT_UNREACHABLE = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130
PLUGIN_GROUP = "regfit.commands"
PREDICT_CHUNK_ROWS = 10_000
TOP_COEFFICIENTS = 10

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the API's JSON body instead of tables (for scripts).")
]

EPILOG = (
    "Exit codes: 0 ok, 1 API error, 2 usage error, 3 job failed or cancelled, "
    "4 service unreachable, 130 interrupted."
)


@dataclass
class State:
    """What the global options set, shared by the commands of one invocation."""

    url: str = DEFAULT_URL
    api_key: str | None = None
    json: bool = False
    _client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.url, self.api_key)
        return self._client


STATE = State()
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _state(json_output: bool = False) -> State:
    STATE.json = STATE.json or json_output
    return STATE


def emit(data: Any, render: Callable[[], None]) -> None:
    """The JSON body under ``--json``, else the human rendering."""
    if STATE.json:
        print(json.dumps(_plain(data), indent=2))
    else:
        render()


def _plain(data: Any) -> Any:
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json", by_alias=True)
    if isinstance(data, list):
        return [_plain(item) for item in data]
    if isinstance(data, dict):
        return {key: _plain(value) for key, value in data.items()}
    return data


def fail_usage(message: str) -> NoReturn:
    err.print(f"[red]regfit: {message}[/red]")
    raise typer.Exit(EXIT_USAGE)


# --- the application -----------------------------------------------------------------------

app = typer.Typer(
    name="regfit",
    help="regfit: train, tune and serve Lasso, Ridge and ElasticNet models.\n\n"
    "Client commands talk to a running service (--url, REGFIT_URL); dataset, job and "
    "model arguments take an id, a name, or 'latest'.",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_show_locals=False,  # never print an API key from a local variable
)
datasets_app = typer.Typer(help="Upload, list, show and delete datasets.", no_args_is_help=True)
jobs_app = typer.Typer(help="List, show, wait for and cancel training jobs.", no_args_is_help=True)
models_app = typer.Typer(help="List, show, export and delete trained models.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
app.add_typer(jobs_app, name="jobs")
app.add_typer(models_app, name="models")


def _version(value: bool) -> None:
    if value:
        print(f"regfit {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _global_options(
    url: Annotated[
        str, typer.Option("--url", envvar="REGFIT_URL", help="The service's base URL.")
    ] = DEFAULT_URL,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key", envvar="REGFIT_API_KEY", help="API key (sent as a Bearer token)."
        ),
    ] = None,
    json_output: JsonOption = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    STATE.url, STATE.api_key, STATE.json, STATE._client = url, api_key or None, json_output, None


# --- references: an id, a name or "latest" -------------------------------------------------


def _not_found(kind: str, ref: str) -> RegfitError:
    return RegfitError(
        {"title": "Not found", "status": 404, "detail": f"no {kind} named {ref!r}"}, status=404
    )


def resolve_dataset(client: Client, ref: str) -> Dataset:
    """A dataset by id (``ds_…``), by name (the newest of that name) or ``latest``."""
    if ref.startswith("ds_"):
        return client.dataset(ref)
    if ref == "latest":
        found = client.datasets(limit=1)
        if not found:
            raise _not_found("dataset", ref)
        return client.dataset(found[0].id)  # list items leave out the column summaries
    match = next((d for d in client.iter_datasets() if d.name == ref), None)
    if match is None:
        raise _not_found("dataset", ref)
    return client.dataset(match.id)


def resolve_model(client: Client, ref: str) -> Model:
    """A model by id (``mdl_…``), registry reference (``name@alias``, ``name/versions/n``),
    by name (the newest of that name) or ``latest``."""
    if ref.startswith("mdl_") or "@" in ref or "/versions/" in ref:
        return client.model(ref)
    if ref == "latest":
        found = client.models(limit=1)
        if not found:
            raise _not_found("model", ref)
        return client.model(found[0].id)
    match = next((m for m in client.iter_models() if m.name == ref), None)
    if match is None:
        raise _not_found("model", ref)
    return client.model(match.id)


def resolve_job(client: Client, ref: str) -> Job:
    """A job by id (``job_…``) or ``latest``."""
    if ref == "latest":
        found = client.jobs(limit=1)
        if not found:
            raise _not_found("job", ref)
        return client.job(found[0].id)  # list items leave out the spec echo
    return client.job(ref)


DatasetArg = Annotated[str, typer.Argument(help="Dataset id, name, or 'latest'.")]
ModelArg = Annotated[
    str,
    typer.Argument(help="Model id, name@alias, name/versions/N, a model's name, or 'latest'."),
]
JobArg = Annotated[str, typer.Argument(help="Job id or 'latest'.")]


# --- datasets ------------------------------------------------------------------------------


@datasets_app.command("upload")
def datasets_upload(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="CSV, Parquet or JSON Lines file."
        ),
    ],
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="A name to refer to it by.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Upload a dataset file (the format from its extension)."""
    state = _state(json_output)
    dataset = state.client.upload(file, name=name)
    emit(dataset, lambda: render_dataset(dataset))


@datasets_app.command("list")
def datasets_list(
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    offset: Annotated[int, typer.Option(help="Skip this many.")] = 0,
    json_output: JsonOption = False,
) -> None:
    """List datasets, newest first."""
    state = _state(json_output)
    items = state.client.datasets(limit=limit, offset=offset)

    def render() -> None:
        table = _table("id", "name", "rows", "columns", "format", "created")
        for d in items:
            table.add_row(
                d.id, d.name, str(d.n_rows), str(d.n_columns), d.source_format, _when(d.created_at)
            )
        out.print(table)

    emit(items, render)


@datasets_app.command("show")
def datasets_show(dataset: DatasetArg, json_output: JsonOption = False) -> None:
    """Show a dataset and its column summaries."""
    state = _state(json_output)
    found = resolve_dataset(state.client, dataset)
    emit(found, lambda: render_dataset(found))


@datasets_app.command("rm")
def datasets_rm(dataset: DatasetArg, json_output: JsonOption = False) -> None:
    """Delete a dataset (its models keep working)."""
    state = _state(json_output)
    found = resolve_dataset(state.client, dataset)
    found.delete()
    emit({"deleted": found.id}, lambda: out.print(f"deleted {found.id} ({found.name})"))


def render_dataset(d: Dataset) -> None:
    out.print(f"[bold]{d.id}[/bold]  {d.name}: {d.n_rows} rows × {d.n_columns} columns")
    table = Table("column", "dtype", "missing", "min", "max", "mean", "std", "unique")
    for c in d.columns:
        table.add_row(
            c.name,
            c.dtype,
            str(c.n_missing),
            _num(c.min, 4),
            _num(c.max, 4),
            _num(c.mean, 4),
            _num(c.std, 4),
            "" if c.n_unique is None else str(c.n_unique),
        )
    out.print(table)


# --- training ------------------------------------------------------------------------------


def parse_values(text: str, option: str) -> float | list[float] | dict[str, Any]:
    """``0.1`` one value; ``0.01,0.1,1`` a list; ``1e-3:10:30:log`` 30 values from 1e-3 to 10
    (log-spaced; without ``:log`` evenly spaced); ``1e-3:10:log`` a range for random or
    Bayesian search (``{"low", "high", "log"}``)."""
    try:
        if "," in text:
            return [float(v) for v in text.split(",") if v.strip()]
        parts = text.split(":")
        log = parts[-1].strip().lower() == "log"
        if log:
            parts = parts[:-1]
        if len(parts) == 1 and not log:
            return float(parts[0])
        if len(parts) == 2:
            return {"low": float(parts[0]), "high": float(parts[1]), "log": log}
        if len(parts) == 3:
            return spaced(float(parts[0]), float(parts[1]), int(parts[2]), log=log)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r}: {exc}", param_hint=option) from None
    raise typer.BadParameter(
        f"{text!r}: expected V, V1,V2,…, LOW:HIGH:N[:log] or LOW:HIGH[:log]", param_hint=option
    )


def spaced(low: float, high: float, n: int, *, log: bool) -> list[float]:
    """``n`` values from ``low`` to ``high``: ``numpy.geomspace`` (log) or ``linspace``."""
    if n < 1:
        raise ValueError("the count must be at least 1")
    if n == 1:
        return [low]
    if log:
        if low <= 0 or high <= 0:
            raise ValueError("a log scale needs positive bounds")
        step = (math.log(high) - math.log(low)) / (n - 1)
        values = [math.exp(math.log(low) + i * step) for i in range(n)]
    else:
        values = [low + (high - low) * i / (n - 1) for i in range(n)]
    values[0], values[-1] = low, high  # exact ends, as numpy gives them
    return values


def build_job_spec(
    *,
    dataset_id: str,
    target: str,
    penalty: str,
    alpha: str | None,
    l1_ratio: str | None,
    lambda1: float | None,
    lambda2: float | None,
    compare: str | None,
    search: str | None,
    folds: int | None,
    shuffle_folds: bool,
    select: str | None,
    trials: int | None,
    scoring: str | None,
    timeout: float | None,
    seed: int | None,
    features: str | None,
    test_size: float | None,
    name: str | None,
    task: str | None = None,
    C: str | None = None,
    class_weight: str | None = None,
) -> dict[str, Any]:
    """The ``POST /v1/jobs`` body for the ``train`` command's options (``task``
    classification: ``C`` in place of ``alpha``, same forms)."""
    space: dict[str, Any] = {}
    compared = [p.strip() for p in compare.split(",") if p.strip()] if compare else []
    # A searched penalty still needs a top-level one: the first compared unless given.
    penalty_spec: dict[str, Any] = {"type": penalty or (compared[0] if compared else "l1")}
    if compared:
        space["penalty"] = compared
    for key, text in (("alpha", alpha), ("C", C), ("l1_ratio", l1_ratio)):
        if text is None:
            continue
        value = parse_values(text, "--C" if key == "C" else f"--{key.replace('_', '-')}")
        if isinstance(value, float) and key == "l1_ratio" and compared:
            # Only ElasticNet takes an l1_ratio: in a comparison it belongs to the space,
            # which applies it to the ElasticNet candidates alone.
            space[key] = [value]
        elif isinstance(value, float):
            penalty_spec[key] = value
        else:
            space[key] = value
    if lambda1 is not None or lambda2 is not None:
        penalty_spec = {"lambda1": lambda1 or 0.0, "lambda2": lambda2 or 0.0}
    if class_weight is not None:
        penalty_spec["class_weight"] = class_weight
    spec: dict[str, Any] = {"dataset_id": dataset_id, "target": target, "penalty": penalty_spec}
    if task is not None:
        spec["task"] = task
    if space or search:
        tuning: dict[str, Any] = {"strategy": search or "grid", "space": space}
        cv: dict[str, Any] = {}
        if folds is not None:
            cv["folds"] = folds
        if shuffle_folds:
            cv.update(shuffle=True, random_state=seed if seed is not None else 0)
        if cv:
            tuning["cv"] = cv
        optional = {
            "select": select,
            "n_trials": trials,
            "scoring": scoring,
            "timeout_seconds": timeout,
            "random_state": seed,
        }
        tuning.update({k: v for k, v in optional.items() if v is not None})
        spec["tuning"] = tuning
    elif any(v is not None for v in (folds, select, trials, scoring, timeout)) or shuffle_folds:
        fail_usage(
            "--folds, --select, --trials, --scoring, --timeout and --shuffle-folds tune a search: "
            "give --search, --compare, or a list or range of --alpha/--l1-ratio values"
        )
    if features:
        spec["features"] = [f.strip() for f in features.split(",") if f.strip()]
    if test_size is not None:
        spec["split"] = {"test_size": test_size}
    if name:
        spec["name"] = name
    return spec


@app.command("train", epilog=EPILOG)
def train(
    dataset: DatasetArg,
    target: Annotated[str, typer.Option("--target", "-t", help="The column to predict.")],
    penalty: Annotated[
        str,
        typer.Option("--penalty", "-p", help="l1 (Lasso), l2 (Ridge) or elasticnet; default l1."),
    ] = "",
    alpha: Annotated[
        str | None,
        typer.Option(
            help="Strength: 0.1; a list 0.01,0.1,1; a grid 1e-3:10:30:log (30 log-spaced "
            "values); a range 1e-3:10:log (random/bayesian)."
        ),
    ] = None,
    l1_ratio: Annotated[
        str | None,
        typer.Option(
            "--l1-ratio", help="ElasticNet mix, same forms as --alpha (0.5, 0.2,0.5,0.8, 0:1)."
        ),
    ] = None,
    lambda1: Annotated[
        float | None, typer.Option(help="The seed's λ1 (Σ|θ|) instead of --penalty/--alpha.")
    ] = None,
    lambda2: Annotated[float | None, typer.Option(help="The seed's λ2 (Σθ²).")] = None,
    task: Annotated[
        str | None,
        typer.Option(help="regression (default) or classification (LogisticRegression)."),
    ] = None,
    C: Annotated[
        str | None,
        typer.Option(
            "--C", help="A classifier's inverse strength, same forms as --alpha (1.0, 0.01,0.1,1)."
        ),
    ] = None,
    class_weight: Annotated[
        str | None, typer.Option("--class-weight", help="balanced: reweight the classes.")
    ] = None,
    compare: Annotated[
        str | None,
        typer.Option(help="Compare penalties in one search, e.g. l1,l2,elasticnet."),
    ] = None,
    search: Annotated[
        str | None,
        typer.Option(help="grid (default when searching), random or bayesian."),
    ] = None,
    folds: Annotated[int | None, typer.Option(help="Cross-validation folds (default 5).")] = None,
    shuffle_folds: Annotated[
        bool, typer.Option("--shuffle-folds", help="Shuffle rows before the CV split.")
    ] = False,
    select: Annotated[
        str | None, typer.Option(help="best (default) or 1se: the largest alpha within 1 SE.")
    ] = None,
    trials: Annotated[
        int | None, typer.Option(help="Candidates of a random/bayesian search (default 50).")
    ] = None,
    scoring: Annotated[str | None, typer.Option(help="CV score: r2 (default), neg_mse, …")] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Stop the search after this many seconds.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="random_state of the search.")] = None,
    features: Annotated[
        str | None, typer.Option(help="Comma-separated feature columns (default: all others).")
    ] = None,
    test_size: Annotated[
        float | None, typer.Option(help="Held-out test share (default 0.2; 0: none).")
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="A name for the job and its model.")
    ] = None,
    wait: Annotated[
        bool,
        typer.Option("--wait", "-w", help="Follow the job with a progress bar, then summarize."),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Train a model on a dataset, optionally with a cross-validated search.

    Examples:

      regfit train diabetes --target target --penalty l1 --alpha 0.1 --wait

      regfit train diabetes -t target --alpha 1e-3:10:30:log --folds 5 --select 1se --wait

      regfit train diabetes -t target --compare l1,l2,elasticnet --alpha 1e-3:10:20:log --wait

      regfit train diabetes -t target -p elasticnet --search random --alpha 1e-3:10:log
      --l1-ratio 0:1 --trials 40 --wait

      regfit train cancer -t diagnosis --task classification -p l2 --C 1e-3:10:12:log --wait
    """
    state = _state(json_output)
    client = state.client
    found = resolve_dataset(client, dataset)
    spec = build_job_spec(
        dataset_id=found.id,
        target=target,
        penalty=penalty,
        alpha=alpha,
        l1_ratio=l1_ratio,
        lambda1=lambda1,
        lambda2=lambda2,
        compare=compare,
        search=search,
        folds=folds,
        shuffle_folds=shuffle_folds,
        select=select,
        trials=trials,
        scoring=scoring,
        timeout=timeout,
        seed=seed,
        features=features,
        test_size=test_size,
        name=name,
        task=task,
        C=C,
        class_weight=class_weight,
    )
    job = client.submit(spec)
    if not wait:
        emit(
            job,
            lambda: out.print(
                f"submitted {job.id} ({job.status}); follow it with: regfit jobs wait {job.id}"
            ),
        )
        return
    wait_and_summarize(job)


def wait_and_summarize(job: Job) -> None:
    """Follows a job with a progress bar (not under --json), then shows its model."""
    job.wait(progress=not STATE.json)
    model = job.model()
    emit({"job": job, "model": model}, lambda: render_model(model))


# --- jobs ----------------------------------------------------------------------------------


@jobs_app.command("list")
def jobs_list(
    status: Annotated[
        str | None, typer.Option(help="Only jobs in this state (queued, running, …).")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    offset: Annotated[int, typer.Option(help="Skip this many.")] = 0,
    json_output: JsonOption = False,
) -> None:
    """List jobs, newest first."""
    state = _state(json_output)
    items = state.client.jobs(status=status, limit=limit, offset=offset)  # type: ignore[arg-type]

    def render() -> None:
        table = _table("id", "status", "progress", "dataset", "model", "created")
        for j in items:
            table.add_row(
                j.id,
                j.status,
                f"{j.progress.done}/{j.progress.total}",
                j.dataset_id,
                j.model_id or "",
                _when(j.created_at),
            )
        out.print(table)

    emit(items, render)


@jobs_app.command("show")
def jobs_show(job: JobArg, json_output: JsonOption = False) -> None:
    """Show a job: status, progress, error, model."""
    state = _state(json_output)
    found = resolve_job(state.client, job)
    emit(found, lambda: render_job(found))


@jobs_app.command("cancel")
def jobs_cancel(job: JobArg, json_output: JsonOption = False) -> None:
    """Cancel a queued or running job."""
    state = _state(json_output)
    found = resolve_job(state.client, job).cancel()
    emit(found, lambda: out.print(f"{found.id}: {found.status}"))


@jobs_app.command("wait", epilog=EPILOG)
def jobs_wait(job: JobArg, json_output: JsonOption = False) -> None:
    """Wait for a job with a progress bar, then summarize its model (exit 3 if it failed)."""
    state = _state(json_output)
    wait_and_summarize(resolve_job(state.client, job))


def render_job(j: Job) -> None:
    out.print(f"[bold]{j.id}[/bold]  {j.name or ''}")
    table = Table.grid(padding=(0, 2))
    table.add_row("status", j.status)
    table.add_row("progress", f"{j.progress.done}/{j.progress.total} {j.progress.message or ''}")
    table.add_row("dataset", j.dataset_id)
    table.add_row("model", j.model_id or "-")
    table.add_row("created", _when(j.created_at))
    table.add_row("finished", _when(j.finished_at) if j.finished_at else "-")
    if j.error:
        table.add_row("error", str(j.error.get("detail") or j.error))
    out.print(table)


# --- models --------------------------------------------------------------------------------


@models_app.command("list")
def models_list(
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    offset: Annotated[int, typer.Option(help="Skip this many.")] = 0,
    json_output: JsonOption = False,
) -> None:
    """List models, newest first."""
    state = _state(json_output)
    items = state.client.models(limit=limit, offset=offset)

    def render() -> None:
        table = _table("id", "name", "estimator", "alpha", "n_nonzero", "test r2", "created")
        for m in items:
            test = (m.metrics.test or {}).get("r2")
            table.add_row(
                m.id,
                m.name or "",
                m.penalty.estimator or m.penalty.type,
                _num(m.penalty.alpha),
                "" if m.n_nonzero is None else str(m.n_nonzero),
                _num(test),
                _when(m.created_at),
            )
        out.print(table)

    emit(items, render)


@models_app.command("show")
def models_show(model: ModelArg, json_output: JsonOption = False) -> None:
    """Show a model: penalty, metrics, tuning, n_nonzero, top coefficients."""
    state = _state(json_output)
    found = resolve_model(state.client, model)
    emit(found, lambda: render_model(found))


@models_app.command("path")
def models_path(model: ModelArg, json_output: JsonOption = False) -> None:
    """Show the regularization path: n_nonzero (and the CV score) per alpha; for a penalty
    comparison, one table per compared penalty."""
    state = _state(json_output)
    found = resolve_model(state.client, model)
    path = found.path()

    def table_of(curve: PenaltyPath, title: str) -> Table:
        columns = ["alpha", "n_nonzero"] + (["cv mean", "cv std"] if curve.cv else [])
        table = Table(*columns, title=title)
        for row in curve.rows():
            cells = [_num(row["alpha"]), str(row["n_nonzero"])]
            if curve.cv:
                cells += [_num(row["cv_mean"]), _num(row["cv_std"])]
            style = "bold" if curve.alpha is not None and row["alpha"] == curve.alpha else None
            table.add_row(*cells, style=style)
        return table

    def render() -> None:
        out.print(table_of(path, f"{found.id}: {path.penalty} path"))
        for kind, curve in (path.compared or {}).items():
            if kind != path.penalty:
                out.print(table_of(curve, f"compared: {kind} path (its best alpha in bold)"))
        if path.cv is not None and path.cv.points:
            out.print(f"{len(path.cv.points)} candidates evaluated (--json lists them: cv.points)")

    emit(path, render)


@models_app.command("export")
def models_export(
    model: ModelArg,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (default stdout).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Export the portable JSON model (features, preprocessing, coefficients)."""
    state = _state(json_output)
    found = resolve_model(state.client, model)
    document = found.export(output)
    if output is None:
        print(json.dumps(document, indent=2))
    elif state.json:
        print(json.dumps({"model_id": found.id, "output": str(output)}))
    else:
        out.print(f"wrote {output} ({found.id})")


class PlotKind(StrEnum):
    coefficients = "coefficients"
    path = "path"
    cv = "cv"
    residuals = "residuals"
    comparison = "comparison"


@app.command("plot")
def plot(
    model: ModelArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="The SVG file to write.")],
    kind: Annotated[
        PlotKind, typer.Option("--kind", "-k", help="Which plot.")
    ] = PlotKind.coefficients,
    json_output: JsonOption = False,
) -> None:
    """Write a plot of a model as SVG: coefficients (vs least squares), path, cv, residuals,
    comparison (the compared penalties' coefficients). MODEL may be name@alias or
    name/versions/N too."""
    state = _state(json_output)
    found = resolve_model(state.client, model)
    svg = found.plot(kind.value, output)
    summary = {"model_id": found.id, "kind": kind.value, "output": str(output), "bytes": len(svg)}
    emit(summary, lambda: out.print(f"wrote {output} ({kind.value} plot of {found.id})"))


@models_app.command("rm")
def models_rm(model: ModelArg, json_output: JsonOption = False) -> None:
    """Delete a model."""
    state = _state(json_output)
    found = resolve_model(state.client, model)
    found.delete()
    emit({"deleted": found.id}, lambda: out.print(f"deleted {found.id}"))


def render_classifier(m: Model) -> None:
    p = m.penalty
    params = f"C={_num(p.C)}" + (f", l1_ratio={_num(p.l1_ratio)}" if p.l1_ratio else "")
    out.print(
        f"[bold]{m.id}[/bold]  LogisticRegression({p.type}, {params})  target {m.target!r}, "
        f"classes {m.classes}, {m.n_train} train / {m.n_test} test rows"
    )
    names = ("accuracy", "balanced_accuracy", "log_loss", "roc_auc", "f1")
    metrics = Table("split", *names, title="metrics")
    for split in ("train", "test"):
        values = getattr(m.metrics, split)
        if values:
            metrics.add_row(split, *(_num(values.get(k)) for k in names))
    out.print(metrics)
    test = m.metrics.test or m.metrics.train or {}
    if test.get("confusion_matrix"):
        labels = [str(c) for c in m.classes or []]
        confusion = Table("true \\ predicted", *labels, title="confusion matrix")
        for label, row in zip(labels, test["confusion_matrix"], strict=True):
            confusion.add_row(label, *map(str, row))
        out.print(confusion)
    if m.tuning is not None:
        t = m.tuning
        best = ", ".join(f"{k}={_num(v)}" for k, v in t.best_params.items())
        out.print(
            f"tuning: {t.strategy} search, {t.n_candidates} candidates, {t.scoring} "
            f"(select {t.select}): best {best} → {_num(t.best_score)}"
        )
    rows = sorted(m.coefficient_rows(), key=lambda r: -abs(r["scaled"] or 0.0))
    coefs = Table("class", "feature", "coefficient", "scaled", title="largest coefficients")
    for row in rows[:TOP_COEFFICIENTS]:
        coefs.add_row(
            str(row["class"]), row["feature"], _num(row["coefficient"]), _num(row["scaled"])
        )
    out.print(coefs)
    for warning in m.warnings:
        err.print(f"[yellow]warning: {warning}[/yellow]")


def render_model(m: Model) -> None:
    if m.task == "classification":
        render_classifier(m)
        return
    p = m.penalty
    params = f"alpha={_num(p.alpha)}" + (f", l1_ratio={_num(p.l1_ratio)}" if p.l1_ratio else "")
    out.print(
        f"[bold]{m.id}[/bold]  {p.estimator or p.type}({params})  target {m.target!r}, "
        f"{m.n_train} train / {m.n_test} test rows"
    )
    metrics = Table("split", "r2", "rmse", "mae", "mse", title="metrics")
    for split in ("train", "test", "cv"):
        values = getattr(m.metrics, split)
        if values:
            metrics.add_row(split, *(_num(values.get(k)) for k in ("r2", "rmse", "mae", "mse")))
    out.print(metrics)
    if m.tuning is not None:
        t = m.tuning
        best = ", ".join(f"{k}={_num(v)}" for k, v in t.best_params.items())
        finished = t.n_candidates_finished if t.n_candidates_finished is not None else "?"
        out.print(
            f"tuning: {t.strategy} search, {finished}/{t.n_candidates} candidates, "
            f"{t.scoring} (select {t.select}): best {best} → {_num(t.best_score)}"
            + (" [yellow](timed out)[/yellow]" if t.timed_out else "")
        )
        if t.comparison:
            comparison = Table("penalty", f"best {t.scoring}", "best params", "n_nonzero")
            for kind, row in t.comparison.items():
                row_params = ", ".join(
                    f"{k}={_num(v)}"
                    for k, v in (row.get("best_params") or {}).items()
                    if v is not None
                )
                comparison.add_row(
                    kind, _num(row.get("best_score")), row_params, str(row.get("n_nonzero", ""))
                )
            out.print(comparison)
    total = len(m.feature_names_out or m.features)
    out.print(f"n_nonzero: {m.n_nonzero} of {total} coefficients")
    rows = sorted(m.coefficient_rows(), key=lambda r: -abs(r["scaled"] or 0.0))
    coefs = Table(
        "feature", "coefficient", "scaled", title=f"top {min(TOP_COEFFICIENTS, total)} coefficients"
    )
    for row in rows[:TOP_COEFFICIENTS]:
        coefs.add_row(row["feature"], _num(row["coefficient"]), _num(row["scaled"]))
    out.print(coefs)
    for warning in m.warnings:
        err.print(f"[yellow]warning: {warning}[/yellow]")


# --- predictions ---------------------------------------------------------------------------


@app.command("predict", epilog=EPILOG)
def predict(
    model: ModelArg,
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV with a header row."),
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the CSV here (default stdout)."),
    ] = None,
    column: Annotated[
        str, typer.Option(help="Name of the added prediction column.")
    ] = "prediction",
    proba: Annotated[
        bool,
        typer.Option(
            "--proba", help="A classifier's probabilities: one column per class (COLUMN_<class>)."
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Predict every row of a CSV file: the rows come back with a prediction column.

    Columns are matched by name (extra columns, the target too, are ignored).
    """
    state = _state(json_output)
    found = resolve_model(state.client, model)
    with file.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            fail_usage(f"{file} is empty")
        predictions: list[Any] = []
        classes: list[Any] = []
        rows: list[list[str]] = []
        for chunk in _chunks(reader, PREDICT_CHUNK_ROWS):
            answer = state.client.predict_csv_answer(
                found.id, _csv_text(header, chunk), output="proba" if proba else "predict"
            )
            predictions.extend(answer["probabilities"] if proba else answer["predictions"])
            classes = answer.get("classes", classes)
            rows.extend(chunk)
    if state.json:
        key = "probabilities" if proba else "predictions"
        extra = {"classes": classes} if proba else {}
        text = json.dumps({"model_id": found.id, **extra, key: predictions})
        if output is None:
            print(text)
        else:
            output.write_text(text + "\n")
        return
    target = output.open("w", newline="") if output is not None else sys.stdout
    try:
        writer = csv.writer(target)
        if proba:
            writer.writerow([*header, *(f"{column}_{label}" for label in classes)])
            writer.writerows(
                [*row, *map(repr, values)] for row, values in zip(rows, predictions, strict=True)
            )
        else:
            writer.writerow([*header, column])
            writer.writerows(
                [*row, repr(value) if isinstance(value, float) else str(value)]
                for row, value in zip(rows, predictions, strict=True)
            )
    finally:
        if output is not None:
            target.close()
    if output is not None:
        err.print(f"wrote {len(predictions)} predictions to {output} ({found.id})")


def _chunks(reader: Iterator[list[str]], size: int) -> Iterator[list[list[str]]]:
    chunk: list[list[str]] = []
    for row in reader:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _csv_text(header: list[str], rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


# --- formatting ----------------------------------------------------------------------------


def _table(*columns: str, **options: Any) -> Table:
    """A table whose id columns never wrap (an id is copied whole or not at all)."""
    table = Table(**options)
    for name in columns:
        table.add_column(name, no_wrap=name in ("id", "dataset", "model"))
    return table


def _num(value: Any, digits: int = 6) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}g}"


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


# --- entry point ---------------------------------------------------------------------------


_loaded: set[int] = set()


def load_plugins(target: typer.Typer) -> None:
    """Adds the commands other installed distributions register (the server's), once."""
    if id(target) in _loaded:
        return
    _loaded.add(id(target))
    for entry in entry_points(group=PLUGIN_GROUP):
        try:
            register = entry.load()
            register(target)
        except Exception as exc:  # a broken plugin must not take the client commands down
            err.print(f"[yellow]regfit: could not load commands from {entry.value}: {exc}[/yellow]")


def run(target: typer.Typer, argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit code instead of exiting."""
    try:
        target(args=list(argv) if argv is not None else None, prog_name="regfit")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except JobFailed as exc:
        _report(exc, f"job {exc.job.id} {exc.job.status}")
        return EXIT_JOB_FAILED
    except ServiceUnreachable as exc:
        _report(exc, "service unreachable")
        return EXIT_UNREACHABLE
    except RegfitError as exc:
        _report(exc, "API error")
        return EXIT_API_ERROR
    except KeyboardInterrupt:
        err.print("interrupted")
        return EXIT_INTERRUPTED
    return EXIT_OK


def _report(exc: RegfitError, what: str) -> None:
    if STATE.json:
        print(json.dumps(exc.problem, indent=2), file=sys.stderr)
        return
    err.print(f"[red]regfit: {what}: {exc}[/red]")
    for item in exc.errors:
        err.print(f"  {item.get('loc', '')}: {item.get('msg', '')}")
    if exc.request_id:
        err.print(f"  request id: {exc.request_id}")


def main(argv: Sequence[str] | None = None) -> int:
    """The ``regfit`` console script: client commands plus any registered ones."""
    load_plugins(app)
    return run(app, argv)


if __name__ == "__main__":
    raise SystemExit(main())
