"""PostgreSQL connections of the store that cannot hang: every wait for the server has a deadline.

The server bounds what it controls: ``statement_timeout`` cancels a statement that runs too
long, ``idle_in_transaction_session_timeout`` ends a session whose client went quiet inside a
transaction (releasing its locks for the rerun), and TCP keepalives and ``tcp_user_timeout``
detect a peer that vanished from the network. None of them helps when the server, or something
between (a proxy, a load balancer, a NAT), keeps the connection open and stops answering: libpq
then waits forever. So each call that waits for the server (a statement, ``COPY``, ``COMMIT``,
``ROLLBACK``) arms an alarm on the process's one ``Watchdog`` thread; when no answer has come
``ANSWER_GRACE_S`` after the statement timeout (by when a healthy server has cancelled the
statement and said so), the alarm shuts the connection's socket down, libpq's wait ends, and the
call raises ``NoAnswer``: an ``OperationalError`` naming the server (host, port, database; never
the password) and the setting.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg2
import psycopg2.extensions

log = logging.getLogger(__name__)

ANSWER_GRACE_S = 1.0
STATEMENT_TIMEOUT_SETTING = "EOPT_DATABASE_STATEMENT_TIMEOUT_S"


class NoAnswer(psycopg2.OperationalError):
    """The server did not answer within the deadline; the connection was shut down."""


class _Alarm:
    __slots__ = ("action", "cancelled")

    def __init__(self, action: Callable[[], None]) -> None:
        self.action = action
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Watchdog:
    """One daemon thread for every deadline of the process: arming one is a heap push, not a thread
    start (a statement pays microseconds for its deadline). Cancelled alarms are dropped when due."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget every alarm and the thread (a forked child has neither, and maybe the lock held)."""
        self._condition = threading.Condition()
        self._alarms: list[tuple[float, int, _Alarm]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float, action: Callable[[], None]) -> _Alarm:
        """Run ``action`` (on the watchdog's thread) after ``seconds`` unless cancelled first."""
        alarm = _Alarm(action)
        with self._condition:
            heapq.heappush(self._alarms, (time.monotonic() + seconds, next(self._order), alarm))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="store-answer-deadlines", daemon=True)
                self._thread.start()
            if self._alarms[0][2] is alarm:  # due before the one the thread sleeps for: wake it
                self._condition.notify()
        return alarm

    def _next_due(self) -> _Alarm:
        with self._condition:
            while True:
                while self._alarms and self._alarms[0][2].cancelled:
                    heapq.heappop(self._alarms)
                if not self._alarms:
                    self._condition.wait()
                    continue
                wait = self._alarms[0][0] - time.monotonic()
                if wait <= 0:
                    return heapq.heappop(self._alarms)[2]
                self._condition.wait(wait)

    def _run(self) -> None:
        while True:
            alarm = self._next_due()
            try:
                alarm.action()
            except Exception:  # a failed cut must not stop the deadlines of other connections
                log.exception("a store answer deadline could not cut its connection")


WATCHDOG = Watchdog()
os.register_at_fork(after_in_child=WATCHDOG.reset)  # e.g. an Airflow task process forked from its supervisor


def _verb(statement: Any) -> str:
    text = statement.decode(errors="replace") if isinstance(statement, bytes) else statement
    words = text.split(None, 1) if isinstance(text, str) else []
    return words[0].upper() if words else "a statement"


class DeadlineConnection(psycopg2.extensions.connection):
    """A psycopg2 connection whose calls that wait for the server end after ``answer_deadline_s``."""

    answer_deadline_s: float = 0.0  # set per engine by ``deadline_connection_class``

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cursor_factory = DeadlineCursor
        self._cut_lock = threading.Lock()

    def where(self) -> str:
        """The server and database of this connection, for messages (no user, no password)."""
        return f"{self.info.host}:{self.info.port}/{self.info.dbname}"

    @contextlib.contextmanager
    def answer_within_deadline(self, what: str) -> Iterator[None]:
        if self.closed or self.answer_deadline_s <= 0:
            yield
            return
        descriptor = self.fileno()
        state = {"armed": True, "fired": False}

        def cut() -> None:
            # Under the lock, and only while the call is still waiting: after it returned the
            # descriptor may be closed and reused, and must not be touched.
            with self._cut_lock:
                if not state["armed"]:
                    return
                state["fired"] = True
                # shutdown() acts on the connection itself; the duplicate descriptor only names it
                with socket.socket(fileno=os.dup(descriptor)) as connection_socket, contextlib.suppress(OSError):
                    connection_socket.shutdown(socket.SHUT_RDWR)

        alarm = WATCHDOG.arm(self.answer_deadline_s, cut)
        try:
            yield
        except psycopg2.Error as exc:
            if state["fired"]:
                raise NoAnswer(
                    f"no answer from PostgreSQL at {self.where()} within {self.answer_deadline_s:g} s of sending "
                    f"{what}: the server or the network stalled, and the connection was dropped; check the database "
                    f"server and the network to it (or raise {STATEMENT_TIMEOUT_SETTING} if a statement legitimately "
                    "runs longer)"
                ) from exc
            raise
        finally:
            with self._cut_lock:
                state["armed"] = False
            alarm.cancel()

    def commit(self) -> None:
        with self.answer_within_deadline("COMMIT"):
            super().commit()

    def rollback(self) -> None:
        with self.answer_within_deadline("ROLLBACK"):
            super().rollback()


class DeadlineCursor(psycopg2.extensions.cursor):
    """A cursor of a ``DeadlineConnection``: each statement and COPY waits at most the deadline."""

    connection: DeadlineConnection

    def execute(self, query: Any, vars: Any = None) -> None:
        with self.connection.answer_within_deadline(_verb(query)):
            super().execute(query, vars)

    def executemany(self, query: Any, vars_list: Any) -> None:
        with self.connection.answer_within_deadline(_verb(query)):
            super().executemany(query, vars_list)

    def copy_expert(self, sql: Any, file: Any, size: int = 8192) -> None:
        with self.connection.answer_within_deadline("COPY"):
            super().copy_expert(sql, file, size)


def deadline_connection_class(answer_deadline_s: float) -> type[DeadlineConnection]:
    """A ``DeadlineConnection`` class whose connections wait at most ``answer_deadline_s`` for an answer."""
    return type("DeadlineConnection", (DeadlineConnection,), {"answer_deadline_s": answer_deadline_s})
