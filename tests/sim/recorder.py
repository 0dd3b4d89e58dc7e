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
