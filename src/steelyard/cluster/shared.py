"""Applying the shared state of a pool to this balancer (another node's changes, a resync).

``reconcile`` makes the local pool match the stored record through ``RuntimeChanges`` (so a
remote change is applied exactly like a local API change: validated, published, kept in the state
file) with ``changes.quiet`` set, so nothing is echoed back to Redis. Rules:
- the record's algorithm, when set, replaces the local one;
- a server in the record is added when missing, or given the record's weight and state;
- a runtime-added server missing from the record, and a configured one the record lists as
  removed, are removed (drained first, as the API does);
- self-registered servers are not part of the record (``registry`` keeps them).
A change the local pool refuses (e.g. an address already used under another name) is logged and
skipped; the rest of the record still applies.
"""

from __future__ import annotations

import logging
from typing import Any

from ..control.changes import ChangeError

log = logging.getLogger("steelyard.cluster")


def reconcile(changes: Any, pool: str, record: dict[str, Any]) -> int:
    """Apply ``record`` to ``pool``; the number of changes made."""
    made = 0
    changes.quiet = True
    try:
        keeper = changes.keeper(pool)
        algorithm = record.get("algorithm")
        if algorithm and algorithm != keeper.algorithm_name:
            made += _try(changes.set_algorithm, pool, {"algorithm": algorithm})
        wanted = record.get("servers", {})
        for name, srv in wanted.items():
            if srv.get("origin") == "registered":
                continue
            st = next((s for s in keeper.health.states if s.server.name == name), None)
            if st is None:
                made += _try(
                    changes.add_server,
                    pool,
                    {
                        "address": srv["address"],
                        "name": name,
                        "weight": srv["weight"],
                        "backup": srv["backup"],
                        "state": srv["state"],
                    },
                )
            elif st.removing or st.server.weight != srv["weight"] or st.admin != srv["state"]:
                made += _try(changes.update_server, pool, name, {"weight": srv["weight"], "state": srv["state"]})
        removed = set(record.get("removed", ()))
        for st in list(keeper.health.states):
            name = st.server.name
            if st.removing:
                continue
            if (st.origin == "runtime" and name not in wanted) or (st.origin == "config" and name in removed):
                made += _try(changes.remove_server, pool, name)
    finally:
        changes.quiet = False
    return made


def _try(op: Any, *args: Any) -> int:
    try:
        op(*args)
    except ChangeError as exc:
        log.error("cluster: cannot apply a shared change to pool %s: %s", args[0], exc.message)
        return 0
    return 1
