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
    max_candidates: int = Field(default=10_000, ge=1)
    job_time_limit_seconds: float = Field(default=3600.0, gt=0)
    job_max_attempts: int = Field(default=3, ge=1)
    heartbeat_seconds: float = Field(default=2.0, gt=0)
    stale_after_seconds: float = Field(default=30.0, gt=0)
    model_cache_size: int = Field(default=256, ge=1)
    # An API process keeps what a registry reference (name@alias, name/versions/n) resolves
    # to for this long: moving an alias takes effect everywhere within it (at most 1 s).
    registry_ref_cache_seconds: float = Field(default=1.0, ge=0, le=1.0)

    # Authentication (service/auth.py). "auto": a key is required as soon as any key exists
    # (REGFIT_API_KEYS or `regfit keys create`), else the API is open, which `regfit serve`
    # allows on a loopback address only; "on": a key is always required; "off": open on purpose.
    auth: Literal["auto", "on", "off"] = "auto"
    # Comma-separated ``role:key`` pairs, e.g. ``admin:…,predictor:…`` (roles: admin, trainer,
    # predictor). Kept only as hashes in memory; keys created by the CLI live hashed in the DB.
    api_keys: SecretStr = SecretStr("")
    # Verified keys are cached this long, so a revocation takes effect within it.
    api_key_cache_seconds: float = Field(default=30.0, ge=0)

    log_level: str = "info"
    log_json: bool = True
    access_log: bool = True  # one JSON line per request (turn off for the highest predict rates)


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings, read once."""
    return Settings()
