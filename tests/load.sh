#!/usr/bin/env bash
# The load test as its own command, for a longer run than the bounded one of the test suite
# (tests/tests/e2e/load.rs, which tests/run.sh runs on both backends):
#
#   tests/load.sh [--backend memory|aws] [--users 64] [--duration 60]
#
# Builds mfa-local and the load driver (mfa-load) in release, starts moto's server from the
# project's virtualenv for --backend aws (installing it as tests/run.sh does; MFA_VENV=DIR uses
# an existing virtualenv as it is), runs the simulated users for the duration (each one
# enrollment after another, as fresh users of one application), and prints the report: requests,
# throughput and p50/p99/max latency per route. The report is also written to
# target/load-report-standalone-{memory,moto}.txt. Exits 1 if the run found a problem: a 5xx or
# another unexpected answer, a completed enrollment missing afterwards, or a number whose texts
# differ from its accepted sends.
set -euo pipefail
cd "$(dirname "$0")/.."

BACKEND=memory
USERS=64
DURATION=60
while [ $# -gt 0 ]; do
  case "$1" in
    --backend) BACKEND=${2:?--backend needs a value}; shift 2 ;;
    --users) USERS=${2:?--users needs a value}; shift 2 ;;
    --duration) DURATION=${2:?--duration needs a value}; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "tests/load.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$BACKEND" in
  memory|aws) ;;
  *) echo "tests/load.sh: --backend is memory or aws" >&2; exit 2 ;;
esac

echo "== building mfa-local and mfa-load (release)"
# Two builds, so that mfa-local's features (and binary) are the same as in
# `cargo build --release -p mfa-local`.
cargo build --release -p mfa-local
cargo build --release -p mfa-tests --bin mfa-load
TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
export MFA_LOCAL_BIN="$TARGET/release/mfa-local"

if [ "$BACKEND" = aws ]; then
  # moto_venv and moto_start, shared with tests/run.sh.
  source tests/lib/moto.sh
  if [ -n "${MFA_VENV:-}" ]; then
    VENV=$MFA_VENV
  else
    echo "== moto (project-local virtualenv $VENV)"
    moto_venv
  fi
  moto_start
fi

echo "== $USERS users for $DURATION s on the $BACKEND backend"
"$TARGET/release/mfa-load" --backend "$BACKEND" --users "$USERS" --duration "$DURATION"
