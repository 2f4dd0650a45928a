"""The `regfit serve` start-up check: how the service may start with the keys that exist."""

from __future__ import annotations

import ipaddress
import logging

from sqlalchemy import inspect

from service.auth.keys import count_active, parse_env_keys
from service.config import Settings
from service.db import Database
from service.tables import ApiKey

log = logging.getLogger("regfit.auth")


class AuthConfigError(Exception):
    """The service must not start with this authentication configuration."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _stored_key_count(database_url: str) -> int:
    db = Database(database_url)
    try:
        if not inspect(db.engine).has_table(ApiKey.__tablename__):
            return 0  # not migrated yet, so no key was ever created
        with db.session(readonly=True) as session:
            return count_active(session=session)
    finally:
        db.dispose()


def check_serve_auth(settings: Settings, host: str) -> Settings:
    """Decide how ``regfit serve`` may start on ``host``, before anything binds.

    Returns the settings to serve with (``auth=on`` when keys exist, so revoking every
    key later refuses requests rather than opening the API), or raises
    :class:`AuthConfigError` with the reason the service must not start.
    """
    try:
        env_keys = parse_env_keys(settings.api_keys.get_secret_value())
    except ValueError as exc:
        raise AuthConfigError(str(exc)) from exc
    keys = len(env_keys) + _stored_key_count(settings.database_url)
    if settings.auth == "off":
        log.warning(
            "REGFIT_AUTH=off: authentication is disabled — anyone who can reach %s can call "
            "every route, including training and deletion%s",
            host,
            f"; the {keys} configured API key(s) are ignored" if keys else "",
        )
        return settings
    if keys:
        return settings.model_copy(update={"auth": "on"})
    create_hint = "create one with `regfit keys create --role admin` or set REGFIT_API_KEYS"
    if settings.auth == "on":
        raise AuthConfigError(f"REGFIT_AUTH=on but no API key exists; {create_hint}")
    if not is_loopback(host):
        raise AuthConfigError(
            f"refusing to serve on {host} without API keys: {create_hint}, "
            "or set REGFIT_AUTH=off to run open on purpose"
        )
    log.warning("running without API keys on %s — anyone on this machine can use it", host)
    return settings
