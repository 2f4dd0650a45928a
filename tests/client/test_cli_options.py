"""The ``regfit`` command line without a server: option forms, the job body they build,
help on every command, and the server's commands mounted in the client's application."""

from __future__ import annotations

import numpy as np
import pytest
import typer
from regfit import cli
from typer.testing import CliRunner

from service.cli import SERVER_COMMANDS, build_app


def test_value_forms() -> None:
    assert cli.parse_values("0.1", "--alpha") == 0.1
    assert cli.parse_values("0.01,0.1,1", "--alpha") == [0.01, 0.1, 1.0]
    assert cli.parse_values("1e-3:10:log", "--alpha") == {"low": 1e-3, "high": 10.0, "log": True}
    assert cli.parse_values("0:1", "--l1-ratio") == {"low": 0.0, "high": 1.0, "log": False}
    grid = cli.parse_values("1e-3:10:30:log", "--alpha")
    np.testing.assert_allclose(grid, np.geomspace(1e-3, 10, 30), rtol=1e-12)
    assert isinstance(grid, list) and (grid[0], grid[-1]) == (1e-3, 10.0)
    np.testing.assert_allclose(
        cli.parse_values("0.1:0.9:5", "--l1-ratio"), np.linspace(0.1, 0.9, 5), rtol=1e-12
    )
    for bad in ("a", "1:2:3:4:5", "0:10:3:log", "1:2:zero"):
        with pytest.raises(typer.BadParameter):
            cli.parse_values(bad, "--alpha")


def spec(**options: object) -> dict[str, object]:
    defaults: dict[str, object] = dict(
        dataset_id="ds_1", target="y", penalty="", alpha=None, l1_ratio=None, lambda1=None,
        lambda2=None, compare=None, search=None, folds=None, shuffle_folds=False, select=None,
        trials=None, scoring=None, timeout=None, seed=None, features=None, test_size=None,
        name=None,
    )  # fmt: skip
    return cli.build_job_spec(**{**defaults, **options})  # type: ignore[arg-type]


def test_job_bodies() -> None:
    assert spec(alpha="0.1") == {
        "dataset_id": "ds_1",
        "target": "y",
        "penalty": {"type": "l1", "alpha": 0.1},
    }
    grid = spec(penalty="l2", alpha="0.1,1", folds=3, select="1se")
    assert grid["penalty"] == {"type": "l2"}
    assert grid["tuning"] == {
        "strategy": "grid",
        "space": {"alpha": [0.1, 1.0]},
        "cv": {"folds": 3},
        "select": "1se",
    }
    # A searched penalty still has a top-level one (the first compared); a fixed l1_ratio
    # goes to the space, where it applies to the ElasticNet candidates only.
    compared = spec(compare="l2,elasticnet", alpha="1", l1_ratio="0.3", shuffle_folds=True)
    assert compared["penalty"] == {"type": "l2", "alpha": 1.0}
    assert compared["tuning"] == {
        "strategy": "grid",
        "space": {"penalty": ["l2", "elasticnet"], "l1_ratio": [0.3]},
        "cv": {"shuffle": True, "random_state": 0},
    }
    random = spec(penalty="elasticnet", search="random", alpha="1e-3:1:log", trials=7, seed=5)
    assert random["tuning"] == {
        "strategy": "random",
        "space": {"alpha": {"low": 1e-3, "high": 1.0, "log": True}},
        "n_trials": 7,
        "random_state": 5,
    }
    seed_form = spec(lambda1=0.2, lambda2=0.1, features="a, b", test_size=0.0, name="n")
    assert seed_form["penalty"] == {"lambda1": 0.2, "lambda2": 0.1}
    assert (seed_form["features"], seed_form["split"], seed_form["name"]) == (
        ["a", "b"],
        {"test_size": 0.0},
        "n",
    )
    with pytest.raises(typer.Exit) as usage:
        spec(alpha="0.1", folds=5)
    assert usage.value.exit_code == cli.EXIT_USAGE


def leaf_commands(group: typer.Typer, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [(*prefix, c.name or "") for c in group.registered_commands]
    for sub in group.registered_groups:
        assert sub.typer_instance is not None and sub.name is not None
        found += [(*prefix, sub.name), *leaf_commands(sub.typer_instance, (*prefix, sub.name))]
    return found


def test_every_command_has_help_and_client_commands_take_json() -> None:
    app = build_app()
    commands = leaf_commands(app)
    names = {c[0] for c in commands}
    assert {"datasets", "train", "predict", "jobs", "models", *SERVER_COMMANDS} <= names
    assert len(commands) == len(set(commands)), "a command is registered twice"
    runner = CliRunner()
    for command in [(), *commands]:
        shown = runner.invoke(app, [*command, "--help"], prog_name="regfit")
        assert shown.exit_code == 0, (command, shown.output)
        assert "Usage: regfit" in shown.output, command
        is_group = command in {("datasets",), ("jobs",), ("models",), ("keys",)}
        if command and command[0] not in SERVER_COMMANDS and not is_group:
            assert "--json" in shown.output, command
    # Loading the plugins again (a second main() in one process) adds nothing.
    assert leaf_commands(build_app()) == commands
