"""Local stand-ins for the alert channels' remote hosts: a Slack incoming webhook and an SMTP server.

Both are real servers on loopback ports: the product's Slack notifier POSTs to the stand-in over
HTTP exactly as it would to hooks.slack.com, and its SMTP notifier talks SMTP to ``aiosmtpd``.
"""

from __future__ import annotations

import json
import socket
import threading
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

WEBHOOK_TOKEN = "T0TEST/B0TEST/not-a-real-token-4f2a"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SlackStandIn:
    """Answers webhook POSTs like Slack (``200 ok``, or ``status`` when set) and records their text."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.messages: list[str] = []
        self.paths: list[str] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                payload = json.loads(body or b"{}")
                stand_in.paths.append(self.path)
                if stand_in.status == 200:
                    stand_in.messages.append(payload.get("text", "") + json.dumps(payload.get("blocks", [])))
                self.send_response(stand_in.status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if stand_in.status == 200 else b"internal_error")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def connection_env(self, conn_id: str) -> dict[str, str]:
        """``AIRFLOW_CONN_<ID>`` for a slackwebhook connection whose host is this server."""
        conn = {
            "conn_type": "slackwebhook",
            "host": f"http://127.0.0.1:{self.port}/services",
            "password": WEBHOOK_TOKEN,
        }
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)}

    def __enter__(self) -> SlackStandIn:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Recorder:
    def __init__(self, owner: SmtpStandIn) -> None:
        self.owner = owner

    async def handle_DATA(self, server, session, envelope) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        parts = [message["Subject"] or ""]
        for part in message.walk():
            if part.get_content_maintype() == "text":
                parts.append(part.get_content())
        self.owner.messages.append("\n".join(parts))
        self.owner.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted"


class SmtpStandIn:
    """A plain SMTP relay on loopback (no TLS; any login accepted) that records every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.recipients: list[list[str]] = []
        self.port = free_port()
        self.logins: list[str] = []
        self.controller = Controller(
            _Recorder(self),
            hostname="127.0.0.1",
            port=self.port,
            auth_require_tls=False,
            authenticator=self._authenticate,
        )

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        self.logins.append(getattr(auth_data, "login", b"").decode() if auth_data else "")
        return AuthResult(success=True)

    def connection_env(self, conn_id: str) -> dict[str, str]:
        conn = {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": self.port,
            "login": "alerts",
            "password": "smtp-secret-for-tests",
            "extra": {"disable_ssl": True, "disable_tls": True, "timeout": 10},
        }
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)}

    def __enter__(self) -> SmtpStandIn:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
