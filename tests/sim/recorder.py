"""A custom algorithm (loaded by dotted path) that records how the engine drives it."""

from steelyard.core.balancing.round_robin import RoundRobin


class Recorder(RoundRobin):
    log: list = []  # class-level: the engine builds the instance itself

    def pick(self, ctx, exclude=()):
        server = super().pick(ctx, exclude)
        Recorder.log.append(("pick", self.clock(), server.name, server.load.active))
        return server

    def on_done(self, server, ok, elapsed):
        Recorder.log.append(("done", self.clock(), server.name, server.load.active, ok, elapsed))


class Ledger(RoundRobin):
    """Round robin that keeps every ``Server`` it is built over, to read their load records
    after a run."""

    servers_seen: set = set()  # class-level, like ``Recorder.log``

    def __init__(self, servers, **kwargs):
        super().__init__(servers, **kwargs)
        Ledger.servers_seen.update(servers)
