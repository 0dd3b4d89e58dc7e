"""Balancing algorithms, one module each, behind the interface in ``base``."""

from .base import Balancer, BalancerOptions, PickContext, resolve_algorithm, BUILTIN_ALGORITHMS

__all__ = ["Balancer", "BalancerOptions", "PickContext", "resolve_algorithm", "BUILTIN_ALGORITHMS"]
