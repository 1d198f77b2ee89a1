"""``--web.config.file``: TLS and basic auth for /metrics, in the Prometheus exporter-toolkit format.

```yaml
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_ca_file: ca.crt          # optional: require client certificates signed by this CA
basic_auth_users:
  prometheus: $2y$10$...          # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\\n')
```
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import hashlib
import hmac
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

import bcrypt
from aiohttp import web

from agent_session_exporter.config import ConfigError
from agent_session_exporter.yamlfile import YamlError, load_yaml

#: Paths answered without credentials, so liveness probes need no secret.
UNAUTHENTICATED_PATHS = frozenset({"/healthz"})


@dataclass(frozen=True)
class WebConfig:
    ssl_context: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict, repr=False)


def load_web_config(path: str) -> WebConfig:
    try:
        raw = load_yaml(Path(path).read_text(encoding="utf-8"), path).data or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read web config file: {exc.strerror}") from None
    except YamlError as exc:
        raise ConfigError(f"not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: (top level): must be a mapping")
    unknown = set(raw) - {"tls_server_config", "basic_auth_users", "http_server_config"}
    if unknown:
        raise ConfigError(f"{path}: {sorted(unknown)[0]}: unknown key")
    base = Path(path).resolve().parent
    return WebConfig(ssl_context=_tls(raw.get("tls_server_config"), base, path), users=_users(raw.get("basic_auth_users"), path))


def _tls(raw: Any, base: Path, path: str) -> ssl.SSLContext | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or not raw.get("cert_file") or not raw.get("key_file"):
        raise ConfigError(f"{path}: tls_server_config: needs cert_file and key_file")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(base / raw["cert_file"], base / raw["key_file"])
        if raw.get("client_ca_file"):
            context.load_verify_locations(base / raw["client_ca_file"])
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{path}: tls_server_config: cannot load certificate or key: {exc}") from None
    return context


def _users(raw: Any, path: str) -> dict[str, bytes]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: basic_auth_users: must map user names to bcrypt hashes")
    users = {}
    for user, hashed in raw.items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise ConfigError(f"{path}: basic_auth_users.{user}: must be a bcrypt hash")
        users[str(user)] = hashed.encode()
    return users


def basic_auth_middleware(users: dict[str, bytes]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Require one of ``users`` on every path but /healthz.

    bcrypt runs on a worker thread (never on the event loop, so wrong passwords cannot stall
    scrapes or collection), costs the same for an unknown user as for a known one, and verified
    credentials are remembered (as a keyed digest, never in clear) as exporter-toolkit does, so a
    scrape pays bcrypt's cost once.
    """
    verified: set[bytes] = set()
    cache_key = hashlib.sha256(b"".join(users.values())).digest()
    # A hash of the same cost as the configured ones, checked for unknown users.
    cost = next((h.split(b"$")[2] for h in users.values()), b"10")
    decoy = bcrypt.hashpw(b"decoy", b"$2b$" + cost + b"$" + b"." * 22)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="bcrypt")

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path in UNAUTHENTICATED_PATHS or await _authorized(request.headers.get("Authorization", "")):
            return await handler(request)
        raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Basic realm="agent-session-exporter"'})

    async def _authorized(header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or not encoded or len(encoded) > 4096:
            return False
        try:
            user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if not sep:
            return False
        digest = hmac.new(cache_key, f"{user}\0{password}".encode(), hashlib.sha256).digest()
        if digest in verified:
            return True
        hashed = users.get(user)
        loop = asyncio.get_running_loop()
        ok = await loop.run_in_executor(pool, _check, password.encode()[:72], hashed if hashed else decoy)
        if ok and hashed is not None:
            if len(verified) < 1000:
                verified.add(digest)
            return True
        return False

    return middleware


def _check(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:
        return False
