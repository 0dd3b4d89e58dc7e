"""``[keepalived]``: a floating (virtual) address held by one balancer node at a time, through
keepalived's VRRP. steelyard does not speak VRRP itself: `steelyard keepalived` writes the
keepalived configuration, whose track script (`steelyard health`) takes the address away from a
node whose balancer stops serving.

Invariants: ``virtual_ipaddress`` is an address with a prefix length ("10.0.0.100/24");
``priority`` leaves room for ``weight``-free FAULT handling (a failing track script puts the
instance in FAULT, which releases the address at once).
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import AfterValidator, Field

from .base import Duration, Int, _Model


def _interface_address(text: str) -> str:
    try:
        ipaddress.ip_interface(text)
    except ValueError:
        raise ValueError(f'expected an address with its prefix length, e.g. "10.0.0.100/24"; got {text!r}') from None
    if "/" not in text:
        raise ValueError(f'give the prefix length too, e.g. "{text}/24"')
    return text


class KeepalivedConfig(_Model):
    interface: Annotated[str, Field(min_length=1, max_length=15, pattern=r"^[A-Za-z0-9_.:-]+$")]
    """The network interface the floating address lives on."""
    virtual_ipaddress: Annotated[str, AfterValidator(_interface_address)]
    """The floating address with its prefix length, e.g. \"10.0.0.100/24\"."""
    virtual_router_id: Annotated[Int, Field(ge=1, le=255)] = 51
    """VRRP router id, the same on every node of the pair, unique on the network."""
    priority: Annotated[Int, Field(ge=1, le=254)] = 100
    """The highest healthy node holds the address."""
    advert_interval: Duration = 1.0
    """How often VRRP advertisements go out (VRRPv3: centiseconds are allowed)."""
    check_interval: Duration = 1.0
    """How often `steelyard health` runs."""
    fall: Annotated[Int, Field(ge=1)] = 2
    """Failed health runs before the node gives the address up."""
    rise: Annotated[Int, Field(ge=1)] = 2
    """Passing health runs before the node may hold the address again."""
    unicast_peers: tuple[Annotated[str, AfterValidator(lambda t: str(ipaddress.ip_address(t)))], ...] = ()
    """Peers' addresses for unicast VRRP (default: multicast)."""
