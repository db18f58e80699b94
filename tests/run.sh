#!/usr/bin/env bash
# Runs every test of the project, from a fresh clone with only Rust and Python 3 installed:
#   1. formatting and clippy (warnings are errors),
#   2. unit, flow and handler tests (`cargo test`, no network),
#   3. end-to-end tests over HTTP against mfa-local on the memory backend and, with
#      `--backend aws`, against moto's server, which this script installs into ./.venv,
#      starts on a free loopback port and stops again; the store contract suite also on
#      dynoxide (a second DynamoDB emulator, built once into ./.tools),
#   4. the end-to-end tests of the AWS backend on LocalStack (host mode, no Docker: SNS and
#      Secrets Manager), dynoxide (DynamoDB) and moto (SES v2): tests/localstack.sh,
#   5. OpenAPI fuzzing, the browser test of the reference web page (Node.js, Debian's
#      chromium, which tests/browser.sh installs as root when missing), and the README's
#      walk-through run as written (tests/walkthrough.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
log() { printf '\n== %s\n' "$*"; }
# moto_venv and moto_start, shared with tests/load.sh.
source tests/lib/moto.sh
# dynoxide_install, dynoxide_start and dynoxide_stop.
source tests/lib/dynoxide.sh

log "tools: moto (project-local virtualenv $VENV)"
# Reinstall whenever tests/requirements.txt changes (its hash is kept in the venv).
moto_venv

log "tools: dynoxide-rs $DYNOXIDE_VERSION (project-local, $DYNOXIDE_ROOT; built only when missing)"
dynoxide_install

log "template and OpenAPI checks"
# Offline: no AWS credentials and no network. cfn-lint exits non-zero on errors (2) and on
# warnings (4); `sam validate --lint` runs cfn-lint through SAM and fails on any match.
export SAM_CLI_TELEMETRY=0
"$VENV/bin/cfn-lint" template.yaml
AWS_REGION=us-east-1 "$VENV/bin/sam" validate --lint --template-file template.yaml
"$VENV/bin/openapi-spec-validator" openapi.yaml

moto_start
# For the store contract suite's dynoxide cases (shared/tests/it/store_contract.rs).
dynoxide_start

log "cargo fmt --check"
cargo fmt --all --check

log "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

log "cargo test (unit, flows, handlers, end-to-end on memory and on moto)"
# --include-ignored runs the moto tests, which plain `cargo test` lists as ignored. The output is
# also kept to total the results at the end.
CARGO_LOG=$(mktemp)
# The moto load test runs last, on a moto of its own: its thousands of texts and items would
# slow every later read of the shared emulator's data.
# The *_on_localstack tests run in tests/localstack.sh below, on their own emulators.
cargo test --workspace -- --include-ignored --skip on_moto_load --skip on_localstack 2>&1 | tee "$CARGO_LOG"
dynoxide_stop

log "load test on a fresh moto (bounded: 8 users for 12 s)"
moto_stop
moto_start
LOAD_LOG=$(mktemp)
cargo test -p mfa-tests --test e2e -- --include-ignored on_moto_load 2>&1 | tee "$LOAD_LOG"
# The filter must still name the test: a rename would otherwise run nothing, and pass.
grep -q '^test result: ok. 1 passed' "$LOAD_LOG" || { echo "the moto load test did not run" >&2; exit 1; }
cat "$LOAD_LOG" >>"$CARGO_LOG"
rm -f "$LOAD_LOG"
moto_stop

log "end-to-end tests on LocalStack, dynoxide and moto (tests/localstack.sh)"
# It installs LocalStack into ./.venv-localstack (when its pins change), starts its own three
# emulators and stops them; its "localstack: N passed, N failed" line joins the count.
LS_LOG=$(mktemp)
tests/localstack.sh 2>&1 | tee "$LS_LOG"
LS_PASSED=$(awk '/^localstack: / {print $2}' "$LS_LOG")
LS_FAILED=$(awk '/^localstack: / {print $4}' "$LS_LOG")
rm -f "$LS_LOG"

log "OpenAPI fuzzing (schemathesis against openapi.yaml on mfa-local, bounded, fixed seed)"
# Uses target/debug/mfa-local, which the cargo test step above has just built.
tests/api-fuzz.sh

log "browser test (the reference web page in headless Chromium, playwright-core)"
# Uses target/debug/mfa-local too. node's test runner prints TAP; its totals join the count.
BROWSER_LOG=$(mktemp)
tests/browser.sh 2>&1 | tee "$BROWSER_LOG"
BROWSER_PASSED=$(awk '/^# pass / {print $3}' "$BROWSER_LOG")
BROWSER_FAILED=$(awk '/^# fail / {print $3}' "$BROWSER_LOG")
rm -f "$BROWSER_LOG"

log "README walk-through, run as written (tests/walkthrough.sh)"
# Uses target/debug/mfa-local too; its "walkthrough: N passed, N failed" line joins the count.
WALK_LOG=$(mktemp)
tests/walkthrough.sh 2>&1 | tee "$WALK_LOG"
WALK_PASSED=$(awk '/^walkthrough: / {print $2}' "$WALK_LOG")
rm -f "$WALK_LOG"

# One closing line for the whole run (the fuzzing step printed last, and is not a test runner
# that CI reads): every cargo test result added up; a failure has already stopped the script.
PASSED=$(awk '/^test result:/ {n += $4} END {print n + 0}' "$CARGO_LOG")
FAILED=$(awk '/^test result:/ {n += $6} END {print n + 0}' "$CARGO_LOG")
PASSED=$((PASSED + ${BROWSER_PASSED:-0} + ${WALK_PASSED:-0} + ${LS_PASSED:-0}))
FAILED=$((FAILED + ${BROWSER_FAILED:-0} + ${LS_FAILED:-0}))
rm -f "$CARGO_LOG"
echo
echo "tests: $PASSED passed, $FAILED failed"
