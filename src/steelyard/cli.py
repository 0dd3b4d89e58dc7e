"""``steelyard`` command line: serve, check, backend, demo, simulate, lab."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import __version__
from .config import ConfigError, load_config
from .config.summary import describe
from .config.warnings import config_warnings
from .units import parse_duration, split_host_port


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


def cmd_serve(args: argparse.Namespace) -> int:
    import tomllib

    from .config import parse_config, read_file
    from .control.serve import run

    try:
        text = read_file(args.config)
        config = parse_config(text, args.config)
        if args.workers is not None:  # (checked as if the file said so: its limit and what it excludes)
            config = parse_config({**tomllib.loads(text), "workers": args.workers}, args.config)
    except ConfigError as err:
        given = "" if args.workers is None else f" with --workers {args.workers}"
        print(f"steelyard: invalid configuration{given}\n{err}", file=sys.stderr)
        return 2
    for path, msg in config_warnings(config):
        logging.getLogger("steelyard.config").warning("%s: %s: %s", args.config, path, msg)
    try:
        run(config, text, args.workers)
    except (OSError, RuntimeError) as exc:  # the address is in use or not ours to bind; a worker did not start
        print(f"steelyard: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    config = _load(args.config)
    warnings = config_warnings(config)
    print(f"{args.config}: configuration is valid" + (f" ({len(warnings)} warning(s))" if warnings else "") + "\n")
    for path, msg in warnings:
        print(f"warning: {args.config}: {path}: {msg}", file=sys.stderr)
    if warnings:
        print(file=sys.stderr)
    print(describe(config))
    return 0


def cmd_backend(args: argparse.Namespace) -> int:
    from .demo.lab import run_backend

    host, port = args.listen
    if args.sessions:  # the session routes (steelyard.sessions behind uvicorn)
        if args.sessions.startswith("redis://") and not _need("redis", "the Redis session store"):
            return 2
        from .demo.sessions_app import run_sessions_backend

        run_sessions_backend(args.name, host, port, args.sessions, args.peer or [], args.replicate_on)
        return 0
    if args.register:
        if not args.pool or not port:
            print("steelyard backend: --register needs --pool and a fixed --listen port", file=sys.stderr)
            return 2
        if not _need("redis", "backend --register"):
            return 2
        stop_registration = _register_in_thread(args, f"{host}:{port}")
        try:
            run_backend(args.name, host, port, delay=args.delay)
        finally:  # SIGTERM ends the backend: its registration goes with it
            stop_registration()
        return 0
    run_backend(args.name, host, port, delay=args.delay)
    return 0


def _need(extra: str, feature: str) -> bool:
    """False (after a one-line error naming the pip extra) when ``feature`` cannot run here."""
    from .extras import MissingExtra, require

    try:
        require(extra, feature)
    except MissingExtra as exc:
        print(f"steelyard: {exc}", file=sys.stderr)
        return False
    return True


def cmd_register(args: argparse.Namespace) -> int:
    """Keep ``--address`` registered in ``--pool`` until SIGTERM / SIGINT (cluster/registry.py)."""
    import asyncio
    import signal

    if not _need("redis", "steelyard register"):
        return 2
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


def _register_in_thread(args: argparse.Namespace, address: str):
    """``steelyard backend --register URL --pool P``: the registration runs beside the backend;
    the function returned ends it (deregistering) and waits for that, at most 5 s."""
    import asyncio
    import threading

    from .cluster.registry import keep_registered

    started = threading.Event()
    held: dict = {}

    async def register() -> None:
        held["loop"], held["stop"] = asyncio.get_running_loop(), asyncio.Event()
        started.set()
        say = lambda m: print(m, flush=True)  # noqa: E731
        await keep_registered(
            args.register, args.pool, address, name=args.name, ttl=args.ttl, stop=held["stop"], say=say
        )

    thread = threading.Thread(target=lambda: asyncio.run(register()), daemon=True, name="register")
    thread.start()
    started.wait(5)

    def stop() -> None:
        if "loop" in held:
            held["loop"].call_soon_threadsafe(held["stop"].set)
        thread.join(5)

    return stop


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
    from .control.selfcheck import serving

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

    p = sub.add_parser("health", help="exit 0 when the local balancer answers real requests (admin API, listeners)")
    p.add_argument("--config", "-c", required=True, help="TOML configuration file")
    p.add_argument("--timeout", type=_duration, default=1.0, help="per request, e.g. 500ms")
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
