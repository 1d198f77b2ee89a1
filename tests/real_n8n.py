"""A real n8n for the tests: started on loopback with a fresh data folder, an owner and an API key
made through its REST API, workflows whose runs succeed, fail, run, wait and time out, fired by
their webhooks; restarted by PID; its own executions read back as the ground truth.

n8n is installed by ``tests/real_servers/install_n8n.sh`` (``.ci/run`` runs it) into
``$AGENT_SESSION_EXPORTER_N8N``, by default ``~/.cache/agent-session-exporter/n8n-1.123.81``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any, Callable

N8N_VERSION = "1.123.81"
INSTALL_SCRIPT = Path(__file__).parent / "real_servers" / "install_n8n.sh"
#: What a fresh API key may do: exactly what the exporter needs.
SCOPES = ("execution:list", "execution:read", "workflow:list")
OWNER = {"email": "owner@example.com", "firstName": "Exporter", "lastName": "Test", "password": "Passw0rd-Exporter-1"}
ERROR_MESSAGE = "boom - deliberate failure for exporter test"  # no ':' (the Code node splits there)
#: Waits of 65 s and more are persisted ('waiting'); shorter ones sleep in the process ('running').
PERSISTED_WAIT = 65


def install_dir() -> Path:
    if os.environ.get("AGENT_SESSION_EXPORTER_N8N"):
        return Path(os.environ["AGENT_SESSION_EXPORTER_N8N"])
    cache = os.environ.get("AGENT_SESSION_EXPORTER_CACHE") or str(Path.home() / ".cache" / "agent-session-exporter")
    return Path(cache) / f"n8n-{N8N_VERSION}"


def not_installed(install: Path) -> str | None:
    """Why n8n cannot be started from ``install``, or None."""
    for needed in ("bin/node", "node_modules/n8n/bin/n8n", "node_modules/sqlite3/build/Release/node_sqlite3.node"):
        if not (install / needed).exists():
            return (
                f"n8n {N8N_VERSION} is not installed in {install} ({needed} missing): run "
                f"{INSTALL_SCRIPT.relative_to(INSTALL_SCRIPT.parents[2])} as .ci/run does, or point "
                "AGENT_SESSION_EXPORTER_N8N at its folder"
            )
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Answer:
    status: int
    body: Any


@dataclass
class Workflow:
    kind: str
    id: str
    name: str
    path: str


def _workflow(kind: str, step: dict[str, Any], settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Webhook (answers at once, the run goes on) -> Step."""
    path = f"exp-{kind}"
    return {
        "name": f"exporter-{kind}",
        "settings": {
            "executionOrder": "v1",
            "saveManualExecutions": True,
            "saveDataSuccessExecution": "all",
            "saveDataErrorExecution": "all",
            **(settings or {}),
        },
        "nodes": [
            {
                "id": "a1",
                "name": "Webhook",
                "type": "n8n-nodes-base.webhook",
                "typeVersion": 2,
                "position": [0, 0],
                "webhookId": f"{path}-hook",
                "parameters": {"httpMethod": "GET", "path": path, "responseMode": "onReceived", "options": {}},
            },
            {"id": "a2", "name": "Step", "position": [200, 0], **step},
        ],
        "connections": {"Webhook": {"main": [[{"node": "Step", "type": "main", "index": 0}]]}},
    }


def _code(js: str) -> dict[str, Any]:
    return {"type": "n8n-nodes-base.code", "typeVersion": 2, "parameters": {"jsCode": js}}


def _wait(seconds: int, kind: str) -> dict[str, Any]:
    return {
        "type": "n8n-nodes-base.wait",
        "typeVersion": 1.1,
        "webhookId": f"exp-{kind}-wait",
        "parameters": {"resume": "timeInterval", "amount": seconds, "unit": "seconds"},
    }


@dataclass
class RealN8n:
    """One n8n server on 127.0.0.1 with its data in ``folder``; ``start`` / ``stop`` / ``restart``."""

    install: Path
    folder: Path
    port: int = field(default_factory=free_port)
    broker_port: int = field(default_factory=free_port)
    api_key: str = ""
    workflows: dict[str, Workflow] = field(default_factory=dict)
    #: (execution id, workflow kind) of every run fired, in order.
    fired: list[tuple[str, str]] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """The public API's root (a source's ``base_url``)."""
        return f"{self.url}/api/v1"

    @property
    def log_path(self) -> Path:
        return self.folder / "n8n.log"

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def environment(self) -> dict[str, str]:
        return {
            "PATH": f"{self.install / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(self.folder),
            "N8N_USER_FOLDER": str(self.folder),
            "N8N_PORT": str(self.port),
            "N8N_LISTEN_ADDRESS": "127.0.0.1",
            "N8N_HOST": "127.0.0.1",
            "N8N_PROTOCOL": "http",
            "WEBHOOK_URL": f"{self.url}/",
            "N8N_EDITOR_BASE_URL": f"{self.url}/",
            "DB_TYPE": "sqlite",
            "N8N_SECURE_COOKIE": "false",
            "N8N_DIAGNOSTICS_ENABLED": "false",
            "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
            "N8N_PERSONALIZATION_ENABLED": "false",
            "N8N_TEMPLATES_ENABLED": "false",
            "N8N_HIRING_BANNER_ENABLED": "false",
            "N8N_DIAGNOSTICS_CONFIG_FRONTEND": "",
            "N8N_DIAGNOSTICS_CONFIG_BACKEND": "",
            "N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS": "true",
            "N8N_PUBLIC_API_DISABLED": "false",
            "N8N_PUBLIC_API_SWAGGERUI_DISABLED": "true",
            "N8N_RUNNERS_ENABLED": "true",
            "N8N_RUNNERS_MODE": "internal",
            "N8N_RUNNERS_BROKER_PORT": str(self.broker_port),
            # isolated-vm is not built (it does not build on Node 20): the expression engine n8n ships too.
            "N8N_EXPRESSION_ENGINE": "legacy",
            "EXECUTIONS_MODE": "regular",
            "EXECUTIONS_DATA_PRUNE": "false",
            "N8N_LOG_LEVEL": "info",
            "N8N_LOG_OUTPUT": "console",
            "GENERIC_TIMEZONE": "UTC",
            "TZ": "UTC",
            "NODE_ENV": "production",
        }

    # --- the process -------------------------------------------------------------------------------
    def start(self, timeout: float = 180) -> float:
        """Start n8n and wait until it is ready, its crash recovery done; the seconds it took.

        Ready is later than it looks: while n8n boots every path answers 200 "n8n is starting up";
        the public API answers before the REST controllers are there; and /rest/settings answers
        before the recovery of a crashed session, during which the runs interrupted by the crash
        are listed 'running' and every persisted waiting run reads 'crashed' for a moment (then
        'waiting' again). So: /rest/settings answers JSON, and the log says the editor is there."""
        assert self.process is None, "already started"
        self.folder.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        log_from = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            # Its own session: the process group (n8n and its task runner) is stopped by n8n's PID.
            self.process = subprocess.Popen(
                [str(self.install / "bin" / "node"), str(self.install / "node_modules" / "n8n" / "bin" / "n8n"), "start"],
                cwd=self.folder,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self.wait_for(lambda: self._ready(log_from), timeout, "n8n to be ready")
        return time.monotonic() - began

    def _ready(self, log_from: int) -> bool:
        with open(self.log_path, "rb") as log:
            log.seek(log_from)
            if b"Editor is now accessible via" not in log.read():
                return False
        try:
            answer = self._request("GET", "/rest/settings", timeout=3)
        except OSError:
            return False
        return answer.status == 200 and isinstance(answer.body, dict) and "data" in answer.body

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 60) -> None:
        """Stop n8n's process group by its PID: ``sig``, then SIGKILL after ``timeout`` seconds."""
        process, self.process = self.process, None
        if process is None:
            return
        for current, wait in ((sig, timeout), (signal.SIGKILL, 30)):
            try:
                os.killpg(process.pid, current)
            except ProcessLookupError:
                pass
            try:
                process.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # the task runner, if it outlived n8n
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def restart(self, sig: signal.Signals = signal.SIGTERM) -> float:
        """Stop (SIGKILL: a crash) and start again on the same data folder and port."""
        self.stop(sig)
        return self.start()

    # --- HTTP --------------------------------------------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        opener: urllib.request.OpenerDirector | None = None,
        timeout: float = 30,
    ) -> Answer:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
        )
        try:
            with (opener or urllib.request.build_opener()).open(request, timeout=timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            return Answer(status, json.loads(raw) if raw else None)
        except ValueError:
            return Answer(status, raw.decode(errors="replace"))

    def get(self, path: str, key: str | None = None, **params: Any) -> Answer:
        """A public-API GET (``path`` under /api/v1) with the API key (``key=""``: no header)."""
        key = self.api_key if key is None else key
        query = urllib.parse.urlencode(params)
        return self._request(
            "GET", f"/api/v1{path}" + (f"?{query}" if query else ""), headers={"X-N8N-API-KEY": key} if key else {}
        )

    def _api(self, method: str, path: str, body: Any = None) -> Any:
        answer = self._request(method, f"/api/v1{path}", body, headers={"X-N8N-API-KEY": self.api_key})
        assert answer.status == 200, (method, path, answer)
        return answer.body

    # --- set-up ------------------------------------------------------------------------------------
    def create_owner_and_key(self) -> str:
        """The owner (``/rest/owner/setup``), a login, and an API key with ``SCOPES``."""
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        answer = self._request("POST", "/rest/owner/setup", OWNER, opener=opener)
        assert answer.status == 200, answer
        login = {"emailOrLdapLoginId": OWNER["email"], "password": OWNER["password"]}
        answer = self._request("POST", "/rest/login", login, opener=opener)
        assert answer.status == 200, answer
        answer = self._request(
            "POST", "/rest/api-keys", {"label": "exporter-test", "scopes": list(SCOPES), "expiresAt": None}, opener=opener
        )
        assert answer.status == 200, answer
        self.api_key = answer.body["data"]["rawApiKey"]
        return self.api_key

    def create_workflows(self, running_seconds: int = 20, timeout_seconds: int = 3) -> dict[str, Workflow]:
        """One active workflow per kind: success, error, running (an in-process Wait), waiting (a
        persisted Wait of ``PERSISTED_WAIT`` s), timeout (a Wait cut by ``executionTimeout``)."""
        definitions = {
            "success": _workflow("success", _code("return [{json: {ok: true}}];")),
            "error": _workflow("error", _code(f"throw new Error({json.dumps(ERROR_MESSAGE)});")),
            "running": _workflow("running", _wait(running_seconds, "running")),
            "waiting": _workflow("waiting", _wait(PERSISTED_WAIT, "waiting")),
            "timeout": _workflow("timeout", _wait(60, "timeout"), {"executionTimeout": timeout_seconds}),
        }
        for kind, definition in definitions.items():
            created = self._api("POST", "/workflows", definition)
            self._api("POST", f"/workflows/{created['id']}/activate")
            self.workflows[kind] = Workflow(kind, created["id"], definition["name"], f"exp-{kind}")
        return self.workflows

    # --- runs --------------------------------------------------------------------------------------
    def fire(self, kind: str) -> str:
        """Call the workflow's webhook and wait for its execution; its id (ids are sequential)."""
        expected = str(int(self.fired[-1][0]) + 1 if self.fired else self._newest_id() + 1)
        answer = self._request("GET", f"/webhook/{self.workflows[kind].path}")
        assert answer.status == 200, answer
        answers: list[Answer] = []

        def created() -> bool:
            answers.append(self.get(f"/executions/{expected}"))
            return answers[-1].status == 200

        self.wait_for(created, 20, f"execution {expected} of {kind}")
        assert answers[-1].body["workflowId"] == self.workflows[kind].id, (kind, answers[-1].body)
        self.fired.append((expected, kind))
        return expected

    def _newest_id(self) -> int:
        ids = [int(e["id"]) for status in (None, "running", "waiting") for e in self.list_executions(status=status)]
        return max(ids, default=0)

    def execution(self, execution_id: str, include_data: bool = False) -> dict[str, Any]:
        answer = self.get(f"/executions/{execution_id}", **({"includeData": "true"} if include_data else {}))
        assert answer.status == 200, (execution_id, answer)
        return answer.body

    def list_pages(self, limit: int = 250, max_pages: int = 100, **params: Any) -> list[dict[str, Any]]:
        """Every page of ``GET /executions`` (cursor after cursor) as answered."""
        pages: list[dict[str, Any]] = []
        query = {k: v for k, v in params.items() if v is not None} | {"limit": limit}
        for _ in range(max_pages):
            answer = self.get("/executions", **query)
            assert answer.status == 200, (query, answer)
            pages.append(answer.body)
            if not answer.body["nextCursor"]:
                return pages
            query["cursor"] = answer.body["nextCursor"]
        raise AssertionError(f"more than {max_pages} pages")

    def list_executions(self, **params: Any) -> list[dict[str, Any]]:
        return [item for page in self.list_pages(**params) for item in page["data"]]

    def ground_truth(self) -> dict[str, str]:
        """Execution id -> status, by n8n itself: every fired execution looked up by id."""
        return {execution_id: self.execution(execution_id)["status"] for execution_id, _ in self.fired}

    def wait_for(self, check: Callable[[], bool], timeout: float, what: str, alive: bool = True) -> None:
        """Poll ``check`` (bounded) until true; fail with n8n's log if it does not come, or n8n died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            if alive and (self.process is None or self.process.poll() is not None):
                raise AssertionError(f"n8n is not running while waiting for {what}; its log:\n{self.log_tail()}")
            time.sleep(0.25)
        raise AssertionError(f"no {what} within {timeout:.0f} s; n8n's log:\n{self.log_tail()}")
