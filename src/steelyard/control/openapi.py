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
                "anything; an invalid file is refused",
                "security": _AUTH,
                "responses": {"200": _OK, "400": _ERROR, "401": _ERROR},
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
        },
    },
}
