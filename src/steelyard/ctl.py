"""``steelyard ctl``: a command-line client of the admin API (stdlib HTTP, rich tables, ``--json``).

    steelyard ctl [--admin URL] [--token T | $STEELYARD_TOKEN] [--json] COMMAND [--json]
      status | pools | servers POOL | add POOL ADDRESS [--name N] [--weight W] [--backup]
      remove POOL SERVER | drain POOL SERVER | ready POOL SERVER | maint POOL SERVER
      weight POOL SERVER W | algorithm POOL NAME | reload | dns | cluster

``--json`` (print the API's answer as it is) is accepted before or after the command.

Exit status: 0 on success, 1 when the API answered with an error (its message is printed),
2 when the admin listener cannot be reached.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

from rich.console import Console, Group
from rich.table import Table

DEFAULT_URL = "http://127.0.0.1:9901"


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def call(base: str, method: str, path: str, body: Any = None, token: str | None = None, timeout: float = 10.0) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base.rstrip("/") + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        try:
            detail = json.loads(err.read()).get("error", err.reason)
        except ValueError:
            detail = err.reason
        raise ApiError(err.code, f"{err.code}: {detail}") from None


def _servers_table(pool: dict) -> Table:
    table = Table(title=f"pool {pool['name']} ({pool['algorithm']}; {pool['usable']} usable)")
    for col in ("server", "address", "status", "weight", "active", "requests", "failures", "origin", "reason"):
        table.add_column(col, justify="right" if col in ("weight", "active", "requests", "failures") else "left")
    for s in pool["servers"]:
        status = s["status"] + (" (backup)" if s["backup"] else "") + (" → removed" if s["removing"] else "")
        table.add_row(
            s["server"],
            s["address"],
            status,
            str(s["weight"]),
            str(s["active"]),
            str(s["requests"]),
            str(s["failures"]),
            s["origin"],
            f"{s['reason']} ({s['since']} ago)",
        )
    return table


def _pools_table(pools: list[dict]) -> Table:
    table = Table(title="pools")
    for col in ("pool", "algorithm", "servers", "usable", "queued", "panic"):
        table.add_column(col)
    for p in pools:
        table.add_row(
            p["name"],
            p["algorithm"],
            str(p["servers"]),
            str(p["usable"]),
            str(p["queued"]),
            "yes" if p["panic"] else "",
        )
    return table


def _listeners_table(listeners: list[dict]) -> Table:
    table = Table(title="listeners")
    for col in ("listener", "mode", "address"):
        table.add_column(col)
    for lst in listeners:
        table.add_row(lst["name"], lst["mode"], lst["address"])
    return table


def _dns_table(zones: list[dict]) -> Table:
    table = Table(title="DNS answers now")
    for col in ("zone", "name", "source", "answers", "ttl"):
        table.add_column(col)
    for z in zones:
        for r in z["records"]:
            if "pool" in r:
                answers = " ".join(r["A"] + r["AAAA"]) or f"(none healthy: {r['fallback']})"
                source = f"pool {r['pool']} ({r['policy']})"
            else:
                answers, source = " ".join(r["values"]), r["type"]
            table.add_row(z["zone"], r["name"], source, answers, str(r["ttl"]))
    return table


def _cluster_table(info: dict) -> Any:
    if not info.get("enabled"):
        return "this balancer is not clustered (no [cluster] in its configuration)"
    state = f"degraded: {info['reason']}" if info["degraded"] else "connected"
    table = Table(title=f"cluster via {info['redis']} (this node: {info['node']}, {state})")
    for col in ("node", "heartbeat age", "servers (pool/server: status)"):
        table.add_column(col)
    for n in info["nodes"] or []:
        view = ", ".join(f"{p}/{s}: {st}" for p, servers in n["servers"].items() for s, st in servers.items())
        table.add_row(n["node"], f"{n['age_s']:.1f}s", view)
    return table


def _workers_table(info: dict) -> Any:
    if not info["processes"]:
        return "one process serves (workers = 1)"
    table = Table(title=f"{info['workers']} workers, {info['restarts']} restart(s)")
    for col in ("worker", "pid", "generation", "state", "in flight", "uptime"):
        table.add_column(col)
    for w in info["processes"]:
        state = "stopping" if w["stopping"] else "serving" if w["serving"] else "starting"
        table.add_row(
            str(w["index"]), str(w["pid"]), str(w["generation"]), state, str(w["active"]), f"{w['uptime_s']:.0f}s"
        )
    return table


def run(args: argparse.Namespace) -> int:
    base, token = args.admin, args.token or os.environ.get("STEELYARD_TOKEN")
    c = args.ctl
    server_path = f"/api/v1/pools/{getattr(args, 'pool', '')}/servers/{getattr(args, 'server', '')}"
    try:
        if c == "status":
            result = call(base, "GET", "/api/v1/status")
            show = Group(_listeners_table(result["listeners"]), _pools_table(result["pools"]))
        elif c == "pools":
            result = call(base, "GET", "/api/v1/pools")
            show = _pools_table(result)
        elif c == "servers":
            result = call(base, "GET", f"/api/v1/pools/{args.pool}")
            show = _servers_table(result)
        elif c == "add":
            body = {"address": args.address, "weight": args.weight, "backup": args.backup}
            if args.name:
                body["name"] = args.name
            result = call(base, "POST", f"/api/v1/pools/{args.pool}/servers", body, token)
            show = f"added {result['server']} ({result['address']}) to pool {args.pool}: {result['status']}"
        elif c == "remove":
            result = call(base, "DELETE", server_path, None, token)
            show = (
                f"removed {args.server}"
                if result["removed"]
                else f"draining {args.server} ({result['active']} in flight); it leaves once idle"
            )
        elif c in ("drain", "ready", "maint"):
            result = call(base, "PATCH", server_path, {"state": c}, token)
            show = f"{args.server}: {result['status']}"
        elif c == "weight":
            result = call(base, "PATCH", server_path, {"weight": args.weight}, token)
            show = f"{args.server}: weight {result['weight']}"
        elif c == "dns":
            result = call(base, "GET", "/api/v1/dns")
            show = _dns_table(result)
        elif c == "cluster":
            result = call(base, "GET", "/api/v1/cluster")
            show = _cluster_table(result)
        elif c == "workers":
            result = call(base, "GET", "/api/v1/workers")
            show = _workers_table(result)
        elif c == "reload":
            discard = args.discard_runtime
            body = {} if discard is None else {"discard_runtime": discard or True}
            result = call(base, "POST", "/api/v1/reload", body, token, timeout=60.0)
            dropped = "every pool" if discard == [] else ", ".join(discard or [])
            show = "reloaded" + (f" (runtime changes discarded: {dropped})" if discard is not None else "")
        else:  # algorithm
            result = call(base, "PATCH", f"/api/v1/pools/{args.pool}", {"algorithm": args.name}, token)
            show = f"pool {args.pool}: {result['algorithm']}"
    except ApiError as err:
        print(f"steelyard ctl: {err}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        print(f"steelyard ctl: cannot reach the admin API at {base}: {reason}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        Console(width=None if sys.stdout.isatty() else 200).print(show)  # (piped: no wrapping at 80)
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--admin",
        default=os.environ.get("STEELYARD_ADMIN", DEFAULT_URL),
        help=f"admin API base URL (default {DEFAULT_URL}, or $STEELYARD_ADMIN)",
    )
    p.add_argument("--token", help="bearer token for changes (or $STEELYARD_TOKEN)")
    p.add_argument("--json", action="store_true", help="print the API's JSON answer (here or after the command)")
    # (each command takes --json too; SUPPRESS keeps the one given before the command when it is absent)
    after = argparse.ArgumentParser(add_help=False)
    after.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the API's JSON answer")
    sub = p.add_subparsers(dest="ctl", required=True)
    sub.add_parser = functools.partial(sub.add_parser, parents=[after])  # type: ignore[method-assign]
    sub.add_parser("status", help="listeners, pools and servers")
    sub.add_parser("pools", help="every pool")
    s = sub.add_parser("reload", help="read the configuration file again (refused if invalid)")
    s.add_argument(
        "--discard-runtime",
        nargs="*",
        metavar="POOL",
        help="first drop the runtime changes (ctl add/weight/drain/...) of these pools, or of every pool",
    )
    sub.add_parser("dns", help="what each DNS record answers now")
    sub.add_parser("cluster", help="the cluster's nodes, their heartbeat age and view of each server")
    sub.add_parser("workers", help="the worker processes (workers = N): pid, generation, in flight")
    s = sub.add_parser("servers", help="a pool's servers")
    s.add_argument("pool")
    s = sub.add_parser("add", help="add a server to a pool")
    s.add_argument("pool")
    s.add_argument("address", help="HOST:PORT")
    s.add_argument("--name")
    s.add_argument("--weight", type=int, default=1)
    s.add_argument("--backup", action="store_true")
    for verb, what in (
        ("remove", "drain a server, then remove it"),
        ("drain", "no new requests"),
        ("ready", "back in service"),
        ("maint", "out of service at once"),
    ):
        s = sub.add_parser(verb, help=what)
        s.add_argument("pool")
        s.add_argument("server")
    s = sub.add_parser("weight", help="set a server's weight")
    s.add_argument("pool")
    s.add_argument("server")
    s.add_argument("weight", type=int)
    s = sub.add_parser("algorithm", help="set a pool's algorithm")
    s.add_argument("pool")
    s.add_argument("name")
