#!/usr/bin/env bash
# Builds each Lambda for arm64 (provided.al2023) the way `sam build` does — cargo-lambda with
# zig as the cross-linker, one function per cargo invocation so that each links only the
# mfa-shared features (SDK clients) it asks for — then prints, per function, the stripped
# `bootstrap` size, its `zip -9` size, and whether the budget holds:
#   bootstrap <= 5 MB (5,000,000 bytes) per function (issue 14, with the SDK's HTTP client; the
#   zip is printed, no longer budgeted).
# Exits non-zero when the budget is missed or a build fails. Not part of tests/run.sh (a cold
# build takes tens of minutes on 2 cores: the SDK with fat LTO, six links).
#   bench/sizes.sh                 # all six
#   bench/sizes.sh challenge       # some
set -euo pipefail
cd "$(dirname "$0")/.."

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
for fn in "${FUNCTIONS[@]}"; do
  echo "== cargo lambda build --release --target $TARGET -p $fn" >&2
  if ! cargo lambda build --release --target "$TARGET" -p "$fn" >&2; then
    rows+=("$(printf '%-18s %12s %10s  %s' "$fn" - - "BUILD FAILED")"); status=1; continue
  fi
  bin=target/lambda/$fn/bootstrap
  # The release profile strips (strip = true); check that it did.
  if file -b "$bin" 2>/dev/null | grep -q 'not stripped'; then
    rows+=("$(printf '%-18s %12s %10s  %s' "$fn" - - "NOT STRIPPED")"); status=1; continue
  fi
  rm -f "$OUT/$fn.zip"
  (cd "$(dirname "$bin")" && zip -q -9 -X "$OLDPWD/$OUT/$fn.zip" bootstrap)
  b=$(stat -c %s "$bin"); z=$(stat -c %s "$OUT/$fn.zip")
  verdict=pass
  if [ "$b" -gt "$BIN_BUDGET" ]; then verdict=FAIL; status=1; fi
  rows+=("$(printf '%-18s %12d %10d  %s' "$fn" "$b" "$z" "$verdict")")
done

printf '\n%-18s %12s %10s  %s\n' function "bootstrap B" "zip B" "budget (bootstrap <= 5 MB)"
printf '%s\n' "${rows[@]}"
exit $status
