# dynoxide's server for the scripts under tests/ (sourced by tests/run.sh): a second DynamoDB
# emulator (on SQLite, crates.io `dynoxide-rs`), on which the store contract suite
# (shared/tests/it/store_contract.rs) runs too.
#
#   dynoxide_install  installs dynoxide-rs $DYNOXIDE_VERSION into the project-local, ignored
#                     folder $DYNOXIDE_ROOT (default .tools), only when it is missing or another
#                     version (a cold build: a few minutes)
#   dynoxide_start    starts it in memory on a free loopback port, waits until it answers,
#                     exports MFA_TEST_DYNOXIDE_URL, and stops it when the script exits
#   dynoxide_stop     stops it
#
# All expect the repository root as the working directory. dynoxide_start chains the EXIT trap
# that moto_start sets (tests/lib/moto.sh), so that both servers stop.

DYNOXIDE_VERSION=3.2.0
DYNOXIDE_ROOT=${DYNOXIDE_ROOT:-.tools}
DYNOXIDE_BIN="$DYNOXIDE_ROOT/bin/dynoxide"

dynoxide_install() {
  if [ -x "$DYNOXIDE_BIN" ] &&
    cargo install --list --root "$DYNOXIDE_ROOT" 2>/dev/null | grep -qx "dynoxide-rs v$DYNOXIDE_VERSION:"; then
    return 0
  fi
  cargo install "dynoxide-rs@$DYNOXIDE_VERSION" --locked --no-default-features \
    --features native-sqlite,http-server,cli --root "$DYNOXIDE_ROOT"
}

dynoxide_start() {
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  DYNOXIDE_LOG=$(mktemp)
  # In memory (no --db-path), on loopback only.
  "$DYNOXIDE_BIN" serve --host 127.0.0.1 --port "$port" >"$DYNOXIDE_LOG" 2>&1 &
  DYNOXIDE_PID=$!
  local previous
  previous=$(trap -p EXIT | sed -e "s/^trap -- '//" -e "s/' EXIT\$//")
  # shellcheck disable=SC2064
  trap "dynoxide_stop; ${previous:-:}" EXIT
  local ok=
  for _ in $(seq 1 100); do
    if "$DYNOXIDE_BIN" healthcheck --host 127.0.0.1 --port "$port" --timeout 1 >/dev/null 2>&1; then
      ok=1
      break
    fi
    if ! kill -0 "$DYNOXIDE_PID" 2>/dev/null; then
      break
    fi
    sleep 0.2
  done
  if [ -z "$ok" ]; then
    cat "$DYNOXIDE_LOG"
    echo "dynoxide did not start" >&2
    exit 1
  fi
  export MFA_TEST_DYNOXIDE_URL="http://127.0.0.1:$port"
  echo "dynoxide on $MFA_TEST_DYNOXIDE_URL"
}

# Stops the server dynoxide_start started.
dynoxide_stop() {
  if [ -n "${DYNOXIDE_PID:-}" ]; then
    kill "$DYNOXIDE_PID" 2>/dev/null || true
    wait "$DYNOXIDE_PID" 2>/dev/null || true
    DYNOXIDE_PID=
  fi
  rm -f "${DYNOXIDE_LOG:-}"
}
