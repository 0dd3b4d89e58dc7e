"""A user-written algorithm, loaded by dotted path in test_balancing_registry."""

from steelyard.core.balancing.base import Balancer


class FirstServer(Balancer):
    name = "first_server"

    def pick(self, ctx, exclude=()):
        return next((s for s in self.servers if s not in exclude), None)


class NotABalancer:
    pass
