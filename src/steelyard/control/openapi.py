"""The admin API's OpenAPI 3.1 document (served at ``/api/v1/openapi.json``)."""

from __future__ import annotations

_ERROR = {
    "description": "an error naming the field",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_OK = {"description": "done", "content": {"application/json": {}}}
_POOL = {"name": "pool", "in": "path", "required": True, "schema": {"type": "string"}}
_SERVER = {"name": "server", "in": "path", "required": True, "schema": {"type": "string"}}
_AUTH = [{"bearer": []}]


def _query(name: str, kind: str, what: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": {"type": kind}, "description": what}


def _body(ref: str) -> dict:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "steelyard admin API", "version": "1"},
    "paths": {
        "/api/v1/status": {
            "get": {"summary": "listeners, pools and every server with its origin", "responses": {"200": _OK}}
        },
        "/api/v1/pools": {"get": {"summary": "every pool", "responses": {"200": _OK}}},
        "/api/v1/pools/{pool}": {
            "parameters": [_POOL],
            "get": {
                "summary": "a pool and its servers (state, weight, health, reason, load); large pools page",
                "parameters": [
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                    {"name": "status", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {"200": _OK, "400": _ERROR, "404": _ERROR},
            },
            "patch": {
                "summary": "change the algorithm",
                "security": _AUTH,
                "requestBody": _body("PoolChange"),
                "responses": {"200": _OK, "400": _ERROR, "401": _ERROR, "404": _ERROR},
            },
        },
        "/api/v1/pools/{pool}/servers": {
            "parameters": [_POOL],
            "post": {
                "summary": "add a server",
                "security": _AUTH,
                "requestBody": _body("NewServer"),
                "responses": {"201": _OK, "400": _ERROR, "401": _ERROR, "404": _ERROR, "409": _ERROR},
            },
        },
        "/api/v1/pools/{pool}/servers/{server}": {
            "parameters": [_POOL, _SERVER],
            "get": {"summary": "one server", "responses": {"200": _OK, "404": _ERROR}},
            "patch": {
                "summary": "change weight or state",
                "security": _AUTH,
                "requestBody": _body("ServerChange"),
                "responses": {"200": _OK, "400": _ERROR, "401": _ERROR, "404": _ERROR},
            },
            "delete": {
                "summary": "drain, then remove once idle",
                "security": _AUTH,
                "responses": {"202": _OK, "401": _ERROR, "404": _ERROR},
            },
        },
        "/api/v1/reload": {
            "post": {
                "summary": "read the configuration file again and switch to it without dropping "
                "anything; an invalid file is refused. discard_runtime (true, or pool names) first drops "
                "those runtime changes, so the file alone decides",
                "security": _AUTH,
                "requestBody": {**_body("Reload"), "required": False},
                "responses": {"200": _OK, "400": _ERROR, "401": _ERROR, "404": _ERROR, "409": _ERROR},
            }
        },
        "/api/v1/dns": {
            "get": {"summary": "every DNS zone's records and what each answers now", "responses": {"200": _OK}}
        },
        "/api/v1/workers": {
            "get": {
                "summary": "the worker processes (workers > 1): pid, generation, in-flight "
                "count, uptime; and restarts so far",
                "responses": {"200": _OK},
            }
        },
        "/api/v1/cluster": {
            "get": {"summary": "this node's link to the cluster and every live node", "responses": {"200": _OK}}
        },
        "/api/v1/openapi.json": {"get": {"summary": "this document", "responses": {"200": _OK}}},
        "/api/v1/overview": {
            "get": {
                "summary": "listeners and pools for the dashboard (servers counted by status)",
                "responses": {"200": _OK},
            }
        },
        "/api/v1/history": {
            "get": {
                "summary": "15 minutes per listener and pool: [t, requests/s, 5xx/s, failed tries/s, p50, p99, active]",
                "parameters": [_query("since", "number", "only samples after this Unix time")],
                "responses": {"200": _OK, "400": _ERROR},
            }
        },
        "/api/v1/events": {
            "get": {
                "summary": "recent state changes, runtime changes and reloads, newest first",
                "parameters": [_query("limit", "integer", "1 to 500 (default 100)")],
                "responses": {"200": _OK, "400": _ERROR},
            }
        },
        "/api/v1/servers": {
            "get": {
                "summary": "one page of a pool's servers, filtered",
                "parameters": [
                    {**_query("pool", "string", "the pool"), "required": True},
                    _query("offset", "integer", "from 0"),
                    _query("limit", "integer", "1 to 500 (default 50)"),
                    _query("q", "string", "a substring of the name or address"),
                    _query("status", "string", "up, down, ejected, drain or maint"),
                ],
                "responses": {"200": _OK, "400": _ERROR, "404": _ERROR},
            }
        },
        "/metrics": {"get": {"summary": "Prometheus text format", "responses": {"200": {"description": "metrics"}}}},
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string"}, "field": {"type": ["string", "null"]}},
            },
            "NewServer": {
                "type": "object",
                "required": ["address"],
                "additionalProperties": False,
                "properties": {
                    "address": {"type": "string", "examples": ["127.0.0.1:9004"]},
                    "name": {"type": "string"},
                    "weight": {"type": "integer", "minimum": 0, "maximum": 1000},
                    "backup": {"type": "boolean"},
                    "state": {"enum": ["ready", "drain", "maint"]},
                },
            },
            "ServerChange": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "weight": {"type": "integer", "minimum": 0, "maximum": 1000},
                    "state": {"enum": ["ready", "drain", "maint"]},
                },
            },
            "PoolChange": {
                "type": "object",
                "required": ["algorithm"],
                "additionalProperties": False,
                "properties": {"algorithm": {"type": "string"}},
            },
            "Reload": {
                "type": "object",
                "properties": {
                    "discard_runtime": {"oneOf": [{"type": "boolean"}, {"type": "array", "items": {"type": "string"}}]}
                },
            },
        },
    },
}
