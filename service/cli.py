"""The ``regfit`` command: ``serve``, ``migrate``, ``worker``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from service.config import Settings, get_settings


def _migrate(settings: Settings) -> None:
    from service import migrate

    migrate.upgrade_to_head(settings.database_url)


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    """Applies pending migrations and exits."""
    _migrate(settings)
    print(f"database at migrations head ({settings.database_url})")
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Applies pending migrations, then serves the API."""
    import uvicorn

    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    settings = settings.model_copy(update={"host": host, "port": port})
    _migrate(settings)
    from service.main import create_app

    app = create_app(settings)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=settings.log_level,
        loop="auto",
        http="auto",
        access_log=False,
    )
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Runs a Celery worker for ``REGFIT_EXECUTOR=celery``."""
    from service.jobs.celery_app import run_worker

    return run_worker(settings, concurrency=args.concurrency)


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr)
    return int(args.func(args, settings))


if __name__ == "__main__":
    raise SystemExit(main())
