"""Validate a JSON body against a component of the served OpenAPI 3.0 document (`nullable`
turned into JSON Schema's `null` type), for tests that check a body schemathesis cannot produce
(e.g. /api/v1/reserves with an attestation in force)."""

from __future__ import annotations

from typing import Any

import jsonschema_rs  # schemathesis's own validator

from indexer.api import openapi


def _json_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [_json_schema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _json_schema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


def validate(component: str, body: Any) -> None:
    """Raise `jsonschema_rs.ValidationError` unless `body` matches `components/schemas/<component>`."""
    doc = openapi.document()
    schema = {"$ref": f"#/components/schemas/{component}", "components": _json_schema(doc["components"])}
    jsonschema_rs.validator_for(schema).validate(body)
