#!/usr/bin/env bash
# Signs a user in with the second factor against a running `mfa-local` (memory backend) and
# verifies the assertion the way a platform's login does: fetch the JWKS, pick the key by `kid`,
# check the EdDSA signature, `exp`, `sub` and `app_id`. The README shows it step by step.
#   B          the server (default http://127.0.0.1:3000)
#   MFA_LOCAL  the mfa-local binary, for tokens and the password hash (default target/debug/mfa-local)
#   PY         a Python with `cryptography` (default .venv/bin/python, made by tests/run.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-http://127.0.0.1:3000}
MFA=${MFA_LOCAL:-target/debug/mfa-local}
PY=${PY:-.venv/bin/python}
APP=demo-$$
USER_ID=ada-$$
NUMBER="+1415555$(printf '%04d' $(( $$ % 10000 )))"

json() { "$PY" -c "import json,sys; print(json.load(sys.stdin)$1)"; }
last_code() { curl -sf "$B/_local/outbox" | json '["sms"][-1]["body"][:6]'; }

OPERATOR=$("$MFA" token --user cs@example.com --scope mfa:operator)
ADMIN=$("$MFA" token --user admin@example.com --scope mfa:admin)
USER_T=$("$MFA" token --user "$USER_ID" --app "$APP")
AUTH=(-H "authorization: Bearer $USER_T" -H 'content-type: application/json')

# The operator makes MFA available, the admin enables it, the platform provisions the user.
curl -sf -X PUT "$B/v1/admin/applications/$APP/mfa-availability" -H "authorization: Bearer $OPERATOR" \
  -H 'content-type: application/json' -d '{"available": true}' >/dev/null
curl -sf -X PUT "$B/v1/admin/applications/$APP/mfa-policy" -H "authorization: Bearer $ADMIN" \
  -H 'content-type: application/json' -d '{"enabled": true, "include_in_signup": true, "enforcement": "required"}' >/dev/null
HASH=$(printf 'correct horse' | "$MFA" hash-password)
curl -sf -X PUT "$B/v1/admin/applications/$APP/users/$USER_ID" -H "authorization: Bearer $ADMIN" \
  -H 'content-type: application/json' \
  -d "{\"email\": \"ada@example.com\", \"email_verified\": true, \"password_hash\": \"$HASH\"}" >/dev/null

# The user enrolls a phone.
E=$(curl -sf -X POST "$B/v1/mfa/enrollments" "${AUTH[@]}" -d '{"password": "correct horse"}' | json '["enrollment_id"]')
curl -sf -X POST "$B/v1/mfa/enrollments/$E/phone" "${AUTH[@]}" -d "{\"phone_number\": \"$NUMBER\"}" >/dev/null
curl -sf -X POST "$B/v1/mfa/enrollments/$E/code" "${AUTH[@]}" -d "{\"code\": \"$(last_code)\"}" >/dev/null

# Sign-in: the platform's login asks for the second factor, the user types the texted code.
C=$(curl -sf -X POST "$B/v1/mfa/challenges" "${AUTH[@]}" | json '["challenge_id"]')
ASSERTION=$(curl -sf -X POST "$B/v1/mfa/challenges/$C/code" "${AUTH[@]}" -d "{\"code\": \"$(last_code)\"}" | json '["assertion"]')

# The platform verifies the assertion with the published keys before it lets the user in.
"$PY" - "$ASSERTION" "$B/v1/mfa/jwks.json" "$USER_ID" "$APP" <<'PY'
import base64, json, sys, time, urllib.request
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

token, jwks_url, user, app = sys.argv[1:5]
b64 = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
head, body, sig = token.split(".")
header, claims = json.loads(b64(head)), json.loads(b64(body))
assert header["alg"] == "EdDSA", "only EdDSA is accepted"
keys = json.load(urllib.request.urlopen(jwks_url))["keys"]
jwk = next(k for k in keys if k["kid"] == header["kid"])
Ed25519PublicKey.from_public_bytes(b64(jwk["x"])).verify(b64(sig), f"{head}.{body}".encode())
assert claims["exp"] > time.time(), "expired"
assert (claims["sub"], claims["app_id"], claims["amr"]) == (user, app, ["sms"])
# A real login also remembers `jti` until `exp`, refusing an assertion it has seen before.
print("assertion verified:", json.dumps(claims, sort_keys=True))
PY
