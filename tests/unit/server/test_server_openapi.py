"""The OpenAPI document is generated from the route tables and covers every installed route."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from dockmesh.server.app import HTTP_TABLES, all_specs
from dockmesh.server.openapi import document, openapi_path
from dockmesh.server.routes import RouteSpec, RouteTable

DOC = document(all_specs())
SPECS = all_specs()


def operation(spec: RouteSpec) -> dict[str, Any]:
    op: dict[str, Any] = DOC["paths"][openapi_path(spec.path)][spec.method.lower()]
    return op


def spec_id(spec: RouteSpec) -> str:
    return f"{spec.method} {spec.path}"


def test_document_header() -> None:
    assert DOC["openapi"].startswith("3.1")
    assert DOC["info"]["title"] == "dockmesh API"
    assert set(DOC["components"]["securitySchemes"]) == {"bearer", "session"}


def test_all_specs_reads_every_table() -> None:
    assert len(SPECS) == sum(len(table.specs) for table in HTTP_TABLES)
    assert len(SPECS) > 0


def test_every_spec_is_unique() -> None:
    keys = [(s.method, openapi_path(s.path)) for s in SPECS]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_every_spec_appears_with_its_method(spec: RouteSpec) -> None:
    op = operation(spec)
    assert op["summary"] == spec.summary
    assert op["tags"] == [spec.tag]
    assert op["operationId"] == f"{spec.method.lower()}_{spec.handler.__name__}"
    assert "default" in op["responses"]
    for status in spec.responses:
        assert str(status) in op["responses"]


def test_operation_ids_are_unique() -> None:
    ids = [operation(s)["operationId"] for s in SPECS]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_security_follows_auth(spec: RouteSpec) -> None:
    op = operation(spec)
    if spec.auth:
        assert op["security"] == [{"bearer": []}, {"session": []}]
    else:
        assert op["security"] == []


def test_public_routes_have_empty_security() -> None:
    public = {(s.method, s.path) for s in SPECS if not s.auth}
    assert ("GET", "/api/v1/health") in public
    assert ("GET", "/install/agent.sh") in public
    assert ("POST", "/api/v1/auth/login") in public
    for method, path in public:
        assert DOC["paths"][openapi_path(path)][method.lower()]["security"] == []
    assert DOC["paths"]["/api/v1/agents"]["get"]["security"] != []


def test_path_parameters_are_declared() -> None:
    for path in ("/api/v1/agents/{id}", "/api/v1/agents/{id}/revoke", "/api/v1/hosts/{id}/tags"):
        for op in DOC["paths"][path].values():
            params = op["parameters"]
            assert {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}} in params
    (arch,) = DOC["paths"]["/install/agent/{arch}"]["get"]["parameters"]
    assert arch["name"] == "arch"
    assert arch["in"] == "path"
    assert arch["required"] is True


def test_routes_without_parameters_declare_none() -> None:
    assert "parameters" not in DOC["paths"]["/api/v1/health"]["get"]


def test_query_parameters_are_declared() -> None:
    params = DOC["paths"]["/install/agent.sh"]["get"]["parameters"]
    assert {"name": "token", "in": "query", "schema": {"type": "string"}} in params


def test_request_body_is_declared() -> None:
    for spec in SPECS:
        op = operation(spec)
        if spec.body is None:
            assert "requestBody" not in op
        else:
            assert op["requestBody"]["content"]["application/json"]["schema"] == spec.body
    assert any(s.body is not None for s in SPECS)


def test_openapi_path_drops_regex_constraints() -> None:
    assert openapi_path("/a/{id:[0-9]+}/b/{name}") == "/a/{id}/b/{name}"
    assert openapi_path("/plain") == "/plain"


async def _handler(_request: web.Request) -> web.StreamResponse:
    return web.Response()


def test_document_from_a_custom_table() -> None:
    table = RouteTable("demo")
    table.route("GET", "/x/{key:[a-z]+}", summary="get x", auth=False, query=("q",))(_handler)
    table.route("POST", "/x/{key:[a-z]+}", summary="post x", body={"type": "object"}, websocket=True)(
        _handler
    )
    doc = document(table.specs)
    assert set(doc["paths"]) == {"/x/{key}"}
    ops = doc["paths"]["/x/{key}"]
    assert set(ops) == {"get", "post"}
    assert [p["name"] for p in ops["get"]["parameters"]] == ["key", "q"]
    assert ops["get"]["security"] == []
    assert ops["post"]["security"] != []
    assert "WebSocket" in ops["post"]["description"]
    assert ops["get"]["responses"]["200"] == {"description": "OK"}


def test_document_covers_every_installed_route() -> None:
    app = web.Application()
    for table in HTTP_TABLES:
        table.install(app)
    installed = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        canonical = route.resource.canonical  # type: ignore[union-attr]
        installed.add((route.method.lower(), canonical))
    assert installed, "no routes were installed"
    documented = {(method, path) for path, ops in DOC["paths"].items() for method in ops}
    missing = installed - documented
    assert not missing, f"routes missing from the OpenAPI document: {sorted(missing)}"
    assert documented == installed
