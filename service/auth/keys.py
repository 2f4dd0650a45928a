"""API keys: ``REGFIT_API_KEYS`` parsing, keys in the database (only their SHA-256), and the
:class:`KeyStore` that verifies a presented key through a TTL cache."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
import uuid
from dataclasses import dataclass

import anyio.to_thread
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service import errors
from service.auth.roles import ROLES
from service.config import Settings
from service.db import Database, utcnow
from service.tables import ApiKey

log = logging.getLogger("regfit.auth")

_KEY_CACHE_SIZE = 10_000
KEY_PREFIX = "rfk_"


def hash_key(key: str) -> str:
    """The SHA-256 hex digest under which a key is stored."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the role of the key and the key's id (never the key)."""

    role: str
    key_id: str


def parse_env_keys(text: str) -> list[tuple[str, Principal]]:
    """Parse ``REGFIT_API_KEYS`` (``role:key,role:key``) into (digest, principal) pairs."""
    keys: list[tuple[str, Principal]] = []
    for number, entry in enumerate((e.strip() for e in text.split(",")), start=1):
        if not entry:
            continue
        role, sep, key = entry.partition(":")
        role, key = role.strip().lower(), key.strip()
        if not sep or role not in ROLES or not key:
            # Never echo the entry: it holds a secret.
            raise ValueError(
                f"REGFIT_API_KEYS entry {number} is not 'role:key' with a role among "
                f"{', '.join(ROLES)}"
            )
        if len(key) < 16:
            log.warning("REGFIT_API_KEYS entry %d is shorter than 16 characters", number)
        keys.append((hash_key(key), Principal(role, f"env-{number}")))
    return keys


# --- keys in the database ----------------------------------------------------------------


def create(*, session: Session, role: str, name: str | None = None) -> tuple[ApiKey, str]:
    """Creates a key; returns its row and the key itself, which is not stored anywhere."""
    if role not in ROLES:
        raise errors.InvalidInput(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        id="key_" + uuid.uuid4().hex,
        name=name,
        role=role,
        key_hash=hash_key(key),
        prefix=key[:8],
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return row, key


def list_all(*, session: Session) -> list[ApiKey]:
    """Lists every key, revoked ones included, newest first."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at.desc())))


def revoke(*, session: Session, key_id: str) -> ApiKey:
    """Revokes a key by its id (idempotent)."""
    row = session.get(ApiKey, key_id)
    if row is None:
        raise errors.NotFound(f"no API key with id {key_id!r}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    return row


def count_active(*, session: Session) -> int:
    """Counts the keys that are not revoked."""
    return int(session.scalar(select(func.count()).where(ApiKey.revoked_at.is_(None))) or 0)


def find_active(*, session: Session, digest: str) -> Principal | None:
    """The principal of the active key with this digest, if any."""
    row = session.scalars(
        select(ApiKey).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
    ).first()
    if row is None or row.role not in ROLES or not hmac.compare_digest(row.key_hash, digest):
        return None
    return Principal(row.role, row.id)


class KeyStore:
    """Verifies keys: the ``REGFIT_API_KEYS`` digests, then the database through a TTL cache."""

    def __init__(self, app: FastAPI, settings: Settings) -> None:
        self.app = app
        self.mode = settings.auth
        self.ttl = settings.api_key_cache_seconds
        self.env_keys = parse_env_keys(settings.api_keys.get_secret_value())
        self.enforced = self.mode == "on" or (self.mode == "auto" and bool(self.env_keys))
        self._next_check = 0.0
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    @staticmethod
    def _database_has_keys(db: Database | None) -> bool:
        if db is None:
            return False
        with db.session(readonly=True) as session:
            return count_active(session=session) > 0

    @staticmethod
    def _lookup(db: Database | None, digest: str) -> Principal | None:
        if db is None:
            return None
        with db.session(readonly=True) as session:
            return find_active(session=session, digest=digest)

    async def is_enforced(self, db: Database | None) -> bool:
        """Whether requests need a key (``auto``: once any key exists, for good)."""
        if self.enforced or self.mode == "off":
            return self.enforced
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + self.ttl
            if await anyio.to_thread.run_sync(self._database_has_keys, db):
                log.info("an API key exists now: requests need a key from here on")
                self.enforced = True
        return self.enforced

    async def authenticate(self, key: str, db: Database | None) -> Principal | None:
        """The principal of ``key``, or ``None`` when it is unknown or revoked."""
        digest = hash_key(key)
        for known, principal in self.env_keys:
            if hmac.compare_digest(known, digest):
                return principal
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await anyio.to_thread.run_sync(self._lookup, db, digest)
        if len(self._cache) >= _KEY_CACHE_SIZE:  # bounded: wrong keys are cached too
            self._cache.clear()
        self._cache[digest] = (now + self.ttl, found)
        return found
