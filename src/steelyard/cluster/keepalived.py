"""`steelyard keepalived` (a keepalived configuration for this node) and `steelyard health`
(exit 0 when the local balancer serves, else 1: keepalived's track script). The script gets a
few seconds (a busy node's Python start-up must not look like a dead balancer).

The written configuration has one VRRP instance (VRRPv3, so advertisements may be sub-second)
in state BACKUP with ``nopreempt`` off: the node with the highest priority whose track script
passes holds the virtual address; a failing script puts the instance in FAULT, which releases
the address and lets the next node take it within about three advertisement intervals.

`steelyard health` connects to every TCP-based listener (http, tcp) of the configuration on its
bound address (127.0.0.1 for a wildcard bind) and, for http listeners, sends one request and
needs a status line back; any failure within ``timeout`` seconds exits 1.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from ..units import format_duration


def render(config: Any, config_path: str, steelyard: list[str] | None = None) -> str:
    ka = config.keepalived
    if ka is None:
        raise ValueError("the configuration has no [keepalived] table")
    cmd = " ".join(shlex.quote(p) for p in [*(steelyard or _steelyard()), "health", "--config", config_path])
    peers = "".join(f"        {p}\n" for p in ka.unicast_peers)
    unicast = f"    unicast_peer {{\n{peers}    }}\n" if ka.unicast_peers else ""
    every = format_duration
    return f"""# written by `steelyard keepalived --config {config_path}`; edit that file, not this one
global_defs {{
    enable_script_security
    script_user root
    vrrp_version 3
}}

vrrp_script steelyard_serving {{
    script "{cmd}"
    interval {max(1, round(ka.check_interval))}
    timeout {max(3, 2 * round(ka.check_interval))}
    fall {ka.fall}
    rise {ka.rise}
}}

vrrp_instance steelyard {{
    state BACKUP
    interface {ka.interface}
    virtual_router_id {ka.virtual_router_id}
    priority {ka.priority}
    advert_int {ka.advert_interval:g}
{unicast}    virtual_ipaddress {{
        {ka.virtual_ipaddress} dev {ka.interface}
    }}
    track_script {{
        steelyard_serving
    }}
}}
# advertisements every {every(ka.advert_interval)}; the health script every {every(ka.check_interval)}
"""


def _steelyard() -> list[str]:
    """How keepalived should run steelyard. Its script security resolves symbolic links, so a
    virtual environment's ``python`` (a link to the base interpreter) would run outside the
    environment: the environment's ``steelyard`` script (whose first line names it) does not."""
    script = Path(sys.executable).with_name("steelyard")
    return [str(script)] if script.exists() else [sys.executable, "-m", "steelyard.cli"]
