"""Registry API schemas: requests and responses of ``/v1/registry``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from service.ml.spec import RegistryName
from service.tables import ModelVersion, RegisteredModel

Description = Annotated[str, Field(max_length=5000)]
TagKey = Annotated[str, Field(min_length=1, max_length=250)]
Tags = Annotated[dict[TagKey, Annotated[str, Field(max_length=5000)]], Field(max_length=50)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisteredModelCreate(_Request):
    name: RegistryName
    description: Description | None = None
    tags: Tags = Field(default_factory=dict)


class RegistryUpdate(_Request):
    """Only the fields given change; ``tags`` replaces the tags as a whole."""

    description: Description | None = None
    tags: Tags | None = None


class ModelVersionCreate(_Request):
    model_id: Annotated[str, Field(min_length=1, max_length=40)]
    description: Description | None = None
    tags: Tags = Field(default_factory=dict)


class AliasSet(_Request):
    version: Annotated[StrictInt, Field(ge=1)]


class ModelVersionOut(BaseModel):
    name: str
    version: int
    model_id: str
    description: str | None
    tags: dict[str, str]
    aliases: list[str]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: ModelVersion, aliases: list[str]) -> ModelVersionOut:
        return cls(
            name=row.name,
            version=row.version,
            model_id=row.model_id,
            description=row.description,
            tags=row.tags,
            aliases=aliases,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class RegisteredModelOut(BaseModel):
    name: str
    description: str | None
    tags: dict[str, str]
    latest_version: int | None
    aliases: dict[str, int]
    versions: list[ModelVersionOut]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_rows(
        cls, row: RegisteredModel, versions: list[ModelVersion], aliases: dict[str, int]
    ) -> RegisteredModelOut:
        by_version: dict[int, list[str]] = {}
        for alias, version in aliases.items():
            by_version.setdefault(version, []).append(alias)
        return cls(
            name=row.name,
            description=row.description,
            tags=row.tags,
            latest_version=max((v.version for v in versions), default=None),
            aliases=aliases,
            versions=[ModelVersionOut.from_row(v, by_version.get(v.version, [])) for v in versions],
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class RegisteredModelItem(BaseModel):
    """A list item: the name without its versions."""

    name: str
    description: str | None
    tags: dict[str, str]
    created_at: datetime
    updated_at: datetime


class RegisteredModelPage(BaseModel):
    items: list[RegisteredModelItem]
    total: int
    limit: int
    offset: int


class AliasOut(BaseModel):
    name: str
    alias: str
    version: int
    model_id: str
