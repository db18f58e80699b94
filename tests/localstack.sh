#!/usr/bin/env bash
# The end-to-end tests of the AWS backend on LocalStack, without Docker (issue 15), run by
# tests/run.sh after its moto and dynoxide parts, or on its own: `bash tests/localstack.sh`.
#
# The mix, one emulator per service through the per-service endpoint variables that the local
# server and the Lambdas read (AWS_ENDPOINT_URL_<SERVICE>; the harness, tests/src/lib.rs, sets
# them from the MFA_TEST_* addresses exported here):
#   SNS, Secrets Manager  LocalStack community in host mode (a plain Python process), installed
#                         into the ignored ./.venv-localstack from tests/requirements-localstack.txt,
#                         reinstalled whenever that file changes (its hash is kept in the venv);
#                         texts are read from its GET /_aws/sns/sms-messages
#   DynamoDB              dynoxide (tests/lib/dynoxide.sh): LocalStack's own DynamoDB downloads
#                         Amazon's Java DynamoDB Local at start, and answers InternalError offline
#   SES v2                moto (tests/lib/moto.sh): the community LocalStack has no SES v2 (501)
# It runs every e2e test named `*_on_localstack` and prints "localstack: N passed, N failed".
# Everything it starts is stopped when it exits.
#   LOCALSTACK_PYTHON  the Python (>= 3.12) for the venv; default: the first of python3.13,
#                      python3.12, pyenv's 3.13.x and 3.12.x, python3 that is recent enough
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
LS_VENV=.venv-localstack
# LocalStack's files (FILESYSTEM_ROOT): ignored, removed when the script exits.
LS_ROOT_BASE=.localstack
log() { printf '\n== %s\n' "$*"; }
source tests/lib/moto.sh
source tests/lib/dynoxide.sh

# The first interpreter that is Python >= 3.12 (localstack-core 2026.3.0 is a SyntaxError on
# 3.11). pyenv's own interpreters are tried by path: its shims refuse a version that is not active.
localstack_python() {
  local candidates=("${LOCALSTACK_PYTHON:-}" python3.13 python3.12)
  if command -v pyenv >/dev/null 2>&1; then
    local root
    root=$(pyenv root)
    candidates+=("$root"/versions/3.13*/bin/python3 "$root"/versions/3.12*/bin/python3)
  fi
  candidates+=(python3)
  local py
  for py in "${candidates[@]}"; do
    [ -n "$py" ] || continue
    if "$py" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; then
      "$py" -c 'import sys; print(sys.executable)'
      return 0
    fi
  done
  echo "LocalStack needs Python >= 3.12: none found (set LOCALSTACK_PYTHON)" >&2
  return 1
}

localstack_venv() {
  local want py
  want=$(sha256sum tests/requirements-localstack.txt | cut -d' ' -f1)
  if [ "$(cat "$LS_VENV/.requirements" 2>/dev/null)" != "$want" ]; then
    py=$(localstack_python)
    echo "installing LocalStack into $LS_VENV with $py"
    rm -rf "$LS_VENV"
    "$py" -m venv "$LS_VENV"
    "$LS_VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements-localstack.txt
    echo "$want" >"$LS_VENV/.requirements"
  fi
}

localstack_start() {
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$LS_ROOT_BASE"
  LS_ROOT=$(mktemp -d "$PWD/$LS_ROOT_BASE/run.XXXXXX")
  LS_LOG="$LS_ROOT.log"
  # Host mode: OVERRIDE_IN_DOCKER and FILESYSTEM_ROOT keep it out of /var/lib/localstack,
  # DNS_ADDRESS=0 off port 53. Its own process group (setsid), stopped as one.
  OVERRIDE_IN_DOCKER=0 FILESYSTEM_ROOT="$LS_ROOT" GATEWAY_LISTEN="127.0.0.1:$port" DNS_ADDRESS=0 \
    SERVICES=sns,secretsmanager,sts EAGER_SERVICE_LOADING=1 SKIP_SSL_CERT_DOWNLOAD=1 DISABLE_EVENTS=1 \
    setsid "$LS_VENV/bin/python" -m localstack.runtime.main >"$LS_LOG" 2>&1 &
  LS_PID=$!
  local previous
  previous=$(trap -p EXIT | sed -e "s/^trap -- '//" -e "s/' EXIT\$//")
  # shellcheck disable=SC2064
  trap "localstack_stop; ${previous:-:}" EXIT
  local ok=
  for _ in $(seq 1 300); do
    # Up when SNS and Secrets Manager both say "running" (EAGER_SERVICE_LOADING starts them).
    if "$LS_VENV/bin/python" - "$port" 2>/dev/null <<'EOF'; then
import json, sys, urllib.request
h = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/_localstack/health", timeout=1))
sys.exit(not all(h["services"].get(s) == "running" for s in ("sns", "secretsmanager")))
EOF
      ok=1
      break
    fi
    kill -0 "$LS_PID" 2>/dev/null || break
    sleep 0.2
  done
  if [ -z "$ok" ]; then
    cat "$LS_LOG"
    echo "LocalStack did not start" >&2
    exit 1
  fi
  export MFA_TEST_LOCALSTACK_URL="http://127.0.0.1:$port"
  echo "LocalStack on $MFA_TEST_LOCALSTACK_URL"
}

# Stops LocalStack (its process group; it takes a few seconds to shut down) and removes its files.
localstack_stop() {
  if [ -n "${LS_PID:-}" ]; then
    kill -TERM -- "-$LS_PID" 2>/dev/null || true
    for _ in $(seq 1 75); do
      kill -0 "$LS_PID" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL -- "-$LS_PID" 2>/dev/null || true
    wait "$LS_PID" 2>/dev/null || true
    LS_PID=
  fi
  rm -rf "${LS_ROOT:-}" "${LS_LOG:-}"
  rmdir "$LS_ROOT_BASE" 2>/dev/null || true
}

started=$(date +%s)
log "tools: LocalStack (project-local virtualenv $LS_VENV), moto ($VENV), dynoxide ($DYNOXIDE_ROOT)"
localstack_venv
moto_venv
dynoxide_install
echo "tools ready in $(($(date +%s) - started)) s"

log "emulators: LocalStack (SNS, Secrets Manager), dynoxide (DynamoDB), moto (SES v2)"
moto_start
dynoxide_start
localstack_start

log "cargo test: the *_on_localstack end-to-end tests"
LOG=$(mktemp)
status=0
cargo test -p mfa-tests --test e2e -- --ignored on_localstack 2>&1 | tee "$LOG" || status=$?
PASSED=$(awk '/^test result:/ {n += $4} END {print n + 0}' "$LOG")
FAILED=$(awk '/^test result:/ {n += $6} END {print n + 0}' "$LOG")
rm -f "$LOG"
# The filter must still name tests: a rename would otherwise run nothing, and pass.
if [ "$PASSED" -eq 0 ] && [ "$FAILED" -eq 0 ]; then
  echo "no *_on_localstack test ran" >&2
  status=1
fi
echo "LocalStack run: $(($(date +%s) - started)) s in all"
echo
echo "localstack: $PASSED passed, $FAILED failed"
exit "$status"
