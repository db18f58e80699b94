#!/usr/bin/env bash
# Runs every test of the project, from a fresh clone with only Rust and Python 3 installed:
#   1. formatting and clippy (warnings are errors),
#   2. unit, flow and handler tests (`cargo test`, no network),
#   3. end-to-end tests over HTTP against mfa-local on the memory backend and, with
#      `--backend aws`, against moto's server, which this script installs into ./.venv,
#      starts on a free loopback port and stops again.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
log() { printf '\n== %s\n' "$*"; }

log "tools: moto (project-local virtualenv $VENV)"
# Reinstall whenever tests/requirements.txt changes (its hash is kept in the venv).
WANT=$(sha256sum tests/requirements.txt | cut -d' ' -f1)
if [ "$(cat "$VENV/.requirements" 2>/dev/null)" != "$WANT" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt
  echo "$WANT" >"$VENV/.requirements"
fi

log "template and OpenAPI checks"
# Offline: no AWS credentials and no network. cfn-lint exits non-zero on errors (2) and on
# warnings (4); `sam validate --lint` runs cfn-lint through SAM and fails on any match.
export SAM_CLI_TELEMETRY=0
"$VENV/bin/cfn-lint" template.yaml
AWS_REGION=us-east-1 "$VENV/bin/sam" validate --lint --template-file template.yaml
"$VENV/bin/openapi-spec-validator" openapi.yaml

PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
MOTO_LOG=$(mktemp)
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$MOTO_LOG" 2>&1 &
MOTO_PID=$!
trap 'kill $MOTO_PID 2>/dev/null || true; wait $MOTO_PID 2>/dev/null || true; rm -f "$MOTO_LOG"' EXIT
for _ in $(seq 1 100); do
  if "$VENV/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/moto-api/data.json', timeout=1)" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$MOTO_PID" 2>/dev/null; then
    cat "$MOTO_LOG"; echo "moto_server did not start" >&2; exit 1
  fi
  sleep 0.2
done
export MFA_TEST_MOTO_URL="http://127.0.0.1:$PORT"
echo "moto_server on $MFA_TEST_MOTO_URL"

log "cargo fmt --check"
cargo fmt --all --check

log "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

log "cargo test (unit, flows, handlers, end-to-end on memory and on moto)"
# --include-ignored runs the moto tests, which plain `cargo test` lists as ignored.
cargo test --workspace -- --include-ignored

log "OpenAPI fuzzing (schemathesis against openapi.yaml on mfa-local, bounded, fixed seed)"
# Uses target/debug/mfa-local, which the cargo test step above has just built.
tests/api-fuzz.sh
