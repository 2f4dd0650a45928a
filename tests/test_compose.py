"""docker-compose.yml checked without Docker: commands, settings, volumes, ports, dependencies.

What the containers run is exercised for real elsewhere: `regfit migrate`, `regfit worker`
and `regfit serve` with the Celery executor on PostgreSQL and Redis (tests/worker/test_celery.py).
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import typer
import yaml

from service.cli import build_app
from service.config import Settings

COMPOSE = Path(__file__).resolve().parent.parent / "docker-compose.yml"
REGFIT_IMAGE = "regfit:latest"
SCALE = ("postgres", "redis", "migrate", "api", "worker")
_INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?]([^}]*))?\}")


def resolve(value: Any) -> str:
    """A compose value with ``${VAR:-default}`` replaced by its default (an unset VAR)."""
    return _INTERPOLATION.sub(lambda m: m.group(2) or "", str(value))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def regfit_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in services(compose).items() if s.get("image") == REGFIT_IMAGE}


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {name: resolve(value) for name, value in env.items()}


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Target path → source (a named volume or a host path)."""
    found = {}
    for volume in service.get("volumes") or []:
        source, target = str(volume).split(":")[:2]
        found[target] = source
    return found


def test_the_default_is_the_single_container_and_scale_is_a_profile(
    compose: dict[str, Any],
) -> None:
    every = services(compose)
    assert "profiles" not in every["regfit"]
    assert environment(every["regfit"])["REGFIT_DATABASE_URL"].startswith("sqlite:")
    for name in SCALE:
        assert every[name].get("profiles") == ["scale"], name


def test_every_command_exists_in_the_cli(compose: dict[str, Any]) -> None:
    group = typer.main.get_command(build_app())
    commands = set()
    for name, service in regfit_services(compose).items():
        command = service["command"]
        assert command[0] == "regfit", name
        # Raises click's UsageError on an unknown command or option, as the shell would exit 2.
        ctx = group.make_context("regfit", [], resilient_parsing=True)
        cmd_name, cmd, rest = group.resolve_command(ctx, list(command[1:]))
        assert cmd is not None, name
        cmd.make_context(cmd_name, rest, parent=ctx)
        commands.add(cmd_name)
    assert commands == {"serve", "migrate", "worker"}


def test_every_regfit_variable_is_a_setting_and_valid(compose: dict[str, Any]) -> None:
    fields = set(Settings.model_fields)
    for name, service in services(compose).items():
        env = {k: v for k, v in environment(service).items() if k.startswith("REGFIT_")}
        for variable in env:
            assert variable.removeprefix("REGFIT_").lower() in fields, (name, variable)
        values = {k.removeprefix("REGFIT_").lower(): v for k, v in env.items()}
        Settings(**values, _env_file=None)  # type: ignore[arg-type]


def test_the_scale_services_share_one_configuration(compose: dict[str, Any]) -> None:
    every = services(compose)
    shared = ("REGFIT_DATABASE_URL", "REGFIT_DATA_DIR", "REGFIT_EXECUTOR", "REGFIT_BROKER_URL")
    envs = {name: environment(every[name]) for name in ("migrate", "api", "worker")}
    for variable in shared:
        assert len({env[variable] for env in envs.values()}) == 1, variable
    api = envs["api"]
    assert api["REGFIT_EXECUTOR"] == "celery"
    assert api["REGFIT_DATABASE_URL"].startswith("postgresql://")
    assert "@postgres:5432/" in api["REGFIT_DATABASE_URL"]
    assert api["REGFIT_BROKER_URL"].startswith("redis://redis:6379/")
    # Bound to 0.0.0.0: keys are passed through and auth is not switched off by default.
    assert api["REGFIT_HOST"] == "0.0.0.0" and api["REGFIT_AUTH"] != "off"
    assert "REGFIT_API_KEYS" in api
    assert every["worker"]["deploy"]["replicas"] >= 2


def test_volumes_are_declared_and_the_data_volume_is_shared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in services(compose).items():
        for source in mounts(service).values():
            if not source.startswith((".", "/", "~")):
                assert source in declared, (name, source)
    every = services(compose)
    for group in (["regfit"], ["api", "worker"]):
        data_dirs = {environment(every[n])["REGFIT_DATA_DIR"] for n in group}
        assert len(data_dirs) == 1
        data_dir = PurePosixPath(data_dirs.pop())
        volumes = {mounts(every[n]).get(str(data_dir.parent)) for n in group}
        assert len(volumes) == 1 and None not in volumes, (group, data_dir)
        assert volumes.pop() in declared
    assert mounts(every["api"]) == mounts(every["worker"])


def test_ports_and_healthchecks_line_up(compose: dict[str, Any]) -> None:
    for name in ("regfit", "api"):
        service = services(compose)[name]
        port = environment(service)["REGFIT_PORT"]
        published = [resolve(p) for p in service["ports"]]
        assert all(p.rsplit(":", 1)[1] == port for p in published), published
        assert all(p.startswith("127.0.0.1:") for p in published), "published on loopback only"
        check = " ".join(service["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}/" in check, check
    for name, service in services(compose).items():
        if name != "migrate":
            assert "healthcheck" in service, name


def test_dependencies_exist_and_wait_for_the_right_state(compose: dict[str, Any]) -> None:
    every = services(compose)
    for name, service in every.items():
        for target, rule in (service.get("depends_on") or {}).items():
            assert target in every, (name, target)
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in every[target], (name, target)
            elif condition == "service_completed_successfully":
                assert every[target].get("restart") == "no", (name, target)
            else:
                raise AssertionError(f"{name} → {target}: unexpected condition {condition}")
    assert every["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        depends = every[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert {"postgres", "redis"} <= set(depends)
