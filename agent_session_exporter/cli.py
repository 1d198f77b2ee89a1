"""Command line: ``agent-session-exporter --config.file PATH [--web.listen-address HOST:PORT] ...``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from typing import AsyncIterator, Sequence

import structlog
from aiohttp import web

from agent_session_exporter import testread
from agent_session_exporter.app import Exporter
from agent_session_exporter.config import (
    Config,
    ConfigError,
    check_machine,
    config_schema_text,
    load_config,
    parse_listen,
)
from agent_session_exporter.flags import parse_args
from agent_session_exporter.keep.sqlite import SqliteStore
from agent_session_exporter.keep.state_file import StateError
from agent_session_exporter.keep.store import MemoryStore, Store
from agent_session_exporter.logs import configure_logging
from agent_session_exporter.read.spec.load import spec_schema_text
from agent_session_exporter.serve.healthcheck import healthcheck, note_health_url
from agent_session_exporter.serve.listener import KEEPALIVE_TIMEOUT, ConnectionGuard
from agent_session_exporter.serve.listener import listen as listen_on
from agent_session_exporter.serve.server import make_app
from agent_session_exporter.serve.webconfig import WebConfig, load_web_config
from agent_session_exporter.serve.webhooks import OnListening, open_webhook_listener
from agent_session_exporter.shards import Shard

log = structlog.get_logger()


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
    configure_logging(
        "warning" if args.log_level == "warn" else args.log_level, None if args.log_format is None else args.log_format == "json"
    )
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
        log.info(
            "polling one shard",
            shard=shard.index,
            total_shards=shard.total,
            sources=len(selected.sources),
            configured=len(config.sources),
        )
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


async def _serve(
    exporter: Exporter, args: argparse.Namespace, listen: str, web_config: WebConfig, push_to: OnListening | None = None
) -> int:
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
    webhooks = (
        await open_webhook_listener(
            exporter.pushes, address, args.max_connections, exporter.connection_refused, web_config.ssl_context, push_to
        )
        if address
        else None
    )
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
    log.info(
        "listening",
        url=base + args.telemetry_path,
        pid=os.getpid(),
        sources=list(exporter.pollers),
        basic_auth=bool(web_config.users),
    )
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
