"""Runtime changes to pools (the admin API's writes), applied and kept across restarts.

Every change is validated first (a ``ChangeError`` names the field and carries the HTTP
status), applied to the running pool through its health keeper (which publishes a new
snapshot), then recorded in the state file, written atomically (a temporary file renamed
over the old one), so a crash never leaves half a file. On start, ``apply_saved`` replays
the record over the configuration: added servers come back, removed ones stay removed,
weights, states and algorithms are as they were left.

Record layout (JSON): ``{"version": 1, "pools": {POOL: {"algorithm": NAME?, "removed": [NAME],
"servers": {NAME: {"address", "weight", "backup", "state", "origin"}}}}}``; ``servers`` holds the
servers added at runtime and the configured ones whose weight or state was changed.

A runtime change wins over the file on reload. When the file's own value for a key changed but
a runtime change still holds that key, ``overridden`` names it (the reload logs a warning), and
``discard`` drops the runtime changes of some or every pool (``steelyard ctl reload
--discard-runtime [POOL...]``), so the file alone decides again.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from ..core.balancing import resolve_algorithm
from ..core.model import Server
from ..units import split_host_port

log = logging.getLogger("steelyard.admin")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\[\]-]*")
STATES = ("ready", "drain", "maint")


class ChangeError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


def _field(body: dict, name: str, kind: type, default: Any = None) -> Any:
    value = body.get(name, default)
    if value is default:
        return value
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ChangeError(400, f"{name} must be an integer; got {value!r}", name)
    if kind is not int and not isinstance(value, kind):
        raise ChangeError(400, f"{name} must be a {kind.__name__}; got {value!r}", name)
    return value


def _weight(body: dict, default: int | None) -> int | None:
    weight = _field(body, "weight", int, default)
    if weight is not None and not 0 <= weight <= 1000:
        raise ChangeError(400, f"weight must be from 0 to 1000; got {weight}", "weight")
    return weight


def _state(body: dict, default: str | None) -> str | None:
    state = _field(body, "state", str, default)
    if state is not None and state not in STATES:
        raise ChangeError(400, f"state must be one of {', '.join(STATES)}; got {state!r}", "state")
    return state


def _only(body: Any, allowed: tuple[str, ...]) -> dict:
    if not isinstance(body, dict):
        raise ChangeError(400, "expected a JSON object")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ChangeError(400, f"unknown field {unknown[0]!r}; expected {', '.join(allowed)}", unknown[0])
    return body


HINT = "drop it with: steelyard ctl reload --discard-runtime {pool}"


def overridden(old: Any, new: Any, record: dict[str, Any]) -> list[str]:
    """The file edits between configs ``old`` and ``new`` that the runtime ``record`` overrides,
    one sentence each (for the log at reload)."""
    found: list[str] = []
    for pool, rec in record.get("pools", {}).items():
        try:
            before, after = old.pool(pool), new.pool(pool)
        except KeyError:
            continue  # a pool new or gone: nothing of it was edited in place
        hint = HINT.format(pool=pool)
        if rec.get("algorithm") and before.algorithm != after.algorithm and rec["algorithm"] != after.algorithm:
            found.append(
                f"pool {pool}: the file's algorithm changed {before.algorithm} -> {after.algorithm}, "
                f"but a runtime change keeps {rec['algorithm']} ({hint})"
            )
        was = {s.name: s for s in before.servers}
        for s in after.servers:
            saved, prior = rec.get("servers", {}).get(s.name), was.get(s.name)
            if s.name in rec.get("removed", ()) and prior != s:
                found.append(
                    f"pool {pool}: server {s.name} was edited in the file but stays removed at runtime ({hint})"
                )
            if saved is None or prior is None:
                continue
            for key in ("weight", "state"):
                edited, kept = getattr(prior, key) != getattr(s, key), saved.get(key)
                if edited and kept is not None and kept != getattr(s, key):
                    found.append(
                        f"pool {pool}: server {s.name}: the file's {key} changed {getattr(prior, key)} -> "
                        f"{getattr(s, key)}, but a runtime change keeps {kept} ({hint})"
                    )
    return found


class RuntimeChanges:
    def __init__(self, runtime: Any, path: str | None) -> None:
        self.runtime = runtime
        self.path = Path(path) if path else None
        self.record: dict[str, Any] = {"version": 1, "pools": {}}
        # the cluster (when ``[cluster]``): told of every change made here, as (kind, pool, name, data);
        # ``quiet`` is set while it applies another node's change, so nothing echoes back
        self.listener: Any = None
        self.quiet = False

    # -- the API's operations ----------------------------------------------------

    def keeper(self, pool: str) -> Any:
        keeper = self.runtime.health.get(pool)
        if keeper is None:
            raise ChangeError(404, f"no pool named {pool!r}", "pool")
        return keeper

    def add_server(self, pool: str, body: Any) -> dict:
        body = _only(body, ("address", "name", "weight", "backup", "state"))
        keeper = self.keeper(pool)
        address = _field(body, "address", str)
        if address is None:
            raise ChangeError(400, "address is required (host:port)", "address")
        try:
            host, port = split_host_port(address)
        except ValueError as exc:
            raise ChangeError(400, str(exc), "address") from None
        name = _field(body, "name", str, address)
        if not _NAME.fullmatch(name):
            raise ChangeError(400, f"a name starts with a letter or digit; got {name!r}", "name")
        if any(st.server.name == name for st in keeper.health.states):
            raise ChangeError(409, f"pool {pool} already has a server {name!r}", "name")
        at = Server(name, host, port).address  # (as the servers spell theirs)
        if any(st.server.address == at for st in keeper.health.states):
            raise ChangeError(409, f"pool {pool} already has a server at {address}", "address")
        weight = _weight(body, 1)
        state = _state(body, "ready")
        backup = _field(body, "backup", bool, False)
        max_conns = keeper.cfg.max_conns or 0
        st = keeper.add_server(Server(name, host, port, weight, max_conns), backup=backup, admin=state)
        self._remember(pool, st)
        return self.describe(pool, name)

    def update_server(self, pool: str, name: str, body: Any) -> dict:
        body = _only(body, ("weight", "state"))
        keeper = self.keeper(pool)
        st = self._state_of(keeper, name)
        weight, state = _weight(body, None), _state(body, None)
        if weight is not None and weight != st.server.weight:
            old = st.server
            keeper.replace_server(st, Server(old.name, old.host, old.port, weight, old.max_conns, old.load))
        if state is not None:
            keeper.set_state(name, state)
        self._remember(pool, st)
        return self.describe(pool, name)

    def remove_server(self, pool: str, name: str) -> dict:
        keeper = self.keeper(pool)
        st = self._state_of(keeper, name)
        keeper.remove_server(name)
        rec = self._pool_record(pool)
        rec["servers"].pop(name, None)
        if st.origin == "config" and name not in rec["removed"]:
            rec["removed"].append(name)
        self._save()
        self._tell("remove", pool, name, st.origin)
        return {
            "server": name,
            "removed": st not in keeper.health.states,
            "draining": st in keeper.health.states,
            "active": st.server.load.active,
        }

    def set_algorithm(self, pool: str, body: Any) -> dict:
        body = _only(body, ("algorithm",))
        keeper = self.keeper(pool)
        name = _field(body, "algorithm", str)
        if name is None:
            raise ChangeError(400, "algorithm is required", "algorithm")
        try:
            cls = resolve_algorithm(name)
        except ValueError as exc:
            raise ChangeError(400, str(exc), "algorithm") from None
        keeper.set_algorithm(name, cls)
        self._pool_record(pool)["algorithm"] = name
        self._save()
        self._tell("algorithm", pool, name, None)
        return {"pool": pool, "algorithm": name}

    def describe(self, pool: str, name: str) -> dict:
        keeper = self.keeper(pool)
        return keeper.status([self._state_of(keeper, name)])[0]

    # -- the record ----------------------------------------------------------------

    def _state_of(self, keeper: Any, name: str) -> Any:
        try:
            return keeper.state(name)
        except KeyError:
            raise ChangeError(404, f"pool {keeper.pool.name} has no server {name!r}", "server") from None

    def _pool_record(self, pool: str) -> dict:
        return self.record["pools"].setdefault(pool, {"algorithm": None, "removed": [], "servers": {}})

    def _remember(self, pool: str, st: Any) -> None:
        s = st.server
        self._pool_record(pool)["servers"][s.name] = {
            "address": s.address,
            "weight": s.weight,
            "backup": st.backup,
            "state": st.admin,
            "origin": st.origin,
        }
        self._save()
        self._tell("server", pool, s.name, self._pool_record(pool)["servers"][s.name])

    def _tell(self, kind: str, pool: str, name: str, data: Any) -> None:
        if self.listener is not None and not self.quiet:
            self.listener(kind, pool, name, data)

    def _save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)

    def discard(self, pools: list[str] | None) -> list[str]:
        """Drop the saved runtime changes of ``pools`` (None: every pool) from the state file, so
        that the next ``apply_saved`` leaves them as the configuration says; the pools dropped."""
        saved = self.record.get("pools", {})
        names = list(saved) if pools is None else [p for p in pools if p in saved]
        for name in names:
            saved.pop(name, None)
            log.warning("runtime changes to pool %s discarded: the configuration file decides again", name)
        self._save()
        return names

    def apply_saved(self) -> None:
        """Replay the state file (if any) over the configuration just started."""
        if self.path is None or not self.path.exists():
            return
        try:
            record = json.loads(self.path.read_text(encoding="utf-8"))
            pools = record["pools"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("state file %s unreadable (%s): starting from the configuration alone", self.path, exc)
            return
        for pool, rec in pools.items():
            if pool not in self.runtime.health:
                log.warning("state file %s: pool %s is no longer configured; its changes are dropped", self.path, pool)
                continue
            try:
                self._replay(pool, rec)
            except (ChangeError, KeyError, TypeError, ValueError) as exc:
                log.error("state file %s: pool %s: cannot apply %s", self.path, pool, exc)
        self._save()

    def _replay(self, pool: str, rec: dict) -> None:
        keeper = self.keeper(pool)
        if rec.get("algorithm"):
            self.set_algorithm(pool, {"algorithm": rec["algorithm"]})
        for name, srv in rec.get("servers", {}).items():  # (added before removals: never an empty pool)
            if any(st.server.name == name for st in keeper.health.states):
                self.update_server(pool, name, {"weight": srv["weight"], "state": srv["state"]})
            else:
                self.add_server(
                    pool,
                    {
                        "address": srv["address"],
                        "name": name,
                        "weight": srv["weight"],
                        "backup": srv["backup"],
                        "state": srv["state"],
                    },
                )
        for name in rec.get("removed", []):
            if any(st.server.name == name for st in keeper.health.states):
                self.remove_server(pool, name)
