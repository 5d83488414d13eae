"""The OpenAPI 3.1 document, generated from the route tables so it cannot drift from the app."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from dockmesh import __version__
from dockmesh.server.routes import RouteSpec

_PARAM = re.compile(r"{(\w+)(?::[^}]*)?}")

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            "required": ["code", "message"],
        }
    },
}


def openapi_path(path: str) -> str:
    return _PARAM.sub(lambda m: "{" + m.group(1) + "}", path)


def _operation(spec: RouteSpec) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": spec.summary,
        "tags": [spec.tag],
        "operationId": f"{spec.method.lower()}_{spec.handler.__name__}",
        "responses": {},
    }
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAM.findall(spec.path)
    ]
    params += [{"name": name, "in": "query", "schema": {"type": "string"}} for name in spec.query]
    if params:
        op["parameters"] = params
    if spec.body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": spec.body}}}
    if spec.websocket:
        op["description"] = "WebSocket endpoint: open with an HTTP GET carrying an Upgrade header."
    for status, text in spec.responses.items():
        op["responses"][str(status)] = {"description": text}
    op["responses"]["default"] = {
        "description": "Error",
        "content": {"application/json": {"schema": ERROR_SCHEMA}},
    }
    if spec.auth:
        op["security"] = [{"bearer": []}, {"session": []}]
    else:
        op["security"] = []
    return op


def document(specs: Iterable[RouteSpec]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for spec in specs:
        paths.setdefault(openapi_path(spec.path), {})[spec.method.lower()] = _operation(spec)
    return {
        "openapi": "3.1.0",
        "info": {"title": "dockmesh API", "version": __version__},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "dockmesh_session"},
            }
        },
    }


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dockmesh API</title>
<style>body{font:14px system-ui,sans-serif;margin:2rem;max-width:60rem}code{background:#eee;padding:0 .2rem}
.op{margin:.4rem 0}.m{display:inline-block;width:4.5rem;font-weight:bold}</style></head>
<body><h1>dockmesh API</h1><p>Machine-readable: <a href="/api/openapi.json">/api/openapi.json</a></p>
<div id="ops">Loading…</div>
<script>
fetch('/api/openapi.json').then(r=>r.json()).then(doc=>{
  const ops=document.getElementById('ops');ops.textContent='';
  for(const [path,methods] of Object.entries(doc.paths)){
    for(const [m,op] of Object.entries(methods)){
      const d=document.createElement('div');d.className='op';
      const s=document.createElement('span');s.className='m';s.textContent=m.toUpperCase();
      const c=document.createElement('code');c.textContent=path;
      d.append(s,c,document.createTextNode(' — '+op.summary));ops.append(d);
    }
  }
});
</script></body></html>
"""
