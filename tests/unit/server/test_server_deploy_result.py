"""A host's deploy result as the server records it: the agent's error object keeps its message."""

from __future__ import annotations

from dockmesh.server.services.deploys import result_fields


def test_the_agent_s_error_object_keeps_its_message() -> None:
    error = {"code": "not_found", "message": "pull 127.0.0.1:1/x:1 (service 'app'): connection refused"}
    state, services, text = result_fields({"state": "failed", "error": error, "services": []})
    assert (state, services) == ("failed", [])
    assert text == error["message"]


def test_a_plain_error_string_and_hostile_shapes() -> None:
    assert result_fields({"state": "failed", "error": "boom"})[2] == "boom"
    assert result_fields({"state": "done", "error": None})[2] is None
    assert result_fields({"state": "failed", "error": {"message": 5}})[2] is None
    assert len(result_fields({"state": "failed", "error": {"message": "x" * 10_000}})[2] or "") == 4000
    state, _services, text = result_fields({"state": "running", "error": {"code": "x"}})
    assert state == "failed"
    assert text is not None
    assert "unknown final state" in text
