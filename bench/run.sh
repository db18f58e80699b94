#!/usr/bin/env bash
# The benchmark, in one command (not part of tests/run.sh; no test asserts a time):
#
#   bench/run.sh            [extra mfa-bench flags, e.g. --cold 5 --warm 500 --only challenge]
#   bench/run.sh --no-build [flags]   # the release binaries as they are (no cargo), e.g. two
#       builds in turn: --bin-dir A --label a --compare-bin-dir B --compare-label b
#
# Creates the bench virtualenv (target/bench-venv, from bench/requirements.txt: boto3 for the
# Python peer, cryptography for the TLS terminator) and the tests' moto venv (.venv), builds the
# release binaries, starts moto, bootstraps and seeds the table through mfa-local's admin routes,
# then runs mfa-bench twice: unthrottled against plain-HTTP moto, and with TLS (a throwaway-CA
# terminator in front of moto) at each function's configured memory's CPU share (cgroup v1,
# needs root). Prints the table and the cost model and writes them to target/bench-report.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

REPORT=target/bench-report.txt
BENCH_VENV=target/bench-venv
mkdir -p target
BUILD=1
if [ "${1:-}" = --no-build ]; then BUILD=; shift; fi
FUNCTIONS=(-p policy-config -p enrollment-start -p phone-submit -p code-verify -p phone-edits -p challenge)

# shellcheck source=tests/lib/moto.sh
source tests/lib/moto.sh
moto_venv

want=$(sha256sum bench/requirements.txt | cut -d' ' -f1)
if [ "$(cat "$BENCH_VENV/.requirements" 2>/dev/null)" != "$want" ]; then
  python3 -m venv "$BENCH_VENV"
  "$BENCH_VENV/bin/pip" install --quiet --disable-pip-version-check -r bench/requirements.txt
  echo "$want" >"$BENCH_VENV/.requirements"
fi

# The functions and mfa-local first, then the bench on its own: building them in one cargo call
# would unify features across them and change the functions' binaries.
if [ -n "$BUILD" ]; then
  cargo build --release "${FUNCTIONS[@]}" -p mfa-local
  cargo build --release -p mfa-bench
fi

moto_start
MOTO=$MFA_TEST_MOTO_URL
LOCAL_PID=
TLS_PID=
cleanup() {
  for pid in $LOCAL_PID $TLS_PID $MOTO_PID; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -f "$MOTO_LOG"
}
trap cleanup EXIT

export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
APP=bench-app USER_ID=bench-user PASSWORD='bench password 1'

# Bootstrap (table, secrets, sender) and seed the policy and the user through the admin routes.
free_port() { "$BENCH_VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
LPORT=$(free_port)
LOCAL_OUT=$(mktemp)
AWS_ENDPOINT_URL=$MOTO target/release/mfa-local --backend aws --bootstrap --port "$LPORT" >"$LOCAL_OUT" 2>&1 &
LOCAL_PID=$!
for _ in $(seq 1 300); do
  grep -q "listening on" "$LOCAL_OUT" && break
  kill -0 "$LOCAL_PID" 2>/dev/null || { cat "$LOCAL_OUT"; echo "mfa-local did not start" >&2; exit 1; }
  sleep 0.1
done
B=http://127.0.0.1:$LPORT
ADMIN=$(target/release/mfa-local token --user bench-admin --scope "mfa:admin mfa:operator")
HASH=$(printf '%s' "$PASSWORD" | target/release/mfa-local hash-password)
seed() { # method path json
  local code
  code=$(curl -s -o /dev/stderr -w '%{http_code}' -X "$1" "$B$2" -H "authorization: Bearer $ADMIN" \
    -H 'content-type: application/json' --data "$3" 2>/dev/null)
  [ "$code" = 200 ] || { echo "seeding $1 $2 answered $code" >&2; exit 1; }
}
seed PUT "/v1/admin/applications/$APP/mfa-availability" '{"available": true}'
seed PUT "/v1/admin/applications/$APP/mfa-policy" \
  '{"enabled": true, "include_in_signup": true, "enforcement": "optional"}'
seed PUT "/v1/admin/applications/$APP/users/$USER_ID" \
  "{\"email\": \"bench@example.com\", \"email_verified\": true, \"password_hash\": \"$HASH\"}"
kill "$LOCAL_PID"; wait "$LOCAL_PID" 2>/dev/null || true; LOCAL_PID=
rm -f "$LOCAL_OUT"

{
  echo "mfa-bench report, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr)"
  echo "binaries: native $(uname -m) release builds (not arm64); AWS services: moto $("$VENV/bin/pip" show moto 2>/dev/null | awk '/^Version/{print $2}') on loopback"
} | tee "$REPORT"

target/release/mfa-bench --mode unthrottled --endpoint "$MOTO" "$@" | tee -a "$REPORT"

# TLS mode: a terminator with a throwaway CA in front of moto.
if [ -w /sys/fs/cgroup/cpu ]; then
  TLS_OUT=$(mktemp)
  "$BENCH_VENV/bin/python" bench/tls_proxy.py --upstream "${MOTO#http://}" --dir target/bench-tls \
    --log target/bench-tls/connections.log >"$TLS_OUT" 2>&1 &
  TLS_PID=$!
  for _ in $(seq 1 100); do
    grep -q "listening on" "$TLS_OUT" && break
    kill -0 "$TLS_PID" 2>/dev/null || { cat "$TLS_OUT"; echo "tls_proxy did not start" >&2; exit 1; }
    sleep 0.1
  done
  TLS_URL=$(sed -n 's/^tls-proxy listening on //p' "$TLS_OUT")
  # The system's CA certificates and the throwaway CA: SSL_CERT_FILE replaces the system store,
  # and a Lambda's HTTP client loads the whole store (~140 certificates) in init.
  cat /etc/ssl/certs/ca-certificates.crt target/bench-tls/ca.pem >target/bench-tls/bundle.pem
  target/release/mfa-bench --mode tls+cpu-share --endpoint "$TLS_URL" \
    --ca-file target/bench-tls/bundle.pem --cpu-share "$@" | tee -a "$REPORT"
else
  echo "TLS + CPU-share mode skipped: /sys/fs/cgroup/cpu is not writable (cgroup v1 and root needed)" | tee -a "$REPORT"
fi
echo "report written to $REPORT"
