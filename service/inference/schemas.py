"""Response bodies of the Open Inference Protocol v2 and MLflow ``/invocations`` adapters."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Invocations(_Body):
    """MLflow's scoring answer, plus the model that gave it."""

    predictions: list[float | None] | list[str | int | bool] = Field(
        description="One per input row, in order: values, or a classifier's labels"
    )
    model_id: str = Field(description="The model that answered")
    name: str | None = Field(description="The registered name the request named, if any")
    version: int | None = Field(description="The registered version that answered, if any")


class V2Live(_Body):
    live: bool


class V2Ready(_Body):
    ready: bool


class V2ModelReady(_Body):
    name: str | None
    ready: bool


class V2Tensor(_Body):
    name: str
    datatype: Literal["FP64", "BYTES", "BOOL", "INT64"]
    shape: list[int]


class V2ModelMetadata(_Body):
    """A registered name's metadata: its versions, inputs (one per feature) and output."""

    name: str | None
    versions: list[str]
    platform: str
    inputs: list[V2Tensor]
    outputs: list[V2Tensor]
    parameters: dict[str, str | None]


class V2OutputTensor(V2Tensor):
    data: list[float | None] | list[str | int | bool] = Field(
        description="Flat, row-major: predict (values or labels), or a classifier's "
        "probabilities [n, k]"
    )


class V2InferResponse(_Body):
    """The ``predict`` output (one value or label per row; a classifier's ``probabilities``
    too) and the version that answered."""

    model_name: str | None
    model_version: str
    id: str | None = None
    outputs: list[V2OutputTensor]
    parameters: dict[str, str]
