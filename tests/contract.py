"""Checks every response against the OpenAPI document of the app that sent it.

The shared ``client`` fixture (``tests/conftest.py``) runs :meth:`ContractChecker.check` on
each response, so every API test also checks that the status is declared for its operation,
the content type is one the operation declares for it, and the body validates against the
declared schema (JSON Schema 2020-12, as OpenAPI 3.1 writes it). Error bodies are the one
``Problem`` schema and carry the request id.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import orjson
from jsonschema import Draft202012Validator

PROBLEM = "application/problem+json"


class ContractViolation(AssertionError):
    """A response the OpenAPI document does not describe."""


class ContractChecker:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.components = document.get("components", {})
        # Literal segments before parameters: "/v1/models/{model_id}" must not shadow
        # "/v1/models/synthetic"-like literal routes.
        self.paths = sorted(
            (
                (re.compile("^" + re.sub(r"\{[^/}]+\}", "[^/]+", path) + "$"), path, operations)
                for path, operations in document.get("paths", {}).items()
            ),
            key=lambda item: item[1].count("{"),
        )
        self._validators: dict[tuple[str, str, str, str], Draft202012Validator] = {}
        self.checked = 0

    def _validator(self, key: tuple[str, str, str, str], schema: dict[str, Any]) -> Any:
        validator = self._validators.get(key)
        if validator is None:
            validator = Draft202012Validator({**schema, "components": self.components})
            self._validators[key] = validator
        return validator

    def _problem_schema(self) -> dict[str, Any]:
        return {"$ref": "#/components/schemas/Problem"}

    def check(self, response: httpx.Response) -> None:
        response.read()
        method = response.request.method.lower()
        path = response.request.url.path
        status = response.status_code
        media = response.headers.get("content-type", "").split(";")[0].strip()
        where = f"{method.upper()} {path} → {status}"
        template, operation = None, None
        for pattern, candidate, operations in self.paths:
            if pattern.match(path):
                template, operation = candidate, operations.get(method)
                break
        if operation is None:
            # No such route or method (404/405), or an undocumented one (/openapi.json, /docs).
            if status >= 400:
                self._check_body(
                    where, ("", method, str(status), media), self._problem_schema(), response
                )
            return
        responses = operation.get("responses", {})
        declared = responses.get(str(status))
        if declared is None and status >= 400:
            declared = responses.get("default")
        if declared is None:
            raise ContractViolation(f"{where}: status {status} is not declared for {template}")
        content = declared.get("content")
        if not content:
            if response.content:
                raise ContractViolation(f"{where}: a body where {template} declares none")
            return
        by_media = {
            declared_type.split(";")[0].strip(): spec for declared_type, spec in content.items()
        }
        if media not in by_media:
            raise ContractViolation(f"{where}: content type {media!r}, declared {sorted(content)}")
        schema = by_media[media].get("schema")
        if schema and (media.endswith("json")):
            self._check_body(where, (template or "", method, str(status), media), schema, response)

    def _check_body(
        self,
        where: str,
        key: tuple[str, str, str, str],
        schema: dict[str, Any],
        response: httpx.Response,
    ) -> None:
        media = key[3]
        if key[2] >= "400" and media != PROBLEM:
            raise ContractViolation(f"{where}: an error as {media!r}, not {PROBLEM}")
        body = orjson.loads(response.content)
        errors = sorted(self._validator(key, schema).iter_errors(body), key=lambda e: e.path)
        if errors:
            first = errors[0]
            pointer = "/" + "/".join(str(p) for p in first.absolute_path)
            raise ContractViolation(f"{where}: body at {pointer}: {first.message[:300]}")
        if media == PROBLEM and not body.get("request_id"):
            raise ContractViolation(f"{where}: a problem without its request_id")
        self.checked += 1
