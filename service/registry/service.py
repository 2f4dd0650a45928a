"""Registry store: names, their numbered versions (each an immutable model) and aliases.

As MLflow's registry (``create_model_version``, ``set_registered_model_alias``,
``get_model_version_by_alias``) over ``registered_models``, ``model_versions`` and
``registered_model_aliases``. Services only flush; the request's session commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import delete as sql_delete
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service import errors
from service.db import utcnow
from service.tables import Model, ModelVersion, RegisteredModel, RegisteredModelAlias

# ``{name}@latest`` names the highest version; ``/v2/models/{name}`` without a version is
# answered by the ``champion`` alias when it is set, else by the latest version.
LATEST = "latest"
DEFAULT_ALIAS = "champion"


@dataclass(frozen=True, slots=True)
class Resolved:
    """The model a reference names, and the registry version it was reached through."""

    model_id: str
    name: str | None = None
    version: int | None = None


def create(
    *, session: Session, name: str, description: str | None, tags: Mapping[str, str]
) -> RegisteredModel:
    """Creates a registered name (409 when it exists)."""
    if session.get(RegisteredModel, name) is not None:
        raise errors.Conflict(
            f"registered model {name!r} already exists",
            errors=[errors.field_error("/name", "already exists")],
        )
    now = utcnow()
    row = RegisteredModel(
        name=name,
        description=description,
        tags=dict(tags),
        last_version=0,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    return row


def get(*, session: Session, name: str) -> RegisteredModel:
    """Gets a registered name."""
    row = session.get(RegisteredModel, name)
    if row is None:
        raise errors.NotFound(f"registered model {name!r} does not exist")
    return row


def list_page(*, session: Session, limit: int, offset: int) -> tuple[list[RegisteredModel], int]:
    """Lists registered names, newest first."""
    rows = session.scalars(
        select(RegisteredModel)
        .order_by(RegisteredModel.created_at.desc(), RegisteredModel.name.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    total = session.scalar(select(func.count()).select_from(RegisteredModel))
    return list(rows), int(total or 0)


def versions_of(*, session: Session, name: str) -> list[ModelVersion]:
    """A name's versions, newest first."""
    return list(
        session.scalars(
            select(ModelVersion)
            .where(ModelVersion.name == name)
            .order_by(ModelVersion.version.desc())
        )
    )


def aliases_of(*, session: Session, name: str) -> dict[str, int]:
    """A name's aliases → version numbers."""
    rows = session.execute(
        select(RegisteredModelAlias.alias, RegisteredModelAlias.version)
        .where(RegisteredModelAlias.name == name)
        .order_by(RegisteredModelAlias.alias)
    )
    return {alias: version for alias, version in rows}


def update_name(
    *,
    session: Session,
    name: str,
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> RegisteredModel:
    """Updates a name's description and/or tags (tags are replaced as a whole)."""
    row = get(session=session, name=name)
    if description is not None:
        row.description = description
    if tags is not None:
        row.tags = dict(tags)
    row.updated_at = utcnow()
    session.flush()
    return row


def delete_name(*, session: Session, name: str) -> None:
    """Deletes a name with its versions and aliases; the models stay."""
    get(session=session, name=name)
    session.execute(sql_delete(RegisteredModelAlias).where(RegisteredModelAlias.name == name))
    session.execute(sql_delete(ModelVersion).where(ModelVersion.name == name))
    session.execute(sql_delete(RegisteredModel).where(RegisteredModel.name == name))


def _features_and_task(session: Session, model_id: str) -> tuple[str, list[tuple[str, str]]]:
    portable = session.scalar(select(Model.portable).where(Model.id == model_id))
    if portable is None:
        raise errors.InvalidInput(
            f"model {model_id!r} does not exist",
            errors=[errors.field_error("/model_id", "no such model")],
        )
    doc: dict[str, Any] = orjson.loads(portable)
    # Every stored format so far is a regression; a later format names its task.
    task = str(doc.get("task", "regression"))
    return task, [(f["name"], f["kind"]) for f in doc["features"]]


def _check_compatible(session: Session, name: str, model_id: str) -> None:
    """A name's versions share their features (names, order, kinds) and task."""
    task, features = _features_and_task(session, model_id)
    latest = session.scalars(
        select(ModelVersion).where(ModelVersion.name == name).order_by(ModelVersion.version.desc())
    ).first()
    if latest is None:
        return
    their_task, theirs = _features_and_task(session, latest.model_id)
    differences = []
    if task != their_task:
        differences.append(f"task {task!r} instead of {their_task!r}")
    if features != theirs:
        mine, other = dict(features), dict(theirs)
        missing = [n for n in other if n not in mine]
        extra = [n for n in mine if n not in other]
        kinds = [
            f"{n!r} is {mine[n]} not {other[n]}" for n in mine if n in other and mine[n] != other[n]
        ]
        if missing:
            differences.append(f"missing feature(s) {', '.join(map(repr, missing))}")
        if extra:
            differences.append(f"extra feature(s) {', '.join(map(repr, extra))}")
        differences.extend(kinds)
        if not (missing or extra or kinds):
            differences.append(
                f"features in another order ({', '.join(mine)} instead of {', '.join(other)})"
            )
    if differences:
        raise errors.InvalidInput(
            f"model {model_id!r} does not match version {latest.version} of {name!r}: "
            + "; ".join(differences),
            errors=[errors.field_error("/model_id", "; ".join(differences))],
        )


def create_version(
    *,
    session: Session,
    name: str,
    model_id: str,
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> ModelVersion:
    """Registers ``model_id`` as the next version of ``name``."""
    now = utcnow()
    # The UPDATE takes the name's row lock first (PostgreSQL; SQLite writes one at a time):
    # two registrations at once get two numbers, and the second is checked against the first.
    # On an error the transaction rolls back, number included.
    version = session.execute(
        update(RegisteredModel)
        .where(RegisteredModel.name == name)
        .values(last_version=RegisteredModel.last_version + 1, updated_at=now)
        .returning(RegisteredModel.last_version)
    ).scalar_one_or_none()
    if version is None:
        raise errors.NotFound(f"registered model {name!r} does not exist")
    _check_compatible(session, name, model_id)
    row = ModelVersion(
        name=name,
        version=version,
        model_id=model_id,
        description=description,
        tags=dict(tags or {}),
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    session.expire_all()  # the name's row changed behind the ORM's back
    return row


def get_version(*, session: Session, name: str, version: int) -> ModelVersion:
    """Gets version ``version`` of ``name``."""
    row = session.get(ModelVersion, (name, version))
    if row is None:
        get(session=session, name=name)
        raise errors.NotFound(f"registered model {name!r} has no version {version}")
    return row


def aliases_of_version(*, session: Session, name: str, version: int) -> list[str]:
    """The aliases pointing at one version."""
    return list(
        session.scalars(
            select(RegisteredModelAlias.alias)
            .where(RegisteredModelAlias.name == name, RegisteredModelAlias.version == version)
            .order_by(RegisteredModelAlias.alias)
        )
    )


def update_version(
    *,
    session: Session,
    name: str,
    version: int,
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> ModelVersion:
    """Updates a version's description and/or tags (its model never changes)."""
    row = get_version(session=session, name=name, version=version)
    if description is not None:
        row.description = description
    if tags is not None:
        row.tags = dict(tags)
    row.updated_at = utcnow()
    session.flush()
    return row


def delete_version(*, session: Session, name: str, version: int) -> None:
    """Deletes a version and the aliases pointing at it; its number is not reused."""
    get_version(session=session, name=name, version=version)
    session.execute(
        sql_delete(RegisteredModelAlias).where(
            RegisteredModelAlias.name == name, RegisteredModelAlias.version == version
        )
    )
    session.execute(
        sql_delete(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == version)
    )


def set_alias(*, session: Session, name: str, alias: str, version: int) -> RegisteredModelAlias:
    """Points ``alias`` of ``name`` at ``version`` (creating or moving it)."""
    get_version(session=session, name=name, version=version)
    row = session.get(RegisteredModelAlias, (name, alias))
    if row is None:
        row = RegisteredModelAlias(name=name, alias=alias, version=version, updated_at=utcnow())
        session.add(row)
    else:
        row.version = version
        row.updated_at = utcnow()
    session.flush()
    return row


def delete_alias(*, session: Session, name: str, alias: str) -> None:
    """Deletes an alias."""
    result = session.execute(
        sql_delete(RegisteredModelAlias).where(
            RegisteredModelAlias.name == name, RegisteredModelAlias.alias == alias
        )
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        get(session=session, name=name)
        raise errors.NotFound(f"registered model {name!r} has no alias {alias!r}")


def register_job_model(
    *, session: Session, name: str, model_id: str, alias: str | None, description: str | None
) -> ModelVersion:
    """Registers a training job's new model: the name is created when new, and ``alias``
    moves to the new version."""
    if session.get(RegisteredModel, name) is None:
        create(session=session, name=name, description=None, tags={})
    row = create_version(session=session, name=name, model_id=model_id, description=description)
    if alias is not None:
        set_alias(session=session, name=name, alias=alias, version=row.version)
    return row


def versions_using_model(*, session: Session, model_id: str) -> list[tuple[str, int]]:
    """The (name, version) pairs that refer to a model."""
    rows = session.execute(
        select(ModelVersion.name, ModelVersion.version)
        .where(ModelVersion.model_id == model_id)
        .order_by(ModelVersion.name, ModelVersion.version)
    )
    return [(name, version) for name, version in rows]


def ensure_unreferenced(*, session: Session, model_id: str) -> None:
    """Raises 409 when a registry version refers to the model."""
    used = versions_using_model(session=session, model_id=model_id)
    if used:
        refs = ", ".join(f"{name}/versions/{version}" for name, version in used[:10])
        raise errors.Conflict(
            f"model {model_id!r} is registered as {refs}; delete the version(s) first",
            versions=[{"name": name, "version": version} for name, version in used],
        )


def resolve(
    *, session: Session, name: str, alias: str | None = None, version: int | None = None
) -> Resolved:
    """The model of ``name@alias`` (``latest``: the highest version), ``name/versions/n``,
    or, with neither, the name's default (its ``champion`` alias, else its latest version)."""
    if version is not None:
        row = session.get(ModelVersion, (name, version))
        if row is None:
            get(session=session, name=name)
            raise errors.NotFound(f"registered model {name!r} has no version {version}")
        return Resolved(row.model_id, name, row.version)
    if alias is not None and alias != LATEST:
        found = session.execute(
            select(ModelVersion.model_id, ModelVersion.version)
            .join(
                RegisteredModelAlias,
                (RegisteredModelAlias.name == ModelVersion.name)
                & (RegisteredModelAlias.version == ModelVersion.version),
            )
            .where(RegisteredModelAlias.name == name, RegisteredModelAlias.alias == alias)
        ).first()
        if found is None:
            get(session=session, name=name)
            raise errors.NotFound(f"registered model {name!r} has no alias {alias!r}")
        return Resolved(found[0], name, int(found[1]))
    if alias is None:
        try:
            return resolve(session=session, name=name, alias=DEFAULT_ALIAS)
        except errors.NotFound:
            pass
    latest = session.execute(
        select(ModelVersion.model_id, ModelVersion.version)
        .where(ModelVersion.name == name)
        .order_by(ModelVersion.version.desc())
        .limit(1)
    ).first()
    if latest is None:
        get(session=session, name=name)
        raise errors.NotFound(f"registered model {name!r} has no versions")
    return Resolved(latest[0], name, int(latest[1]))
