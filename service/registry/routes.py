"""HTTP routes of the model registry (``/v1/registry``): names, versions, aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import AfterValidator
from sqlalchemy.orm import Session

from service.http.dependencies import ReadSession, WriteSession
from service.http.paging import PageParams
from service.http.responses import FastJSONResponse
from service.ml.spec import REGISTRY_NAME_PATTERN, check_alias
from service.registry import service as registry
from service.registry.schemas import (
    AliasOut,
    AliasSet,
    ModelVersionCreate,
    ModelVersionOut,
    RegisteredModelCreate,
    RegisteredModelItem,
    RegisteredModelOut,
    RegisteredModelPage,
    RegistryUpdate,
)

router = APIRouter(prefix="/v1/registry", tags=["registry"])

Name = Annotated[str, Path(description="A registered model's name", max_length=100)]
Version = Annotated[int, Path(description="A version number", ge=1, le=2**31 - 1)]
Alias = Annotated[
    str,
    Path(description="An alias (not all digits, not 'latest')", pattern=REGISTRY_NAME_PATTERN),
    AfterValidator(check_alias),
]


def _registered_model(session: Session, name: str) -> RegisteredModelOut:
    return RegisteredModelOut.from_rows(
        registry.get(session=session, name=name),
        registry.versions_of(session=session, name=name),
        registry.aliases_of(session=session, name=name),
    )


def _version(session: Session, name: str, version: int) -> ModelVersionOut:
    row = registry.get_version(session=session, name=name, version=version)
    aliases = registry.aliases_of_version(session=session, name=name, version=version)
    return ModelVersionOut.from_row(row, aliases)


@router.post("", status_code=201, response_model=RegisteredModelOut)
def create_registered_model(body: RegisteredModelCreate, session: WriteSession) -> Response:
    """Registers a new name (409 when it exists)."""
    registry.create(session=session, name=body.name, description=body.description, tags=body.tags)
    out = _registered_model(session, body.name)
    return FastJSONResponse(
        out.model_dump(mode="json"),
        status_code=201,
        headers={"Location": f"/v1/registry/{body.name}"},
    )


@router.get("", response_model=RegisteredModelPage)
def list_registered_models(session: ReadSession, page: PageParams) -> RegisteredModelPage:
    """Lists registered names, newest first."""
    rows, total = registry.list_page(session=session, limit=page.limit, offset=page.offset)
    items = [
        RegisteredModelItem(
            name=r.name,
            description=r.description,
            tags=r.tags,
            created_at=r.created_at,
            updated_at=r.updated_at,
        )
        for r in rows
    ]
    return RegisteredModelPage(items=items, total=total, limit=page.limit, offset=page.offset)


@router.get("/{name}", response_model=RegisteredModelOut)
def get_registered_model(name: Name, session: ReadSession) -> RegisteredModelOut:
    """A name with its versions (newest first) and aliases."""
    return _registered_model(session, name)


@router.patch("/{name}", response_model=RegisteredModelOut)
def update_registered_model(
    name: Name, body: RegistryUpdate, session: WriteSession
) -> RegisteredModelOut:
    """Changes a name's description and/or tags."""
    registry.update_name(session=session, name=name, description=body.description, tags=body.tags)
    return _registered_model(session, name)


@router.delete("/{name}", status_code=204)
def delete_registered_model(name: Name, session: WriteSession) -> Response:
    """Deletes a name, its versions and aliases; the models themselves stay."""
    registry.delete_name(session=session, name=name)
    return Response(status_code=204)


@router.post("/{name}/versions", status_code=201, response_model=ModelVersionOut)
def create_model_version(name: Name, body: ModelVersionCreate, session: WriteSession) -> Response:
    """Registers a model as the name's next version (422 when its features or task differ
    from the name's other versions)."""
    row = registry.create_version(
        session=session,
        name=name,
        model_id=body.model_id,
        description=body.description,
        tags=body.tags,
    )
    out = ModelVersionOut.from_row(row, [])
    return FastJSONResponse(
        out.model_dump(mode="json"),
        status_code=201,
        headers={"Location": f"/v1/registry/{name}/versions/{row.version}"},
    )


@router.get("/{name}/versions/{version}", response_model=ModelVersionOut)
def get_model_version(name: Name, version: Version, session: ReadSession) -> ModelVersionOut:
    """One version: its model id, description, tags and aliases."""
    return _version(session, name, version)


@router.patch("/{name}/versions/{version}", response_model=ModelVersionOut)
def update_model_version(
    name: Name, version: Version, body: RegistryUpdate, session: WriteSession
) -> ModelVersionOut:
    """Changes a version's description and/or tags (never its model)."""
    registry.update_version(
        session=session, name=name, version=version, description=body.description, tags=body.tags
    )
    return _version(session, name, version)


@router.delete("/{name}/versions/{version}", status_code=204)
def delete_model_version(name: Name, version: Version, session: WriteSession) -> Response:
    """Deletes a version and the aliases on it; its number is never reused."""
    registry.delete_version(session=session, name=name, version=version)
    return Response(status_code=204)


@router.put("/{name}/aliases/{alias}", response_model=AliasOut)
def set_alias(name: Name, alias: Alias, body: AliasSet, session: WriteSession) -> AliasOut:
    """Points an alias at a version, creating or moving it. Predictions through
    ``name@alias`` follow within ``registry_ref_cache_seconds`` (≤ 1 s) in every process."""
    registry.set_alias(session=session, name=name, alias=alias, version=body.version)
    row = registry.get_version(session=session, name=name, version=body.version)
    return AliasOut(name=name, alias=alias, version=body.version, model_id=row.model_id)


@router.delete("/{name}/aliases/{alias}", status_code=204)
def delete_alias(
    name: Name, alias: Annotated[str, Path(max_length=100)], session: WriteSession
) -> Response:
    """Deletes an alias."""
    registry.delete_alias(session=session, name=name, alias=alias)
    return Response(status_code=204)
