"""TLS termination: server-side SSL contexts, one per certificate, chosen by the client's SNI name.

Rules:
- Modern defaults: TLS 1.2 or newer (``min_version = "1.3"`` raises it), the stdlib's secure
  cipher list, no compression, no renegotiation, ALPN ``http/1.1`` only (a client offering only
  h2 gets no ALPN agreement and falls back, or fails, on its own side).
- The certificate is chosen in the handshake by ``sni_callback``: the exact SNI name first, then
  ``*.suffix`` for its parent domain (one label, as certificates' wildcards match), else the
  default certificate (``cert``/``key``, or the first ``[[listener.tls.certificate]]``).
  Names compare lower-cased, without a trailing dot.
- ``reload()`` reads every certificate and key again (after they were renewed on disk) and swaps
  the name table in one step: handshakes after it use the new ones, connections already made
  keep theirs. A file that fails to load keeps the old table whole and raises.
"""

from __future__ import annotations

import ssl
from typing import Any

ALPN = ["http/1.1"]


def server_context(cert: str, key: str, min_version: str = "1.2") -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3 if min_version == "1.3" else ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.set_alpn_protocols(ALPN)
    ctx.load_cert_chain(cert, key)
    return ctx


def client_context(verify: bool, cafile: str | None) -> ssl.SSLContext:
    """For TLS to servers: TLS 1.2+, ALPN http/1.1, the certificate checked unless ``verify`` is off."""
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(ALPN)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class SniContexts:
    """The listener's SSL context (``default``) and the per-name contexts its SNI callback picks."""

    def __init__(self, tls: Any) -> None:
        self.tls = tls  # a config.listener.TlsConfig
        self.default: ssl.SSLContext = None  # type: ignore[assignment]
        self.by_name: dict[str, ssl.SSLContext] = {}
        self.reload()

    def reload(self) -> None:
        tls = self.tls
        default = server_context(tls.cert, tls.key, tls.min_version) if tls.cert is not None else None
        by_name: dict[str, ssl.SSLContext] = {}
        for c in tls.certificates:
            ctx = server_context(c.cert, c.key, tls.min_version)
            default = default or ctx
            for name in c.names:
                by_name.setdefault(name.lower().rstrip("."), ctx)
        if self.default is None:
            self.default = default  # the listening socket's context, kept for its lifetime
            self.default.sni_callback = self._choose
        else:  # the listening socket keeps its context: give it the new default chain
            first = tls if tls.cert is not None else tls.certificates[0]
            self.default.load_cert_chain(first.cert, first.key)
        self.by_name = by_name

    def choose(self, name: str | None) -> ssl.SSLContext | None:
        """The context for SNI ``name``; None: the default one."""
        if not name:
            return None
        name = name.lower().rstrip(".")
        by_name = self.by_name
        ctx = by_name.get(name)
        if ctx is None:
            _, dot, parent = name.partition(".")
            if dot:
                ctx = by_name.get("*." + parent)
        return ctx

    def _choose(self, sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        ctx = self.choose(name)
        if ctx is not None:
            sock.context = ctx
