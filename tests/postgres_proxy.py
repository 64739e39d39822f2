"""A TCP proxy in front of the real PostgreSQL that can be told to stall or to drop a connection.

Threads only: an accept loop and two pumps per connection. It forwards bytes unchanged and
watches what the client sends for a pattern (e.g. the simple-query message of ``COMMIT``):

- ``stall_new_connections()``: connections are accepted and never forwarded (a server that
  accepts TCP and never answers the login);
- ``stall_after(pattern)``: the client's chunk holding ``pattern`` is forwarded, then nothing
  more in either direction (a server or network that stops answering mid-transaction);
- ``drop_after(pattern)``: the chunk holding ``pattern`` is forwarded, the client's side is
  closed at once, and the server's answer is read and thrown away (an answer lost on the way
  back); ``server_finished`` is set once the server has answered and closed its side.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from types import TracebackType

import sqlalchemy as sa


def simple_query(sql: str) -> bytes:
    """The bytes of PostgreSQL's simple-query message for ``sql`` (how psycopg2 sends COMMIT)."""
    body = sql.encode() + b"\0"
    return b"Q" + struct.pack("!i", 4 + len(body)) + body


class PostgresProxy:
    def __init__(self, upstream: tuple[str, int] = ("127.0.0.1", 5432)) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stall_new = False
        self._pattern: bytes | None = None
        self._action: str | None = None
        self.triggered = threading.Event()  # the pattern went by and the stall or drop began
        self.triggered_at: float | None = None  # time.monotonic() when it did
        self.server_finished = threading.Event()  # drop_after: the server answered and closed
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    # -- what to do -----------------------------------------------------------------------
    def stall_new_connections(self) -> None:
        self._stall_new = True

    def stall_after(self, pattern: bytes) -> None:
        self._pattern, self._action = pattern, "stall"

    def drop_after(self, pattern: bytes) -> None:
        self._pattern, self._action = pattern, "drop"

    def url(self, database_url: str) -> str:
        """``database_url`` pointed at the proxy (password kept, for tests that check it never shows)."""
        return sa.make_url(database_url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    # -- running ----------------------------------------------------------------------------
    def __enter__(self) -> PostgresProxy:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone does not
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()
        self._thread.join(timeout=5)

    def _track(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.append(sock)
        return sock

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._track(client)
            if self._stall_new:
                continue  # accepted, never forwarded: the login gets no answer
            server = self._track(socket.create_connection(self.upstream))
            threading.Thread(target=self._client_to_server, args=(client, server), daemon=True).start()
            threading.Thread(target=self._server_to_client, args=(server, client), daemon=True).start()

    def _client_to_server(self, client: socket.socket, server: socket.socket) -> None:
        tail = b""
        while True:
            try:
                chunk = client.recv(65536)
            except OSError:
                return
            if not chunk:
                with contextlib.suppress(OSError):
                    server.shutdown(socket.SHUT_WR)
                return
            seen, tail = tail + chunk, (tail + chunk)[-64:]
            hit = self._pattern is not None and not self.triggered.is_set() and self._pattern in seen
            if hit:  # before forwarding: the server's answer to this chunk must not slip through
                self.triggered_at = time.monotonic()
                self.triggered.set()
            try:
                server.sendall(chunk)
            except OSError:
                return
            if hit:
                if self._action == "drop":
                    with contextlib.suppress(OSError):
                        client.shutdown(socket.SHUT_RDWR)
                    client.close()
                    with contextlib.suppress(OSError):
                        server.shutdown(socket.SHUT_WR)  # after the pattern: the server reads it, then EOF
                return  # stall or drop: nothing more is forwarded from this client

    def _server_to_client(self, server: socket.socket, client: socket.socket) -> None:
        while True:
            try:
                chunk = server.recv(65536)
            except OSError:
                chunk = b""
            if self.triggered.is_set() and self._action == "drop":
                if not chunk:  # the server answered (thrown away) and closed its side
                    self.server_finished.set()
                    return
                continue
            if not chunk:
                with contextlib.suppress(OSError):
                    client.shutdown(socket.SHUT_WR)
                return
            if self.triggered.is_set() and self._action == "stall":
                self._closed.wait()  # hold the answer until the proxy closes
                return
            try:
                client.sendall(chunk)
            except OSError:
                return
