"""Settings: the one place that reads the environment (prefix ``REGFIT_``, or a ``.env`` file)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the service. Each field is read from ``REGFIT_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="REGFIT_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///./var/regfit.db"
    data_dir: Path = Path("./var/data")

    host: str = "127.0.0.1"
    port: int = 8000

    executor: Literal["local", "celery"] = "local"
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    # A local worker process is replaced by a fresh one after this many jobs.
    worker_max_jobs: int = Field(default=100, ge=1)
    # A worker (local or Celery) keeps the last dataset it read in memory, up to this size,
    # for the next job on the same dataset (its columns, and the row-major matrix of the
    # numeric ones when that fits too); 0 turns the cache off.
    dataset_cache_bytes: int = Field(default=512 * 1024**2, ge=0)
    # A worker keeps the memory of freed arrays up to this size for its next job instead of
    # returning it to the system and faulting it in again (glibc); 0: the C library's default.
    worker_reuse_memory_bytes: int = Field(default=256 * 1024**2, ge=0)
    # Native (BLAS/OpenMP) threads of each worker process; unset: the cores shared among the
    # workers (one per core across them: OpenBLAS threads spin while they wait).
    worker_blas_threads: int | None = Field(default=None, ge=1)
    # Threads one cross-validated search runs its folds on (never more than the folds);
    # unset: the machine's cores.
    search_threads: int | None = Field(default=None, ge=1)
    # Threads that parse one CSV or JSON Lines upload (Arrow's parsers release the GIL).
    parse_threads: int = Field(default_factory=lambda: min(os.cpu_count() or 1, 8), ge=1)
    broker_url: str = "redis://127.0.0.1:6379/0"
    worker_concurrency: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    # Celery: the queue `regfit worker` consumes and the API sends `run_job` to. A job whose
    # message the broker does not accept is retried until it has waited this long, then failed.
    celery_queue: str = Field(default="regfit", min_length=1)
    dispatch_timeout_seconds: float = Field(default=600.0, gt=0)

    # Limits: bad or oversized input is answered with 413/422, never a 500.
    max_upload_bytes: int = Field(default=2 * 1024**3, ge=1)
    max_rows: int = Field(default=50_000_000, ge=1)
    max_columns: int = Field(default=10_000, ge=1)
    max_predict_rows: int = Field(default=100_000, ge=1)
    # What a stored dataset may take once decoded (Arrow's in-memory size: 8 bytes a number,
    # the bytes of each string): a small Parquet or JSON file can decode to gigabytes. None:
    # 8 × max_upload_bytes, enough for a CSV of one-character cells.
    max_decoded_bytes: int | None = Field(default=None, ge=1)
    # Request bodies, checked from Content-Length and while streaming, before parsing:
    # uploads take max_upload_bytes, predictions max_predict_bytes (sized for
    # max_predict_rows), every other route max_request_bytes.
    max_predict_bytes: int = Field(default=128 * 1024**2, ge=1)
    max_request_bytes: int = Field(default=1024**2, ge=1)
    # Partial upload files older than this are swept from the data directory's tmp/ (at
    # start-up and every partial_sweep_interval_seconds): a crashed process leaves them.
    partial_file_max_age_seconds: float = Field(default=3600.0, gt=0)
    partial_sweep_interval_seconds: float = Field(default=300.0, gt=0)
    max_candidates: int = Field(default=10_000, ge=1)
    # Per-job work: candidate × fold fits of a search, and trials of a Bayesian one (each
    # proposed from all before it, so they cost more as they accumulate).
    max_job_fits: int = Field(default=100_000, ge=1)
    max_trials: int = Field(default=1_000, ge=1)
    # Queued + running jobs one API key may have (the open, keyless mode counts as one
    # caller); a submit beyond it gets 429 with Retry-After.
    max_active_jobs_per_key: int = Field(default=50, ge=1)
    # One-hot columns per text feature (rare values share an "infrequent" column, as
    # OneHotEncoder(max_categories=…)); a job's preprocessing may lower it.
    max_categories: int = Field(default=100, ge=2)
    # Distinct target values a classification job may have (task "classification").
    max_classes: int = Field(default=100, ge=2)
    # The design matrix a job may build (rows × columns × 8 bytes, times the copies its search
    # holds); beyond it the job is refused at submit or fails before building it.
    max_design_bytes: int = Field(default=4 * 1024**3, ge=1)
    job_time_limit_seconds: float = Field(default=3600.0, gt=0)
    job_max_attempts: int = Field(default=3, ge=1)
    heartbeat_seconds: float = Field(default=2.0, gt=0)
    stale_after_seconds: float = Field(default=30.0, gt=0)
    model_cache_size: int = Field(default=256, ge=1)
    # An API process keeps what a registry reference (name@alias, name/versions/n) resolves
    # to for this long: moving an alias takes effect everywhere within it (at most 1 s).
    registry_ref_cache_seconds: float = Field(default=1.0, ge=0, le=1.0)

    # Authentication (service/auth/). "auto": a key is required as soon as any key exists
    # (REGFIT_API_KEYS or `regfit keys create`), else the API is open, which `regfit serve`
    # allows on a loopback address only; "on": a key is always required; "off": open on purpose.
    auth: Literal["auto", "on", "off"] = "auto"
    # Comma-separated ``role:key`` pairs, e.g. ``admin:…,predictor:…`` (roles: admin, trainer,
    # predictor). Kept only as hashes in memory; keys created by the CLI live hashed in the DB.
    api_keys: SecretStr = SecretStr("")
    # Verified keys are cached this long, so a revocation takes effect within it.
    api_key_cache_seconds: float = Field(default=30.0, ge=0)
    # Signs the dashboard's session cookie; empty: a random secret per process (sessions
    # then end when the service restarts).
    ui_session_secret: SecretStr = SecretStr("")
    ui_session_hours: float = Field(default=12.0, gt=0)

    # Host headers served besides the loopback names and the bound address (comma-separated;
    # "*.example.com" matches subdomains, "*" any host): a guard against DNS rebinding.
    allowed_hosts: str = ""
    # Origins whose pages may send state-changing requests (comma-separated
    # "https://app.example.com"; "*" any). Other cross-site POST/PUT/PATCH/DELETE get 403.
    allowed_origins: str = ""

    def blas_threads_per_worker(self) -> int:
        """``worker_blas_threads``, or the cores divided among the ``workers``."""
        if self.worker_blas_threads is not None:
            return self.worker_blas_threads
        return max(1, (os.cpu_count() or 1) // self.workers)

    def search_thread_count(self) -> int:
        """``search_threads``, or the machine's cores."""
        return self.search_threads if self.search_threads is not None else os.cpu_count() or 1

    log_level: str = "info"
    log_json: bool = True
    access_log: bool = True  # one JSON line per request (turn off for the highest predict rates)

    @property
    def decoded_bytes_limit(self) -> int:
        """``max_decoded_bytes``, or its default of 8 × ``max_upload_bytes``."""
        return self.max_decoded_bytes or 8 * self.max_upload_bytes


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings, read once."""
    return Settings()
