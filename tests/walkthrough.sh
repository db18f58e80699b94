#!/usr/bin/env bash
# Runs the README's walk-through exactly as written (its "Walk-through (local, embedded default)"
# and "Settings" shell blocks, one after the other in one shell) against a fresh mfa-local on the
# memory backend, so that the README cannot drift from what the service does.
#
# Two substitutions only, both in the harness, never in the README's text: the server listens on
# a free port instead of 3000 (`B=` is rewritten), and `mfa` runs the already-built debug binary
# instead of `cargo run --release`. Every curl gets `--fail-with-body`, so any 4xx or 5xx stops
# the walk with the answer printed.
#   MFA_LOCAL  the mfa-local binary (default target/debug/mfa-local, built by `cargo test`)
set -euo pipefail
cd "$(dirname "$0")/.."
MFA=${MFA_LOCAL:-target/debug/mfa-local}
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
LOG=$(mktemp)
WALK=$(mktemp)
"$MFA" --port "$PORT" >"$LOG" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; rm -f "$LOG" "$WALK"' EXIT
for _ in $(seq 1 100); do
  curl -s -o /dev/null "http://127.0.0.1:$PORT/v1/mfa/jwks.json" && break
  kill -0 "$PID" 2>/dev/null || { cat "$LOG"; echo "mfa-local did not start" >&2; exit 1; }
  sleep 0.1
done

python3 - "$PORT" "$MFA" >"$WALK" <<'EOF'
import re, sys
port, mfa = sys.argv[1], sys.argv[2]
readme = open("README.md", encoding="utf-8").read()
blocks = []
for heading in ("## Walk-through (local, embedded default)", "### Settings:"):
    start = readme.index(heading)
    m = re.compile(r"```sh\n(.*?)```", re.S).search(readme, start)
    blocks.append(m.group(1))
script = "\n".join(blocks)
script = script.replace("B=http://127.0.0.1:3000", f"B=http://127.0.0.1:{port}", 1)
script = re.sub(r"mfa\(\) \{.*?\}", f'mfa() {{ "{mfa}" "$@"; }}', script, count=1)
print("set -euo pipefail")
print('curl() { command curl --fail-with-body "$@"; }')
print(script)
EOF
echo "== the README walk-through, against mfa-local on port $PORT"
if bash "$WALK"; then
  echo
  echo "walkthrough: 1 passed, 0 failed"
else
  echo
  echo "walkthrough: 0 passed, 1 failed"
  exit 1
fi
