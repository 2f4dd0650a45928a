"""The server's commands of ``regfit``: ``serve``, ``migrate``, ``worker``, ``keys``.

The ``regfit`` console script belongs to the client distribution (clients/python, import
name ``regfit``): it loads these commands through the entry-point group
``regfit.commands`` (registered in this project's pyproject.toml), so one command holds
both the client's and the server's. ``python -m service …`` runs the same application;
without the client installed it has the server's commands only.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from service.config import Settings

ROLES = ("admin", "trainer", "predictor")


def current_settings() -> Settings:
    """The environment read now (a process may run several commands) and logging set up.

    Imported here, not at the top: every ``regfit`` invocation (a client command too) loads
    this module to list the server's commands, and should not pay for the settings' imports.
    """
    from service import observability
    from service.config import get_settings

    get_settings.cache_clear()
    settings = get_settings()
    observability.configure_logging(settings)
    return settings


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


def migrate() -> None:
    """Apply pending migrations and exit."""
    settings = current_settings()
    _migrate(settings)
    print(f"database at migrations head ({settings.database_url})")


def serve(
    host: Annotated[
        str | None, typer.Option(help="Bind address (default REGFIT_HOST, 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default REGFIT_PORT, 8000).")] = None,
) -> None:
    """Apply pending migrations, then serve the API."""
    import uvicorn

    from service import auth

    settings = current_settings()
    host = host or settings.host
    port = port if port is not None else settings.port
    settings = settings.model_copy(update={"host": host, "port": port})
    try:  # before migrating or binding anything
        settings = auth.check_serve_auth(settings, host)
    except auth.AuthConfigError as exc:
        print(f"regfit: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    _migrate(settings)
    from service.main import create_app

    app = create_app(settings)
    uvicorn.run(app, host=host, port=port, log_level=settings.log_level, **server_options())


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


def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Processes (default REGFIT_WORKER_CONCURRENCY).")
    ] = None,
) -> None:
    """Run a Celery worker (REGFIT_EXECUTOR=celery)."""
    from service.worker.celery_app import run_worker

    code = run_worker(current_settings(), concurrency=concurrency)
    if code:
        raise typer.Exit(code)


def keys_create(
    role: Annotated[str, typer.Option(help="admin, trainer or predictor.")],
    name: Annotated[str | None, typer.Option(help="A label to recognize the key by.")] = None,
) -> None:
    """Create an API key and print it once (stdout: the key alone, for scripts)."""
    from service import auth
    from service.db import Database

    if role not in ROLES:
        print(f"regfit: --role must be one of {', '.join(ROLES)}", file=sys.stderr)
        raise typer.Exit(2)
    settings = current_settings()
    _migrate(settings, quiet=True)
    db = Database(settings.database_url)
    try:
        with db.session() as session:
            row, key = auth.create(session=session, role=role, name=name)
    finally:
        db.dispose()
    print(key)
    print(
        f"created {row.id} (role {row.role}); the key is shown only this once",
        file=sys.stderr,
    )


def keys_list() -> None:
    """List API keys (id, role, name, prefix, created, revoked); never the keys."""
    from service import auth
    from service.db import Database

    settings = current_settings()
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


def keys_revoke(key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id.")]) -> None:
    """Revoke an API key; servers stop accepting it within REGFIT_API_KEY_CACHE_SECONDS."""
    from service import auth, errors
    from service.db import Database

    settings = current_settings()
    _migrate(settings, quiet=True)
    db = Database(settings.database_url)
    try:
        with db.session() as session:
            row = auth.revoke(session=session, key_id=key_id)
    except errors.NotFound as exc:
        print(f"regfit: {exc.detail}", file=sys.stderr)
        raise typer.Exit(1) from None
    finally:
        db.dispose()
    print(f"revoked {row.id} (role {row.role})")


SERVER_COMMANDS = ("serve", "migrate", "worker", "keys")


def register(app: typer.Typer) -> None:
    """Adds the server's commands to a ``regfit`` typer application (the client's)."""
    app.command("serve", help="Apply pending migrations, then serve the API.")(serve)
    app.command("migrate", help="Apply pending migrations and exit.")(migrate)
    app.command("worker", help="Run a Celery worker (REGFIT_EXECUTOR=celery).")(worker)
    keys = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
    keys.command("create")(keys_create)
    keys.command("list")(keys_list)
    keys.command("revoke")(keys_revoke)
    app.add_typer(keys, name="keys")


def _has_server_commands(app: typer.Typer) -> bool:
    return any(c.name == "serve" for c in app.registered_commands)


def build_app() -> typer.Typer:
    """The whole ``regfit`` application: the client's commands (when installed) and ours."""
    try:
        from regfit import cli as client_cli
    except ImportError:
        app = typer.Typer(name="regfit", help=__doc__, no_args_is_help=True, add_completion=False)
        register(app)
        return app
    client_cli.load_plugins(client_cli.app)
    if not _has_server_commands(client_cli.app):  # run from a tree the entry point misses
        register(client_cli.app)
    return client_cli.app


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``regfit`` with ``argv``; returns the exit code."""
    app = build_app()
    try:
        from regfit.cli import run
    except ImportError:
        try:
            app(args=list(argv) if argv is not None else None, prog_name="regfit")
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return 0
    return run(app, argv)


if __name__ == "__main__":
    raise SystemExit(main())
