# moto's server for the scripts under tests/ (sourced by tests/run.sh and tests/load.sh).
#
#   moto_venv        creates or refreshes the project-local virtualenv $VENV (default .venv)
#                    from tests/requirements.txt; it reinstalls whenever that file changes (its
#                    hash is kept in the venv)
#   moto_stop        stops it
#   moto_start       starts moto's server (through tests/lib/moto_serial.py: one request at a
#                    time, as DynamoDB's transactions need) on a free loopback port, waits
#                    until it answers, exports MFA_TEST_MOTO_URL, and stops it when the script
#                    exits
#
# Both expect the repository root as the working directory.

VENV=${VENV:-.venv}

moto_venv() {
  local want
  want=$(sha256sum tests/requirements.txt | cut -d' ' -f1)
  if [ "$(cat "$VENV/.requirements" 2>/dev/null)" != "$want" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt
    echo "$want" >"$VENV/.requirements"
  fi
}

moto_start() {
  local port
  port=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  MOTO_LOG=$(mktemp)
  "$VENV/bin/python" tests/lib/moto_serial.py -H 127.0.0.1 -p "$port" >"$MOTO_LOG" 2>&1 &
  MOTO_PID=$!
  trap moto_stop EXIT
  for _ in $(seq 1 100); do
    if "$VENV/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/data.json', timeout=1)" 2>/dev/null; then
      break
    fi
    if ! kill -0 "$MOTO_PID" 2>/dev/null; then
      cat "$MOTO_LOG"; echo "moto_server did not start" >&2; exit 1
    fi
    sleep 0.2
  done
  export MFA_TEST_MOTO_URL="http://127.0.0.1:$port"
  echo "moto_server on $MFA_TEST_MOTO_URL"
}

# Stops the server moto_start started (moto_start may then start a fresh one).
moto_stop() {
  kill "$MOTO_PID" 2>/dev/null || true
  wait "$MOTO_PID" 2>/dev/null || true
  rm -f "$MOTO_LOG"
}
