"""Local resource errors: this process ran out of something, the server did nothing wrong.

When ``connect`` fails because this process has no file descriptor left (``EMFILE``), the
system none (``ENFILE``), or memory or buffers or ephemeral ports run out, trying another
server cannot help and counting it as the server's failure would eject healthy servers (and
leave every request answered 503 until their ejection ends). Such failures are answered
503 at once, never reported to passive health or the balancer, and logged at most once a
second per process, with how many were not logged.
"""

from __future__ import annotations

import errno
import logging
import resource
import time
from collections.abc import Callable

log = logging.getLogger("steelyard.resources")

LOCAL_ERRNOS = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EADDRNOTAVAIL, errno.EAGAIN))
"""errno values of ``connect``/``socket`` that describe this host, not the server."""


def is_local(exc: BaseException) -> bool:
    """True when ``exc`` is a local resource shortage (see the module docstring)."""
    return isinstance(exc, OSError) and exc.errno in LOCAL_ERRNOS


class Warner:
    """Logs a local resource error at most once per ``every`` seconds (the rest are counted)."""

    __slots__ = ("every", "last", "missed", "clock")

    def __init__(self, every: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every, self.clock = every, clock
        self.last = -every
        self.missed = 0

    def warn(self, what: str, exc: BaseException) -> bool:
        """Log ``what`` failed with ``exc`` unless a line went out less than ``every`` ago (True: logged)."""
        now = self.clock()
        if now - self.last < self.every:
            self.missed += 1
            return False
        more = f" ({self.missed} more since the last line)" if self.missed else ""
        log.error("%s failed for lack of local resources: %s%s; not counted against the server", what, exc, more)
        self.last, self.missed = now, 0
        return True


WARNER = Warner()  # one per process: these errors are rare, and one line a second is enough


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit (as HAProxy and nginx do at start);
    returns (soft, hard) as they are afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft, hard
