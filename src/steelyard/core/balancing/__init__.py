"""Balancing algorithms, one module each, behind the interface in ``base``."""

from .base import BUILTIN_ALGORITHMS, Balancer, BalancerOptions, PickContext, resolve_algorithm

__all__ = ["Balancer", "BalancerOptions", "PickContext", "resolve_algorithm", "BUILTIN_ALGORITHMS"]
