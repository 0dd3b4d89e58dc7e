# examples/api_key_filter.py: a filter (docs/ARCHITECTURE.md, "Write your own filter")
import logging

from steelyard.filters import Filter, Response

log = logging.getLogger("api")


class RequireApiKey(Filter):
    """403 without a known X-Api-Key; the server gets the key's owner instead of the key."""

    def __init__(self, options):
        super().__init__(options)
        self.owners = dict(options["keys"])  # key -> owner; no "keys": `steelyard check` says so

    def request_filter(self, req, ctx):
        owner = self.owners.get(req.headers.get("X-Api-Key", ""))
        if owner is None:
            return Response(403, {"Content-Type": "text/plain"}, "an API key is needed\n")
        req.headers.remove("X-Api-Key")
        req.headers.set("X-Api-Client", owner)
        ctx.vars["owner"] = owner
        return None

    def response_filter(self, resp, ctx):
        resp.headers.set("X-Served-By", ctx.server)

    def logging(self, req, resp, ctx):
        owner = ctx.vars.get("owner", "-")
        log.info("%s %s %s -> %d in %.1f ms", owner, req.method, req.path, ctx.status, ctx.duration * 1000)
