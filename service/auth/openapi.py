"""The key schemes, and each operation's roles, 401 and 403, in the OpenAPI document."""

from __future__ import annotations

from typing import Any

from service.auth.roles import ROLES, roles_for

_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options"})


def document(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the key schemes, and each operation's roles, 401 and 403, to an OpenAPI schema."""
    schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes["bearer"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key: `Authorization: Bearer <key>`.",
    }
    schemes["apiKey"] = {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in _HTTP_METHODS:
                continue
            roles = roles_for(method.upper(), path)
            if not roles:
                operation["security"] = []
                continue
            operation["security"] = [{"bearer": []}, {"apiKey": []}]
            allowed = ", ".join(r for r in ROLES if r in roles)
            note = f"Roles: {allowed} (when API keys are in use)."
            operation["description"] = f"{operation.get('description', '')}\n\n{note}".strip()
            responses = operation.setdefault("responses", {})
            responses.setdefault("401", {"description": "No API key, or an unknown or revoked one"})
            responses.setdefault("403", {"description": f"The key's role is not one of: {allowed}"})
    return schema
