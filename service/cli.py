"""The ``regfit`` command: ``serve``, ``migrate``, ``worker``, ``keys``."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from collections.abc import Sequence
from typing import Any

from service.config import Settings, get_settings


def _migrate(settings: Settings, *, quiet: bool = False) -> None:
    from service import migrate

    alembic_log = logging.getLogger("alembic")
    level = alembic_log.level
    if quiet:  # `regfit keys …` prints its own result, not Alembic's progress
        alembic_log.setLevel(logging.WARNING)
    try:
        migrate.upgrade_to_head(settings.database_url)
    finally:
        alembic_log.setLevel(level)


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    """Applies pending migrations and exits."""
    _migrate(settings)
    print(f"database at migrations head ({settings.database_url})")
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Applies pending migrations, then serves the API."""
    import uvicorn

    from service import auth

    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    settings = settings.model_copy(update={"host": host, "port": port})
    try:  # before migrating or binding anything
        settings = auth.check_serve_auth(settings, host)
    except auth.AuthConfigError as exc:
        print(f"regfit: {exc}", file=sys.stderr)
        return 2
    _migrate(settings)
    from service.main import create_app

    app = create_app(settings)
    uvicorn.run(app, host=host, port=port, log_level=settings.log_level, **server_options())
    return 0


def server_options() -> dict[str, Any]:
    """uvicorn settings of ``regfit serve`` (benchmarks/floor_app.py serves with the same).

    uvloop and httptools are named explicitly, so a missing wheel shows as a warning, not as
    a silently slower prediction path. One process: on a 2-core machine a second uvicorn
    worker competes with wrk-like clients and the training workers for the same cores, and
    each API process would run its own dispatcher with its own ``REGFIT_WORKERS`` slots
    (see benchmarks/README.md, "Server processes").
    """
    loop, http = "uvloop", "httptools"
    if importlib.util.find_spec("uvloop") is None:
        logging.getLogger("regfit").warning("uvloop is not installed; using asyncio's loop")
        loop = "asyncio"
    if importlib.util.find_spec("httptools") is None:
        logging.getLogger("regfit").warning("httptools is not installed; using h11")
        http = "h11"
    return {
        "loop": loop,
        "http": http,
        "access_log": False,  # our middleware writes the access lines, with request ids
        "log_config": None,  # keep the JSON handler configure_logging installed
    }


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Runs a Celery worker for ``REGFIT_EXECUTOR=celery``."""
    from service.worker.celery_app import run_worker

    return run_worker(settings, concurrency=args.concurrency)


def cmd_keys_create(args: argparse.Namespace, settings: Settings) -> int:
    """Creates an API key and prints it once (stdout: the key alone, for scripts)."""
    from service import auth
    from service.db import Database

    _migrate(settings, quiet=True)
    db = Database(settings.database_url)
    try:
        with db.session() as session:
            row, key = auth.create(session=session, role=args.role, name=args.name)
    finally:
        db.dispose()
    print(key)
    print(
        f"created {row.id} (role {row.role}); the key is shown only this once",
        file=sys.stderr,
    )
    return 0


def cmd_keys_list(args: argparse.Namespace, settings: Settings) -> int:
    """Lists API keys (id, role, name, prefix, created, revoked); never the keys."""
    from service import auth
    from service.db import Database

    _migrate(settings, quiet=True)
    db = Database(settings.database_url)
    lines = [f"{'id':<36}  {'role':<9}  {'prefix':<8}  {'created':<20}  {'revoked':<20}  name"]
    try:
        with db.session(readonly=True) as session:
            for row in auth.list_all(session=session):
                created = row.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")
                revoked = row.revoked_at.strftime("%Y-%m-%dT%H:%M:%SZ") if row.revoked_at else "-"
                lines.append(
                    f"{row.id:<36}  {row.role:<9}  {row.prefix:<8}  {created:<20}  "
                    f"{revoked:<20}  {row.name or ''}"
                )
    finally:
        db.dispose()
    print("\n".join(lines))
    return 0


def cmd_keys_revoke(args: argparse.Namespace, settings: Settings) -> int:
    """Revokes an API key; servers stop accepting it within REGFIT_API_KEY_CACHE_SECONDS."""
    from service import auth, errors
    from service.db import Database

    _migrate(settings, quiet=True)
    db = Database(settings.database_url)
    try:
        with db.session() as session:
            row = auth.revoke(session=session, key_id=args.key_id)
    except errors.NotFound as exc:
        print(f"regfit: {exc.detail}", file=sys.stderr)
        return 1
    finally:
        db.dispose()
    print(f"revoked {row.id} (role {row.role})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="regfit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="apply migrations and serve the API")
    serve.add_argument("--host", default=None, help="bind address (default REGFIT_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default REGFIT_PORT, 8000)")
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="apply pending migrations and exit")
    migrate.set_defaults(func=cmd_migrate)

    worker = sub.add_parser("worker", help="run a Celery worker (REGFIT_EXECUTOR=celery)")
    worker.add_argument("--concurrency", type=int, default=None)
    worker.set_defaults(func=cmd_worker)

    keys = sub.add_parser("keys", help="create, list and revoke API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key and print it once")
    create.add_argument("--role", required=True, choices=["admin", "trainer", "predictor"])
    create.add_argument("--name", default=None, help="a label to recognize the key by")
    create.set_defaults(func=cmd_keys_create)
    keys_sub.add_parser("list", help="list keys (never the keys themselves)").set_defaults(
        func=cmd_keys_list
    )
    revoke = keys_sub.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id", metavar="ID")
    revoke.set_defaults(func=cmd_keys_revoke)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from service import observability

    args = build_parser().parse_args(argv)
    get_settings.cache_clear()  # read the environment now (main() may run more than once)
    settings = get_settings()
    observability.configure_logging(settings)
    return int(args.func(args, settings))


if __name__ == "__main__":
    raise SystemExit(main())
