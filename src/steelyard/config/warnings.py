"""Keys that are valid but do nothing for what the rest of the configuration chose.

A typo'd key is refused by the models; a key that is accepted but ignored (``hash_on`` on a
round_robin pool, weights under round_robin) is worse: the operator believes it works. These
checks run on a validated ``Config`` and return (key path, message) pairs, in the key-path
style of ``ConfigError``; ``steelyard check`` and ``steelyard serve`` print them as warnings.
Only keys the file actually sets are judged (``model_fields_set``), never defaults. A custom
algorithm (``package.module:Class``) may read any option, so it is never warned about.
"""

from __future__ import annotations

from typing import Any

from ..extras import MissingExtra, available

HASHING = ("ip_hash", "consistent_hash")


def _reads(algorithm: str, *builtin: str) -> bool:
    return ":" in algorithm or algorithm in builtin


def config_warnings(config: Any) -> list[tuple[str, str]]:
    """Every set-but-ignored key of ``config`` (a ``steelyard.config.Config``)."""
    found: list[tuple[str, str]] = []
    for ls in config.listeners:
        if "https_port" in ls.model_fields_set and not ls.redirect_https:
            found.append((f'listener "{ls.name}" → https_port', "has no effect without redirect_https = true"))
    for pool in config.pools:
        where, algo, given = f'pool "{pool.name}"', pool.algorithm, pool.model_fields_set
        if "hash_on" in given and not _reads(algo, "consistent_hash"):
            why = "ip_hash always hashes the client address" if algo == "ip_hash" else "it does not hash"
            found.append(
                (f"{where} → hash_on", f"ignored by algorithm {algo!r} ({why}); only consistent_hash reads it")
            )
        if "hash_balance_factor" in given and not _reads(algo, *HASHING):
            found.append(
                (f"{where} → hash_balance_factor", f"ignored by algorithm {algo!r}; only ip_hash and consistent_hash")
            )
        if "ewma_decay" in given and not _reads(algo, "least_time"):
            found.append((f"{where} → ewma_decay", f"ignored by algorithm {algo!r}; only least_time reads it"))
        if algo == "round_robin":
            for i, s in enumerate(pool.servers, 1):
                if s.weight > 1:
                    label = s.name if s.name else f"#{i}"
                    found.append(
                        (
                            f'{where} → servers "{label}" → weight',
                            "round_robin ignores weights (0 still means never picked); "
                            'use algorithm = "weighted_round_robin" for shares by weight',
                        )
                    )
        if "slow_start" in given and algo in HASHING:
            found.append((f"{where} → slow_start", f"off for {algo} (a ramping server would move its keys twice)"))
        if "slow_start_floor" in given and pool.slow_start is None:
            found.append((f"{where} → slow_start_floor", "has no effect without slow_start"))
        if (
            {"max_queue", "queue_timeout"} & given
            and pool.max_conns is None
            and not any(s.max_conns for s in pool.servers)
        ):
            key = "max_queue" if "max_queue" in given else "queue_timeout"
            found.append((f"{where} → {key}", "requests only queue once a server reaches max_conns; none is set"))
        if "retry_budget" in given and pool.retries == 0:
            found.append((f"{where} → retry_budget", "has no effect with retries = 0"))
        if {"tls_verify", "tls_ca", "tls_server_name"} & given and not pool.tls:
            key = sorted({"tls_verify", "tls_ca", "tls_server_name"} & given)[0]
            found.append((f"{where} → {key}", "has no effect without tls = true"))
    if config.cluster is not None and not available("redis"):
        found.append(("cluster", str(MissingExtra("redis", "[cluster]"))))
    return found
