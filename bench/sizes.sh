#!/usr/bin/env bash
# Builds each Lambda for arm64 (provided.al2023) the way `sam build` does — cargo-lambda with
# zig as the cross-linker, one function per cargo invocation so that each links only the
# mfa-shared features (SDK clients) it asks for — then prints, per function, the stripped
# `bootstrap` size, its `zip -9` size, and whether the budget holds:
#   bootstrap <= 5 MB (5,000,000 bytes) per function (issue 14: the SDK's HTTP client).
# Exits non-zero when the budget is missed or a build fails. Not part of tests/run.sh (a cold
# build takes tens of minutes on 2 cores: the SDK with fat LTO, six links).
#   bench/sizes.sh                 # all six
#   bench/sizes.sh challenge       # some
#   bench/sizes.sh --compare       # each also with our own HTTP client (feature own-https)
set -euo pipefail
cd "$(dirname "$0")/.."

COMPARE=
if [ "${1:-}" = --compare ]; then COMPARE=1; shift; fi
FUNCTIONS=(policy-config enrollment-start phone-submit code-verify phone-edits challenge)
[ $# -gt 0 ] && FUNCTIONS=("$@")
BIN_BUDGET=5000000
TARGET=aarch64-unknown-linux-gnu.2.26   # as samconfig / sam build

# cargo-lambda and zig: from PATH, else the project venv (tests/requirements-build.txt).
if ! command -v cargo-lambda >/dev/null 2>&1; then
  if [ ! -x .venv/bin/cargo-lambda ]; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements-build.txt
  fi
  export PATH="$PWD/.venv/bin:$PATH"
fi
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu

OUT=target/sizes
mkdir -p "$OUT"
status=0
rows=()
# build FUNCTION LABEL [cargo flags]: one row (the budget applies to the SDK client's build).
build() {
  local fn=$1 label=$2; shift 2
  echo "== cargo lambda build --release --target $TARGET -p $fn $*" >&2
  if ! cargo lambda build --release --target "$TARGET" -p "$fn" "$@" >&2; then
    rows+=("$(printf '%-18s %-10s %12s %10s  %s' "$fn" "$label" - - "BUILD FAILED")"); status=1; return
  fi
  local bin=target/lambda/$fn/bootstrap
  # The release profile strips (strip = true); check that it did.
  if file -b "$bin" 2>/dev/null | grep -q 'not stripped'; then
    rows+=("$(printf '%-18s %-10s %12s %10s  %s' "$fn" "$label" - - "NOT STRIPPED")"); status=1; return
  fi
  local zipped=$OUT/$fn-$label.zip
  rm -f "$zipped"
  (cd "$(dirname "$bin")" && zip -q -9 -X "$OLDPWD/$zipped" bootstrap)
  local b z verdict=pass
  b=$(stat -c %s "$bin"); z=$(stat -c %s "$zipped")
  if [ "$label" = sdk ] && [ "$b" -gt "$BIN_BUDGET" ]; then verdict=FAIL; status=1; fi
  [ "$label" = sdk ] || verdict="(comparison only)"
  rows+=("$(printf '%-18s %-10s %12d %10d  %s' "$fn" "$label" "$b" "$z" "$verdict")")
}

for fn in "${FUNCTIONS[@]}"; do
  if [ -n "$COMPARE" ]; then build "$fn" own-https --no-default-features --features own-https; fi
  build "$fn" sdk
done

printf '\n%-18s %-10s %12s %10s  %s\n' function "client" "bootstrap B" "zip B" "budget (bootstrap <= 5 MB)"
printf '%s\n' "${rows[@]}"
exit $status
