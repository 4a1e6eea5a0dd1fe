"""Every request body the bot sends, checked against Discord's published OpenAPI description.

``spec/discord-openapi.json`` beside this module (discord/discord-api-spec, MIT) is matched by method and path
template to its operation; the JSON body (or a multipart body's ``payload_json``) is validated
against that operation's ``requestBody`` schema with ``jsonschema``. A request the spec does not
describe, or a body it does not allow, is a violation: the fake answers it as Discord answers an
invalid form body (400, code 50035, the nested ``errors`` object) and records it in
``VIOLATIONS``, which the test session checks at its end, so no violation anywhere in the suite
goes unseen.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry
from referencing.jsonschema import DRAFT202012

SPEC_CANDIDATES = [Path(__file__).resolve().parent / "spec" / "discord-openapi.json"]
API_PREFIX = "/api/v10"
VIOLATIONS: list[str] = []


def spec_path() -> Path:
    for path in SPEC_CANDIDATES:
        if path.exists():
            return path
    raise FileNotFoundError(f"Discord's OpenAPI description is not at {SPEC_CANDIDATES[0]}")


@functools.cache
def _spec() -> tuple[dict, Registry, list[tuple[str, re.Pattern, dict]]]:
    spec = json.loads(spec_path().read_text())
    # Discord takes a snowflake as a decimal string or as an integer (discord.py sends attachment
    # ids as integers); the description spells only the string form.
    snowflake = spec["components"]["schemas"]["SnowflakeType"]
    spec["components"]["schemas"]["SnowflakeType"] = {"anyOf": [snowflake, {"type": "integer", "minimum": 0}]}
    registry = Registry().with_resource("urn:discord-openapi", DRAFT202012.create_resource(spec))
    operations = []
    for template, item in spec["paths"].items():
        pattern = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")
        for method, operation in item.items():
            if method != "parameters":
                operations.append((method.upper(), pattern, operation))
    # Literal paths (…/messages/@original) before templated ones (…/messages/{message_id}).
    operations.sort(key=lambda op: op[1].pattern.count("[^/]+"))
    return spec, registry, operations


def _schema(operation: dict, content_type: str) -> dict | None:
    content = operation.get("requestBody", {}).get("content", {})
    media = content.get(content_type) or content.get("application/json")
    return media["schema"] if media else None


@functools.cache
def _validator(method: str, template: str, content_type: str):
    _, registry, operations = _spec()
    operation = next(op for m, p, op in operations if m == method and p.pattern == template)
    schema = _schema(operation, content_type)
    if schema is None:
        return None
    # The body schema's "#/components/..." refs point into the whole spec document.
    body_schema = json.loads(json.dumps(schema).replace('"#/components/', '"urn:discord-openapi#/components/'))
    return jsonschema.Draft202012Validator(body_schema, registry=registry)


def _deepest(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """For a failed ``oneOf``/``anyOf``, the branch error that got furthest into the body."""
    while error.context:
        # A branch whose discriminator (``type``) did not match says nothing about the body.
        error = max(error.context, key=lambda e: (e.validator not in ("enum", "const"), len(e.absolute_path)))
    return error


def _nested(error: jsonschema.ValidationError) -> dict:
    """Discord's ``errors`` shape: ``{"content": {"_errors": [{"code", "message"}]}}``."""
    tree: dict = {}
    node = tree
    for part in error.absolute_path:
        node = node.setdefault(str(part), {})
    if error.validator in ("maxLength", "maxItems"):  # Discord's words for a value over its limit
        item = {"code": "BASE_TYPE_MAX_LENGTH", "message": f"Must be {error.validator_value} or fewer in length."}
    else:
        item = {"code": "BASE_TYPE_INVALID", "message": error.message[:300]}
    node.setdefault("_errors", []).append(item)
    return tree


def check(method: str, path: str, content_type: str, body: Any) -> dict | None:
    """``None`` if the spec allows ``body`` for ``method path``; else Discord's ``errors`` object.

    Violations are also appended to ``VIOLATIONS`` as readable lines.
    """
    if not path.startswith(API_PREFIX):
        return None
    api_path = path[len(API_PREFIX) :]
    _, _, operations = _spec()
    match = next(((m, p) for m, p, _ in operations if m == method and p.match(api_path)), None)
    if match is None:
        VIOLATIONS.append(f"{method} {api_path}: no such operation in Discord's OpenAPI description")
        return {"_errors": [{"code": "UNKNOWN_ROUTE", "message": "not in the OpenAPI description"}]}
    validator = _validator(method, match[1].pattern, content_type)
    if validator is None:
        return None
    errors = list(validator.iter_errors(body))
    if not errors:
        return None
    error = _deepest(min(errors, key=jsonschema.exceptions.relevance))
    where = "/".join(str(p) for p in error.absolute_path) or "(body)"
    VIOLATIONS.append(f"{method} {api_path}: {where}: {error.message[:300]}")
    return _nested(error)
