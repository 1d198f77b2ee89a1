"""Command line: ``agent-session-exporter --config.file PATH [--web.listen-address HOST:PORT] ...``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import signal
import sys
from typing import AsyncIterator, Sequence

import structlog
from aiohttp import web

from agent_session_exporter import __version__, testread
from agent_session_exporter.app import Exporter
from agent_session_exporter.config import (
    DEFAULT_LISTEN,
    Config,
    ConfigError,
    check_machine,
    config_schema_text,
    load_config,
    parse_listen,
)
from agent_session_exporter.keep.sqlite import SqliteStore, StateError
from agent_session_exporter.keep.store import MemoryStore, Store
from agent_session_exporter.logs import configure_logging
from agent_session_exporter.read.spec.load import spec_schema_text
from agent_session_exporter.serve.healthcheck import healthcheck, note_health_url
from agent_session_exporter.serve.listener import (
    DEFAULT_MAX_CONNECTIONS,
    KEEPALIVE_TIMEOUT,
    RESERVED_CONNECTIONS,
    ConnectionGuard,
)
from agent_session_exporter.serve.listener import listen as listen_on
from agent_session_exporter.serve.server import make_app
from agent_session_exporter.serve.webconfig import WebConfig, load_web_config
from agent_session_exporter.serve.webhooks import OnListening, open_webhook_listener
from agent_session_exporter.shards import Shard, pod_ordinal

log = structlog.get_logger()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Flags in the Prometheus style; the earlier spellings stay as aliases."""
    parser = argparse.ArgumentParser(prog="agent-session-exporter",
                                     description="Prometheus exporter for AI-agent and LLM-workflow session metrics.")
    parser.add_argument("--config.file", "--config", dest="config", metavar="PATH", help="the YAML config file")
    parser.add_argument("--web.listen-address", "--listen", dest="listen", metavar="HOST:PORT",
                        help=f"where to serve (default: the config's listen, else {DEFAULT_LISTEN})")
    parser.add_argument("--web.telemetry-path", dest="telemetry_path", default="/metrics", metavar="PATH",
                        help="the path of the metrics (default /metrics)")
    parser.add_argument("--web.config.file", dest="web_config_file", metavar="PATH",
                        help="exporter-toolkit web config: TLS (tls_server_config) and basic auth (basic_auth_users)")
    parser.add_argument("--web.max-connections", dest="max_connections", type=int, default=DEFAULT_MAX_CONNECTIONS,
                        help=f"connections served at once, TLS handshakes included (default {DEFAULT_MAX_CONNECTIONS}); "
                             f"{RESERVED_CONNECTIONS} more may ask for /healthz (anything else gets 503), the rest are "
                             "closed at once")
    parser.add_argument("--web.webhook-address", dest="webhook_address", metavar="HOST:PORT", help="serve webhooks here (off)")
    parser.add_argument("--log.level", "--log-level", dest="log_level", default="info",
                        choices=["debug", "info", "warn", "warning", "error"],
                        help="debug, info, warn (Prometheus's spelling; warning too) or error")
    parser.add_argument("--log.format", "--log-format", dest="log_format", choices=["logfmt", "json"],
                        help="default: json, logfmt on a terminal")
    parser.add_argument("--check-config", nargs="?", const=True, default=False, metavar="PATH",
                        help="validate the config (--config.file, this PATH, or with --demo the demo's) and exit")
    parser.add_argument("--config.schema", dest="config_schema", action="store_true",
                        help="print the config file's JSON Schema (for editors) and exit")
    parser.add_argument("--spec.schema", dest="spec_schema", action="store_true",
                        help="print the provider spec language's JSON Schema (for editors writing a spec) and exit")
    parser.add_argument("--healthcheck", action="store_true",
                        help="ask the running exporter's /healthz (at the address it started on) and exit 0 if it "
                             "answers 200: a container HEALTHCHECK that follows the configured address")
    testread.add_arguments(parser)
    parser.add_argument("--once", action="store_true", help="run one cycle over every source, print the exposition")
    parser.add_argument("--demo", action="store_true", help="poll built-in simulators of all six providers")
    parser.add_argument("--reset-state", action="store_true",
                        help="delete the state file (state_path) and start counting anew")
    parser.add_argument("--total-shards", dest="total_shards", type=int, default=1, metavar="M",
                        help="run as one of M replicas, each polling the sources whose name hashes to its shard (default 1)")
    shard = parser.add_mutually_exclusive_group()
    shard.add_argument("--shard", type=int, metavar="N", help="this replica's shard, from 0 to M-1 (with --total-shards M)")
    shard.add_argument("--shard-from-pod-name", dest="shard_pod_name", metavar="POD_NAME",
                       help="take the shard from a StatefulSet pod's name, <set>-<ordinal> (e.g. $(POD_NAME) from the "
                            "downward API)")
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {__version__} (Python {platform.python_version()})")
    args = parser.parse_args(argv)
    if isinstance(args.check_config, str):
        if args.config and args.config != args.check_config:
            parser.error("--check-config PATH and --config.file name different files")
        args.config = args.check_config
    if not args.telemetry_path.startswith("/") or args.telemetry_path in ("/", "/healthz"):
        parser.error("--web.telemetry-path must start with / and not be / or /healthz")
    if not args.config and not args.demo and not args.config_schema and not args.spec_schema and not args.healthcheck:
        parser.error("--config.file is required (or --demo)")
    args.shard = _shard(parser, args)
    return args


def _shard(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Shard:
    """The shard the flags name; without them, the one shard that holds every source."""
    index = args.shard
    if args.shard_pod_name is not None:
        try:
            index = pod_ordinal(args.shard_pod_name)
        except ValueError as exc:
            parser.error(f"--shard-from-pod-name: {exc}")
    if index is None and args.total_shards != 1:
        parser.error("--total-shards needs --shard or --shard-from-pod-name")
    try:
        return Shard(index or 0, args.total_shards)
    except ValueError as exc:
        parser.error(str(exc))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.config_schema:
        sys.stdout.write(config_schema_text())
        return 0
    if args.spec_schema:
        sys.stdout.write(spec_schema_text())
        return 0
    if args.healthcheck:
        return healthcheck()
    configure_logging("warning" if args.log_level == "warn" else args.log_level,
                      None if args.log_format is None else args.log_format == "json")
    try:
        config = load_config(args.config) if args.config else None
        if config is None and args.check_config:
            from agent_session_exporter.demo.runner import demo_config
            config = demo_config("http://127.0.0.1:1")
        for flag, address in (("--web.listen-address", args.listen), ("--web.webhook-address", args.webhook_address)):
            if address:
                parse_listen(address, flag)
        web_config = load_web_config(args.web_config_file) if args.web_config_file else WebConfig()
        if config is not None and (problems := check_machine(config)):
            raise ConfigError("\n".join(problems))
    except ConfigError as exc:
        for line in str(exc).splitlines():
            print(f"config error: {line}", file=sys.stderr)
        return 2
    if args.check_config:
        assert config is not None
        print(f"config OK: {len(config.sources)} sources ({', '.join(s.name for s in config.sources)})")
        return 0
    try:
        return asyncio.run(_run(args, config, web_config))
    except KeyboardInterrupt:
        return 0


@contextlib.asynccontextmanager
async def _config_for(args: argparse.Namespace, config: Config | None) -> AsyncIterator[tuple[Config, OnListening | None]]:
    if config is not None:
        yield _select(args.shard, config), None
        return
    from agent_session_exporter.demo.runner import running_demo  # the simulators load only for --demo
    async with running_demo(args.listen or "0.0.0.0:9817", args.once) as (demo, pusher):
        yield _select(args.shard, demo), pusher.push_to


def _select(shard: Shard, config: Config) -> Config:
    """The sources this process polls: its shard's (every source, unsharded)."""
    selected = shard.select(config)
    if shard.total > 1:
        log.info("polling one shard", shard=shard.index, total_shards=shard.total,
                 sources=len(selected.sources), configured=len(config.sources))
        if not selected.sources:
            log.warning("this shard holds none of the configured sources", shard=shard.index, total_shards=shard.total)
    return selected


async def _run(args: argparse.Namespace, config: Config | None, web_config: WebConfig) -> int:
    async with _config_for(args, config) as (cfg, push_to):
        if args.test_read:  # one read printed; no state file, no server
            return await testread.run(cfg, args)
        try:
            store = open_store(cfg, reset=args.reset_state)
        except StateError as exc:
            return _state_error(exc)
        exporter = Exporter(cfg, store)
        try:
            await exporter.open()
        except StateError as exc:
            await exporter.close()
            return _state_error(exc)
        try:
            if args.once:
                results = await exporter.run_once()
                sys.stdout.buffer.write(exporter.render_metrics())
                sys.stdout.flush()
                return 0 if all(results.values()) else 1
            return await _serve(exporter, args, args.listen or cfg.listen, web_config, push_to)
        finally:
            await exporter.close()


def _openable(host: str) -> str:
    """A host one can open in a browser: a wildcard address becomes localhost; IPv6 gets brackets."""
    if host in ("0.0.0.0", "::", ""):
        return "localhost"
    return f"[{host}]" if ":" in host else host


def _state_error(exc: StateError) -> int:
    log.error("state store unusable", error=str(exc))
    print(f"state error: {exc}", file=sys.stderr)
    return 3


def open_store(config: Config, reset: bool = False) -> Store:
    if not config.state_path:
        return MemoryStore()
    return SqliteStore(config.state_path, {s.name: s.provider for s in config.sources}, reset=reset)


async def _serve(exporter: Exporter, args: argparse.Namespace, listen: str, web_config: WebConfig,
                 push_to: OnListening | None = None) -> int:
    config_path: str | None = args.config
    host, port = parse_listen(listen, "listen")
    guard = ConnectionGuard(args.max_connections, on_refused=exporter.connection_refused)
    app = make_app(exporter, web_config.users, guard, telemetry_path=args.telemetry_path)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, keepalive_timeout=KEEPALIVE_TIMEOUT)
    await runner.setup()
    try:
        server, bound = await listen_on(runner, guard, host, port, web_config.ssl_context)
    except OSError as exc:
        log.error("cannot listen", listen=listen, error=exc.strerror)
        await runner.cleanup()
        return 1
    address = args.webhook_address or ("127.0.0.1:0" if push_to else None)  # the demo pushes to loopback
    webhooks = await open_webhook_listener(exporter.pushes, address, args.max_connections, exporter.connection_refused,
                                           web_config.ssl_context, push_to) if address else None
    if address and webhooks is None:
        server.close()
        await runner.cleanup()
        return 1
    scheme = "https" if web_config.ssl_context else "http"
    base = f"{scheme}://{_openable(bound[0])}:{bound[1]}"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task[None]] = set()

    def on_sighup() -> None:
        task = asyncio.create_task(_reload(exporter, config_path, args.shard))
        reloads.add(task)
        task.add_done_callback(reloads.discard)
    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    # Said once the signals are handled: what waits for this line may send SIGHUP or SIGTERM at once.
    log.info("listening", url=base + args.telemetry_path, pid=os.getpid(),
             sources=list(exporter.pollers), basic_auth=bool(web_config.users))
    note_health_url(base + "/healthz")
    exporter.start()
    await stop.wait()
    log.info("shutting down: stopping polls and committing state")
    await asyncio.gather(*reloads, return_exceptions=True)
    if webhooks is not None:
        await webhooks.close()
    server.close()
    await runner.cleanup()
    return 0


async def _reload(exporter: Exporter, config_path: str | None, shard: Shard) -> None:
    if config_path is None:
        log.info("SIGHUP: no config file to reload (demo mode)")
        return
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        exporter.note_reload(False)  # before the log line: what reads the log then sees the metric too
        log.error("config reload refused; the running config stays", error=str(exc))
        return
    await exporter.reload(_select(shard, config))
