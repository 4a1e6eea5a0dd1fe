"""The loopback Discord checks request bodies against Discord's published OpenAPI description."""

import pytest
from support.fakediscord import openapi


@pytest.fixture
def violations():
    before = len(openapi.VIOLATIONS)
    yield lambda: openapi.VIOLATIONS[before:]
    del openapi.VIOLATIONS[before:]  # these were provoked on purpose


def test_a_body_the_spec_allows_passes(violations):
    body = {"content": "hi", "attachments": [{"id": 0, "filename": "animabot-1-seed2.mp4"}]}
    assert openapi.check("POST", "/api/v10/channels/1/messages", "multipart/form-data", body) is None
    assert violations() == []


def test_a_too_long_button_label_is_answered_like_discord(violations):
    button = {"type": 2, "style": 2, "label": "x" * 81, "custom_id": "animabot:reroll:1"}
    body = {"content": "hi", "components": [{"type": 1, "components": [button]}]}
    errors = openapi.check("POST", "/api/v10/channels/1/messages", "application/json", body)
    assert list(errors["components"]["0"]["components"]["0"]) == ["label"]
    assert len(violations()) == 1 and "components/0/components/0/label" in violations()[0]


def test_an_interaction_callback_of_an_unknown_type_is_a_violation(violations):
    errors = openapi.check("POST", "/api/v10/interactions/1/token/callback", "application/json", {"type": 99})
    assert errors is not None and len(violations()) == 1


def test_a_route_the_spec_does_not_describe_is_a_violation(violations):
    assert openapi.check("POST", "/api/v10/channels/1/not-a-route", "application/json", {}) is not None
    assert "no such operation" in violations()[0]
