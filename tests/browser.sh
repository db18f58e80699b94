#!/usr/bin/env bash
# The browser test: the reference web page (web/, served by mfa-local at /) clicked through the
# seed (tests/browser/seed.test.mjs), the authenticator-app walk (totp.test.mjs) and the rollout
# (rollout.test.mjs: adoption figures, Required confirmed, the grace deadline) in headless
# Chromium, driven by playwright-core. Installs what is missing: Debian's
# `chromium` package (apt, as root) and the pinned npm packages (tests/browser/package-lock.json).
# Uses the mfa-local binary named by MFA_LOCAL_BIN (default target/debug/mfa-local, which the
# cargo test step of tests/run.sh builds). Saves the screens to docs/screens/.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "tests/browser.sh: /usr/bin/chromium is missing; install Debian's chromium package (apt-get install chromium)" >&2
    exit 1
  fi
  echo "installing Debian's chromium (apt-get)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null \
    || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null; }
fi
command -v node >/dev/null || { echo "tests/browser.sh: node is missing" >&2; exit 1; }

want=$(sha256sum tests/browser/package-lock.json | cut -d' ' -f1)
if [ "$(cat tests/browser/node_modules/.lock-sha 2>/dev/null)" != "$want" ]; then
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" >tests/browser/node_modules/.lock-sha
fi

[ -x "${MFA_LOCAL_BIN:-target/debug/mfa-local}" ] || cargo build -p mfa-local
# The files, one after the other (each starts its own mfa-local), in one TAP report whose
# "# pass"/"# fail" totals tests/run.sh reads.
MFA_LOCAL_BIN="${MFA_LOCAL_BIN:-target/debug/mfa-local}" node --test --test-concurrency=1 --test-reporter=tap \
  tests/browser/seed.test.mjs tests/browser/totp.test.mjs tests/browser/rollout.test.mjs
