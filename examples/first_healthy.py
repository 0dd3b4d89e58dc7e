# examples/first_healthy.py: a custom algorithm (docs/configuration-guide.md, "Your own algorithm")
from steelyard.core.balancing import Balancer


class FirstHealthy(Balancer):
    name = "first"

    def pick(self, ctx, exclude=()):
        for server in self.servers:  # only usable servers are ever given
            if server.weight > 0 and server not in exclude:
                return server
        return None

    def on_done(self, server, ok, elapsed):  # optional: learn from completions
        pass
