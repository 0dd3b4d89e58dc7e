"""steelyard.proxy.resources: local shortages are told apart from a server's failures and
logged at most once a second."""

from __future__ import annotations

import errno
import logging

from steelyard.proxy.resources import Warner, is_local


def test_descriptor_and_port_shortages_are_local_and_refusals_are_not():
    assert is_local(OSError(errno.EMFILE, "Too many open files"))
    assert is_local(OSError(errno.ENFILE, "File table overflow"))
    assert is_local(OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"))
    assert not is_local(ConnectionRefusedError(errno.ECONNREFUSED, "refused"))
    assert not is_local(OSError(errno.EHOSTUNREACH, "No route to host"))
    assert not is_local(TimeoutError())


def test_the_warning_is_logged_at_most_once_a_second_and_counts_the_rest(caplog):
    now = [100.0]
    w = Warner(every=1.0, clock=lambda: now[0])
    exc = OSError(errno.EMFILE, "Too many open files")
    with caplog.at_level(logging.ERROR, logger="steelyard.resources"):
        assert w.warn("connect to a", exc)
        now[0] += 0.5
        assert not w.warn("connect to a", exc)
        assert not w.warn("connect to b", exc)
        now[0] += 0.6
        assert w.warn("connect to c", exc)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "connect to c" in lines[1] and "2 more since the last line" in lines[1]
