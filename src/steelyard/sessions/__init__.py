"""Server-side sessions for the application servers behind steelyard.

``SessionMiddleware`` (ASGI: Starlette, FastAPI) and ``WsgiSessionMiddleware`` (WSGI: Flask)
over one store interface (``store.Store``) with three stores:

- ``MemoryStore``: node-local; a session is lost when its server goes, and invisible to the
  others (needs balancer stickiness).
- ``RedisStore``: one shared redis-server (TTL, atomic updates, a clear 503 when unreachable).
- ``ReplicatedStore``: session clustering: every node holds every session and replicates each
  change to its peers (last writer wins by version); a (re)starting node catches up from a peer.
"""

from .asgi import SessionMiddleware
from .store import MemoryStore, Store, StoreUnavailable, open_store
from .wsgi import WsgiSessionMiddleware

__all__ = ["MemoryStore", "SessionMiddleware", "Store", "StoreUnavailable", "WsgiSessionMiddleware", "open_store"]
