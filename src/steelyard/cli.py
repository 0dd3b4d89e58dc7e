"""``steelyard`` command line: serve, check, backend, demo, simulate, lab."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import __version__
from .config import Config, ConfigError, load_config
from .units import format_duration, parse_duration, split_host_port


def _duration(text: str) -> float:
    try:
        return parse_duration(text, allow_zero=True)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _address(text: str) -> tuple[str, int]:
    try:
        return split_host_port(text, allow_port_zero=True)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _load(path: str):
    try:
        return load_config(path)
    except ConfigError as err:
        print(f"steelyard: invalid configuration\n{err}", file=sys.stderr)
        sys.exit(2)


def _listener_notes(ls) -> str:
    d = format_duration
    if ls.mode == "tcp":
        return (
            f"idle {d(ls.idle_timeout)}"
            + (f", PROXY protocol {ls.send_proxy}" if ls.send_proxy else "")
            + ("" if ls.splice else ", no splice")
        )
    if ls.mode == "udp":
        each = "datagram" if ls.per_datagram else "flow"
        return f"balanced per {each}, flows idle {d(ls.idle_timeout)}, at most {ls.max_flows} flows"
    return f"keep-alive {d(ls.keepalive_timeout)}, request head {d(ls.request_timeout)}"


def describe(config: Config) -> str:
    """A one-screen plain-text summary, for ``steelyard check``."""
    d = format_duration
    lines = [
        f"{config.source or '<string>'}: {len(config.listeners)} listener(s), {len(config.pools)} pool(s), "
        f"{config.workers} worker(s), shutdown grace {d(config.shutdown_grace)}",
        "",
        "listeners",
    ]
    for ls in config.listeners:
        lines.append(f"  {ls.name}  {ls.mode} on {ls.bind}  → pool {ls.pool}  ({_listener_notes(ls)})")
        for n, r in enumerate(ls.routes, 1):
            conds = [
                f"host {r.host}" if r.host else "",
                f"path {r.path_prefix}*" if r.path_prefix else "",
                f"header {r.header.name}: {r.header.value}" if r.header else "",
            ]
            lines.append(f"    route {n}: {', '.join(filter(None, conds))}  → pool {r.pool}")
    lines += ["", "pools"]
    for p in config.pools:
        hashing = "hash" in p.algorithm or ":" in p.algorithm or p.hash_on != "client_ip"
        notes = [
            f"hash on {p.hash_on}" if hashing else "",
            f"balance factor {p.hash_balance_factor:g}" if p.hash_balance_factor else "",
            f"ewma decay {d(p.ewma_decay)}" if p.algorithm == "least_time" else "",
            f"connect {d(p.connect_timeout)}",
            f"timeout {d(p.timeout)}",
            f"{p.max_idle} idle for {d(p.idle_timeout)}",
        ]
        lines.append(f"  {p.name}  {p.algorithm}  ({', '.join(filter(None, notes))})")
        lines += [f"    {line}" for line in _availability(p)]
        for s in p.servers:
            extra = [
                f"weight {s.weight}",
                "backup" if s.backup else "",
                s.state if s.state != "ready" else "",
                f"max {s.max_conns} in flight" if s.max_conns else "",
            ]
            name = s.address if s.name == s.address else f"{s.name} {s.address}"
            lines.append(f"    server {name}  {', '.join(filter(None, extra))}")
    return "\n".join(lines)


def _availability(p) -> list[str]:
    """Health checks, ejection, retries, slow start and limits of pool ``p``, one line each."""
    d = format_duration
    h, o = p.health, p.outlier
    out = []
    if h is None:
        out.append("health: no active checks")
    else:
        what = f"GET {h.path} expecting {h.expect_status}" + (f" and {h.expect_body!r}" if h.expect_body else "")
        out.append(
            f"health: {what if h.type == 'http' else 'TCP connect'} every {d(h.interval)} "
            f"({d(h.failing_interval)} while failing), timeout {d(h.timeout)}, rise {h.rise}, fall {h.fall}"
        )
    if o.consecutive_failures or o.consecutive_5xx:
        after = [
            f"{o.consecutive_failures} failures" if o.consecutive_failures else "",
            f"{o.consecutive_5xx} failures or 5xx" if o.consecutive_5xx else "",
        ]
        out.append(
            f"ejection: after {' or '.join(filter(None, after))} in a row, for {d(o.base_ejection)} "
            f"growing to {d(o.max_ejection)}, at most {o.max_ejection_percent}% of the pool"
        )
    else:
        out.append("ejection: off")
    out.append(
        f"retries: {p.retries}"
        + (
            f" (budget {p.retry_budget:.0%} of requests" + (f", {d(p.try_timeout)} per try)" if p.try_timeout else ")")
            if p.retries
            else ""
        )
    )
    if p.slow_start:
        out.append(f"slow start: over {d(p.slow_start)} from {p.slow_start_floor:.0%}")
    if p.max_conns or any(s.max_conns for s in p.servers):
        out.append(f"queue: {p.max_queue} requests for {d(p.queue_timeout)} once servers reach max_conns")
    if p.panic_threshold:
        out.append(f"panic: every server when under {p.panic_threshold}% are usable")
    return out


def cmd_serve(args: argparse.Namespace) -> int:
    import tomllib

    from .config import parse_config
    from .config_base import read_file
    from .control.runtime import run

    try:
        text = read_file(args.config)
        config = parse_config(text, args.config)
        if args.workers is not None:  # (checked as if the file said so: its limit and what it excludes)
            config = parse_config({**tomllib.loads(text), "workers": args.workers}, args.config)
    except ConfigError as err:
        given = "" if args.workers is None else f" with --workers {args.workers}"
        print(f"steelyard: invalid configuration{given}\n{err}", file=sys.stderr)
        return 2
    try:
        run(config, text, args.workers)
    except (OSError, RuntimeError) as exc:  # the address is in use or not ours to bind; a worker did not start
        print(f"steelyard: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    config = _load(args.config)
    print(f"{args.config}: configuration is valid\n")
    print(describe(config))
    return 0


def cmd_backend(args: argparse.Namespace) -> int:
    from .demo.lab import run_backend

    host, port = args.listen
    if args.sessions:  # the session routes (steelyard.sessions behind uvicorn)
        from .demo.sessions_app import run_sessions_backend

        run_sessions_backend(args.name, host, port, args.sessions, args.peer or [], args.replicate_on)
        return 0
    if args.register:
        if not args.pool or not port:
            print("steelyard backend: --register needs --pool and a fixed --listen port", file=sys.stderr)
            return 2
        _register_in_thread(args, f"{host}:{port}")
    run_backend(args.name, host, port, delay=args.delay)
    return 0


def cmd_register(args: argparse.Namespace) -> int:
    """Keep ``--address`` registered in ``--pool`` until SIGTERM / SIGINT (cluster/registry.py)."""
    import asyncio
    import signal

    from .cluster.registry import keep_registered

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await keep_registered(
            args.redis,
            args.pool,
            args.address,
            name=args.name,
            weight=args.weight,
            ttl=args.ttl,
            prefix=args.prefix,
            stop=stop,
            say=lambda m: print(m, flush=True),
        )

    asyncio.run(main())
    return 0


def _register_in_thread(args: argparse.Namespace, address: str) -> None:
    """``steelyard backend --register URL --pool P``: the registration runs beside the backend."""
    import asyncio
    import threading

    from .cluster.registry import keep_registered

    def run() -> None:
        asyncio.run(
            keep_registered(
                args.register, args.pool, address, name=args.name, ttl=args.ttl, say=lambda m: print(m, flush=True)
            )
        )

    threading.Thread(target=run, daemon=True, name="register").start()


def cmd_keepalived(args: argparse.Namespace) -> int:
    from .cluster.keepalived import render

    config = _load(args.config)
    try:
        text = render(config, str(Path(args.config).resolve()))
    except ValueError as exc:
        print(f"steelyard keepalived: {exc}", file=sys.stderr)
        return 2
    if args.output:
        Path(args.output).write_text(text)
    else:
        print(text, end="")
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    from .cluster.keepalived import serving

    ok, why = serving(_load(args.config), args.timeout)
    try:
        print(f"steelyard health: {why}", file=sys.stdout if ok else sys.stderr, flush=True)
    except OSError:
        pass  # (keepalived runs track scripts with unwritable standard streams: the exit status speaks)
    return 0 if ok else 1


def cmd_demo(args: argparse.Namespace) -> int:
    if args.scenario == "sessions":  # `steelyard demo sessions`: what survives a server's death
        from .demo.sessions_demo import run_sessions_demo

        return run_sessions_demo()
    if args.algorithm:  # `steelyard demo --algorithm NAME`: the side-by-side comparison
        return cmd_lab(args)
    from .demo.lab import run_demo

    host, port = args.listen
    try:
        run_demo(host, port, first_backend_port=args.backend_port, admin=args.admin)
    except OSError as exc:  # a port of the demo is taken: say which, no traceback
        print(f"steelyard demo: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from .sim.command import run

    return run(args)


def cmd_lab(args: argparse.Namespace) -> int:
    from .demo.compare import check_algorithms, run_lab

    try:
        algorithms = check_algorithms(args.algorithm)
    except ValueError as exc:
        print(f"steelyard lab: {exc}", file=sys.stderr)
        return 2
    if args.requests < 1 or args.concurrency < 1:
        print("steelyard lab: --requests and --concurrency must be at least 1", file=sys.stderr)
        return 2
    try:
        run_lab(algorithms, requests=args.requests, concurrency=args.concurrency, time_limit=args.time_limit)
    except OSError as exc:
        print(f"steelyard lab: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="steelyard", description="A software load balancer.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log control-plane events")
    parser.add_argument("--version", action="version", version=f"steelyard {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the balancer in the foreground")
    p.add_argument("--config", "-c", required=True, help="TOML configuration file")
    p.add_argument("--workers", "-w", type=int, help="worker processes (overrides the file's workers)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("check", help="validate a configuration file and summarize it")
    p.add_argument("--config", "-c", required=True, help="TOML configuration file")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("backend", help="run a demo application server")
    p.add_argument("--name", required=True, help="name reported in X-Served-By")
    p.add_argument("--listen", required=True, type=_address, help="HOST:PORT to listen on")
    p.add_argument("--delay", type=_duration, default=0.0, help="latency added to every answer, e.g. 20ms")
    p.add_argument(
        "--sessions", help="serve /login, /me, /logout on a session store: memory, redis://HOST:PORT/DB or replicated"
    )
    p.add_argument("--peer", type=_address, action="append", help="replicated: a peer's replication HOST:PORT")
    p.add_argument("--replicate-on", type=_address, help="replicated: this node's replication HOST:PORT")
    p.add_argument("--register", metavar="REDIS_URL", help="register this backend in a cluster's --pool")
    p.add_argument("--pool", help="--register: the pool to join")
    p.add_argument("--ttl", type=_duration, default=3.0, help="--register: registration TTL (refreshed at 1/3)")
    p.set_defaults(func=cmd_backend)

    p = sub.add_parser("register", help="keep a server registered in a clustered pool (Redis, TTL'd)")
    p.add_argument("--redis", required=True, help="redis://HOST:PORT/DB (the cluster's [cluster] redis)")
    p.add_argument("--pool", required=True)
    p.add_argument("--address", required=True, help="HOST:PORT of the server")
    p.add_argument("--name", help="server name (default: the address)")
    p.add_argument("--weight", type=int, default=1)
    p.add_argument("--ttl", type=_duration, default=3.0, help="registration TTL, refreshed every third of it")
    p.add_argument("--prefix", default="steelyard", help="the cluster's [cluster] prefix")
    p.set_defaults(func=cmd_register)

    p = sub.add_parser("keepalived", help="write a keepalived configuration for [keepalived] (floating address)")
    p.add_argument("--config", "-c", required=True, help="TOML configuration file")
    p.add_argument("--output", "-o", help="write it here (default: standard output)")
    p.set_defaults(func=cmd_keepalived)

    p = sub.add_parser("health", help="exit 0 when the local balancer serves (keepalived's track script)")
    p.add_argument("--config", "-c", required=True, help="TOML configuration file")
    p.add_argument("--timeout", type=_duration, default=1.0, help="per listener, e.g. 500ms")
    p.set_defaults(func=cmd_health)

    p = sub.add_parser("demo", help="three demo backends behind the balancer")
    p.add_argument("scenario", nargs="?", choices=["sessions"], help="sessions: what survives a server's death")
    p.add_argument("--listen", type=_address, default=("127.0.0.1", 8080), help="balancer address")
    p.add_argument("--backend-port", type=int, default=9001, help="first of three backend ports (0: ephemeral)")
    p.add_argument("--admin", type=_address, default=("127.0.0.1", 9901), help="admin API and dashboard address")
    p.add_argument(
        "--algorithm",
        "-a",
        action="append",
        help="instead: drive a bounded load through these algorithms and compare them (as `lab`)",
    )
    p.set_defaults(func=cmd_demo, requests=300, concurrency=8, time_limit=60.0)

    from .ctl import add_arguments as add_ctl_arguments
    from .ctl import run as run_ctl

    p = sub.add_parser("ctl", help="talk to a running balancer's admin API")
    add_ctl_arguments(p)
    p.set_defaults(func=run_ctl)

    from .sim.command import add_arguments as add_simulate_arguments

    p = sub.add_parser("simulate", help="simulate the balancing algorithms (discrete events, seeded)")
    add_simulate_arguments(p)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("lab", help="the demo's algorithms side by side under a bounded load (127.0.0.1)")
    p.add_argument("--algorithm", "-a", action="append", help="algorithm to drive (repeatable); default: all")
    p.add_argument("--requests", type=int, default=300, help="requests per algorithm (default 300)")
    p.add_argument("--concurrency", type=int, default=8, help="keep-alive connections (default 8)")
    p.add_argument("--time-limit", type=_duration, default=60.0, help="stop sending after this long (default 60s)")
    p.set_defaults(func=cmd_lab)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
