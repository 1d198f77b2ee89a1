"""The command's flags, in the Prometheus style (``--web.listen-address``), the earlier spellings kept as
aliases; the shard a process polls, from its flags."""

from __future__ import annotations

import argparse
import platform
from typing import Sequence

from agent_session_exporter import __version__, testread
from agent_session_exporter.config import DEFAULT_LISTEN
from agent_session_exporter.serve.listener import DEFAULT_MAX_CONNECTIONS, RESERVED_CONNECTIONS
from agent_session_exporter.shards import Shard, pod_ordinal


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Flags in the Prometheus style; the earlier spellings stay as aliases."""
    parser = argparse.ArgumentParser(
        prog="agent-session-exporter", description="Prometheus exporter for AI-agent and LLM-workflow session metrics."
    )
    parser.add_argument("--config.file", "--config", dest="config", metavar="PATH", help="the YAML config file")
    parser.add_argument(
        "--web.listen-address",
        "--listen",
        dest="listen",
        metavar="HOST:PORT",
        help=f"where to serve (default: the config's listen, else {DEFAULT_LISTEN})",
    )
    parser.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        default="/metrics",
        metavar="PATH",
        help="the path of the metrics (default /metrics)",
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="PATH",
        help="exporter-toolkit web config: TLS (tls_server_config) and basic auth (basic_auth_users)",
    )
    parser.add_argument(
        "--web.max-connections",
        dest="max_connections",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        help=f"connections served at once, TLS handshakes included (default {DEFAULT_MAX_CONNECTIONS}); "
        f"{RESERVED_CONNECTIONS} more may ask for /healthz (anything else gets 503), the rest are "
        "closed at once",
    )
    parser.add_argument("--web.webhook-address", dest="webhook_address", metavar="HOST:PORT", help="serve webhooks here (off)")
    parser.add_argument(
        "--log.level",
        "--log-level",
        dest="log_level",
        default="info",
        choices=["debug", "info", "warn", "warning", "error"],
        help="debug, info, warn (Prometheus's spelling; warning too) or error",
    )
    parser.add_argument(
        "--log.format", "--log-format", dest="log_format", choices=["logfmt", "json"], help="default: json, logfmt on a terminal"
    )
    parser.add_argument(
        "--check-config",
        nargs="?",
        const=True,
        default=False,
        metavar="PATH",
        help="validate the config (--config.file, this PATH, or with --demo the demo's) and exit",
    )
    parser.add_argument(
        "--config.schema",
        dest="config_schema",
        action="store_true",
        help="print the config file's JSON Schema (for editors) and exit",
    )
    parser.add_argument(
        "--spec.schema",
        dest="spec_schema",
        action="store_true",
        help="print the provider spec language's JSON Schema (for editors writing a spec) and exit",
    )
    parser.add_argument(
        "--healthcheck",
        action="store_true",
        help="ask the running exporter's /healthz (at the address it started on) and exit 0 if it "
        "answers 200: a container HEALTHCHECK that follows the configured address",
    )
    testread.add_arguments(parser)
    parser.add_argument("--once", action="store_true", help="run one cycle over every source, print the exposition")
    parser.add_argument("--demo", action="store_true", help="poll built-in simulators of all six providers")
    parser.add_argument("--reset-state", action="store_true", help="delete the state file (state_path) and start counting anew")
    parser.add_argument(
        "--total-shards",
        dest="total_shards",
        type=int,
        default=1,
        metavar="M",
        help="run as one of M replicas, each polling the sources whose name hashes to its shard (default 1)",
    )
    shard = parser.add_mutually_exclusive_group()
    shard.add_argument("--shard", type=int, metavar="N", help="this replica's shard, from 0 to M-1 (with --total-shards M)")
    shard.add_argument(
        "--shard-from-pod-name",
        dest="shard_pod_name",
        metavar="POD_NAME",
        help="take the shard from a StatefulSet pod's name, <set>-<ordinal> (e.g. $(POD_NAME) from the downward API)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__} (Python {platform.python_version()})")
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
