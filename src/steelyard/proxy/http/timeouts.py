"""Timeouts of a client connection, checked by the listener's sweep (never by a timer per
request: the per-request path only stores timestamps, which are the sweep's own ``now``,
up to one sweep old, so every limit gets one sweep interval of slack; a request's start,
``Exchange.t_begin``, is a fresh clock reading, as the access log reports it).

- A request head (or a fresh connection's first byte) must arrive within ``request_timeout``: 408.
- An idle keep-alive connection closes after ``keepalive_timeout``.
- A request body that stops: 408 when the client stops sending, 504 when the server stops
  reading, each after its timeout; with ``min_body_rate``, a body that averages less than that
  (after ``body_grace``, counted from the head) is a 408 too, so a dawdling upload does not
  hold a server connection for long.
- The response must begin within the pool's ``try_timeout`` of the request being fully sent
  (a replayable request then tries another server), and must not stall for ``timeout`` once
  it flows (unless the client is the one not reading): 504.
- A client that reads nothing of its response for ``request_timeout`` is disconnected.
- Tunnels and connections still connecting are left alone (the connect timeout applies).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .dispatch import NO_RETRY, SENT
from .downstream import UPSTREAM_FULL
from .errors import CANNED
from .guard import too_slow

if TYPE_CHECKING:
    from .downstream import DownstreamProtocol


def check_timeouts(down: DownstreamProtocol, now: float) -> None:
    """Enforce the timeouts above on one client connection; ``now`` is the sweep's clock."""
    L = down.L
    cur = down.current
    if cur is not None:
        conn = cur.conn
        if conn is None or conn.ex is not cur:
            return  # connecting: the connect timeout applies
        if conn.responded:
            if down.write_paused and now - down.write_paused > L.request_timeout + L.slack:
                down.transport.abort()  # the client stopped reading its response
            elif conn.stalled(now):
                conn.fail(504)  # the server stopped in the middle of its response
        elif cur.request_done:
            # the response timeout counts from the moment the whole request was sent
            if cur.t_sent and now - cur.t_sent > conn.pool.try_timeout:
                conn.fail(504, SENT if not conn.head_bytes and cur.replayable else NO_RETRY)  # the next may be quicker
        elif down.paused & UPSTREAM_FULL:
            if now - down.last_active > conn.pool.timeout + L.slack:
                conn.fail(504)  # the server stopped reading the body
        elif now - down.last_active > L.request_timeout + L.slack or (
            L.min_body_rate and too_slow(cur, now, L.min_body_rate, L.body_grace)
        ):
            down._refuse(408)  # the client stopped sending the body, or sends it too slowly
        return
    if down.tunnel is not None or down.dead:
        return
    ex = down.ex
    if ex is not None:
        if now - ex.t_begin > L.request_timeout + L.slack:
            down.counted(408, len(CANNED[(408, True)]))
            down.transport.write(CANNED[(408, True)])
            down._close()
    elif now - down.last_active > (L.keepalive_timeout if down.served else L.request_timeout) + L.slack:
        down._close()
