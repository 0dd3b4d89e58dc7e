"""A pool's view of its servers' health: rise/fall hysteresis, outlier ejection, backup
servers, panic mode and which servers are usable right now. Pure: the caller passes ``now``.

Invariants:
- ``Hysteresis``: after its first result, a server goes down only after ``fall``
  consecutive failed checks and comes back only after ``rise`` consecutive good ones;
  results inside those thresholds change nothing. The first result decides at once
  (a server that is dead when the balancer starts is not given traffic for fall checks).
- Ejection (passive health) never takes more than ``max_ejection_percent`` of the pool's
  primaries out at once, except that one server may always go. The n-th ejection of a
  server lasts n × ``base_ejection`` (capped at ``max_ejection``); a server that stays out
  of trouble for ``max_ejection`` after its return has its count reset.
- An ejected server whose active checks failed and then passed again since its ejection
  is un-ejected (it went away and came back: a restart, say); checks that only ever pass
  do not end an ejection for 5xx responses early.
- ``PoolHealth.usable()``: usable primaries; or, when none is usable, usable backups; with a
  panic threshold, every ready primary when too few (or none) are usable. Draining and
  maintenance servers are never picked; draining ones still finish their requests.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .model import Server

READY, DRAIN, MAINT = "ready", "drain", "maint"


class Hysteresis:
    """Rise/fall counting of active check results (HAProxy's ``rise``/``fall``)."""

    __slots__ = ("rise", "fall", "up", "streak", "checked")

    def __init__(self, rise: int, fall: int) -> None:
        self.rise, self.fall = rise, fall
        self.up = True
        self.streak = 0  # consecutive results against the current state
        self.checked = False

    def observe(self, ok: bool) -> bool:
        """Take one check result; True when it flips the state."""
        if not self.checked:
            self.checked = True
            flipped = ok != self.up
            self.up = ok
            return flipped
        if ok == self.up:
            self.streak = 0
            return False
        self.streak += 1
        if self.streak >= (self.rise if ok else self.fall):
            self.up, self.streak = ok, 0
            return True
        return False

    @property
    def failing(self) -> bool:
        """Down, or up with failures counting towards ``fall`` (checks come faster then)."""
        return not self.up or self.streak > 0


@dataclass(frozen=True)
class EjectionPolicy:
    base: float = 30.0
    maximum: float = 300.0
    max_percent: int = 50


class ServerState:
    """One server's standing in its pool; owned and changed by the control plane only."""

    __slots__ = (
        "server",
        "backup",
        "admin",
        "check",
        "ejected_until",
        "ejections",
        "returned_at",
        "usable_since",
        "reason",
        "changed_at",
        "was_usable",
        "drained",
        "check_failed",
        "origin",
        "removing",
        "ejected_total",
    )

    def __init__(
        self, server: Server, *, backup: bool = False, admin: str = READY, check: Hysteresis | None = None
    ) -> None:
        self.server = server
        self.backup = backup
        self.admin = admin
        self.check = check
        self.ejected_until = 0.0  # 0: not ejected
        self.ejections = 0  # ejections so far (reset after a clean spell)
        self.returned_at = 0.0  # when the last ejection ended
        self.usable_since: float | None = None  # when it last became usable (slow start); None: from the start
        self.reason = "configured"
        self.changed_at = 0.0
        self.was_usable = self.healthy
        self.drained = admin != DRAIN
        self.check_failed = False  # an active check failed since the last ejection
        self.origin = "config"  # or "runtime": added through the admin API
        self.removing = False  # draining before it leaves the pool for good
        self.ejected_total = 0  # ejections since start (metrics)

    @property
    def healthy(self) -> bool:
        return (self.check is None or self.check.up) and not self.ejected_until

    @property
    def usable(self) -> bool:
        return self.admin == READY and self.healthy

    @property
    def status(self) -> str:
        """One word for people: ready / drain / maint / down / ejected."""
        if self.admin != READY:
            return self.admin
        if self.check is not None and not self.check.up:
            return "down"
        return "ejected" if self.ejected_until else "up"


class PoolHealth:
    """The health bookkeeping of one pool: every ``ServerState`` and the rules above.

    Each method that can change which servers are usable returns True when it did;
    the caller then publishes ``usable()`` as a new snapshot. ``events`` collects one
    line per change for the log (the caller empties it).
    """

    def __init__(
        self, states: Iterable[ServerState], *, ejection: EjectionPolicy | None = None, panic_threshold: int = 0
    ) -> None:
        self.states = list(states)
        self.ejection = ejection or EjectionPolicy()
        self.panic_threshold = panic_threshold
        self.panic = False
        self.events: list[str] = []

    def state_of(self, server: Server) -> ServerState | None:
        for st in self.states:
            if st.server is server:
                return st
        return None

    # -- changes -----------------------------------------------------------------

    def check_result(self, st: ServerState, ok: bool, why: str, now: float) -> bool:
        """An active check's result for ``st``; ``why`` says what it saw."""
        if st.check is None:
            return False
        flipped = st.check.observe(ok)
        if not ok:
            st.check_failed = True
        elif st.ejected_until and st.check_failed and st.check.up:
            # checks saw it fail and then pass since it was ejected: it went and came back
            st.ejected_until = 0.0
            st.returned_at = now
            return self._settle(st, ("up: " if flipped else "ejection over: ") + why, now)
        if not flipped:
            return False
        return self._settle(st, ("up: " if ok else "down: ") + why, now)

    def eject(self, st: ServerState, why: str, now: float) -> bool:
        """Passive health: real traffic failed on ``st`` too often. False when it stays in
        (already out, or the ejection cap is reached)."""
        if st.ejected_until or not st.usable or st.backup:
            return False
        primaries = [s for s in self.states if not s.backup and s.admin != MAINT]
        out = sum(1 for s in primaries if s.ejected_until)
        if out and (out + 1) * 100 > self.ejection.max_percent * len(primaries):
            return False
        if st.returned_at and now - st.returned_at > self.ejection.maximum:
            st.ejections = 0  # a clean spell since the last return
        st.ejections += 1
        st.ejected_total += 1
        length = min(self.ejection.base * st.ejections, self.ejection.maximum)
        st.ejected_until = now + length
        st.check_failed = False
        return self._settle(st, f"ejected for {length:g}s: {why}", now)

    def set_admin(self, st: ServerState, admin: str, now: float) -> bool:
        if admin not in (READY, DRAIN, MAINT):
            raise ValueError(f"unknown server state {admin!r} (ready, drain or maint)")
        if st.admin == admin:
            return False
        st.admin = admin
        st.drained = admin != DRAIN
        return self._settle(st, f"set to {admin}", now)

    def tick(self, now: float) -> bool:
        """Time passes: ejections run out. True when the usable set changed."""
        changed = False
        for st in self.states:
            if st.ejected_until and now >= st.ejected_until:
                st.ejected_until = 0.0
                st.returned_at = now
                changed |= self._settle(st, "ejection over", now)
        return changed

    def drained_now(self) -> list[ServerState]:
        """Draining servers whose last request just finished (each reported once)."""
        done = [st for st in self.states if st.admin == DRAIN and not st.drained and not st.server.load.active]
        for st in done:
            st.drained = True
            self.events.append(f"server {st.server.name}: drained (no request in flight)")
        return done

    def _settle(self, st: ServerState, why: str, now: float) -> bool:
        st.reason, st.changed_at = why, now
        usable = st.usable
        if usable and not st.was_usable:
            st.usable_since = now
        changed = usable != st.was_usable
        st.was_usable = usable
        self.events.append(f"server {st.server.name}: {why}")
        return changed

    # -- the published view ------------------------------------------------------

    def usable(self) -> tuple[Server, ...]:
        """The servers the balancer may pick now (see the module docstring)."""
        ready = [st for st in self.states if not st.backup and st.admin == READY]
        # (``st.healthy``, inline: this runs on every publish, over every server)
        good = tuple(st.server for st in ready if (st.check is None or st.check.up) and not st.ejected_until)
        threshold = self.panic_threshold
        panic = bool(threshold) and len(good) * 100 < threshold * len(ready)
        chosen = good
        if not good:
            chosen = self._backups()
            panic = panic and not chosen
        if panic:
            chosen = tuple(st.server for st in ready)
        if panic != self.panic:
            self.panic = panic
            self.events.append(f"panic mode {'on: balancing over every server' if panic else 'over'}")
        return chosen

    def _backups(self) -> tuple[Server, ...]:
        return tuple(st.server for st in self.states if st.backup and st.usable)

    def ramping(self, now: float, window: float) -> dict[Server, float]:
        """Servers still inside their slow-start window: server -> when it became usable."""
        return {
            st.server: st.usable_since
            for st in self.states
            if st.usable_since is not None and now - st.usable_since < window and st.usable
        }
