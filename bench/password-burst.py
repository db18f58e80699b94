#!/usr/bin/env python3
"""The memory a burst of password checks costs mfa-local (issue 13, point 6).

    bench/password-burst.py [--bin target/release/mfa-local] [--clients 24] [--starts 200]

Starts mfa-local (memory backend) on a free port, makes MFA available and enabled for one
application, provisions `--starts` users through the admin route (one argon2 hash for all,
made by `mfa-local hash-password`, so provisioning checks no password), then `--clients`
concurrent clients call Start (`POST /v1/mfa/enrollments` with the right password: one argon2id
check at 19 MiB each) once per user. It prints the server's resident memory (VmRSS) when idle
before the burst, its peak (VmHWM) and VmRSS once the burst is over, with the Start latencies.
Python's standard library only; timings are reported, never asserted.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

PASSWORD = "correct horse battery"
SECRET = os.environ.get("MFA_LOCAL_JWT_SECRET", "local-dev-secret")
APP = "burst"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(sub, scope=None):
    """A local HS256 token, as `mfa-local token` signs it."""
    now = int(time.time())
    claims = {"iss": "mfa-local", "sub": sub, "app_id": APP, "iat": now, "exp": now + 3600}
    if scope:
        claims["scope"] = scope
    msg = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(json.dumps(claims).encode())
    sig = hmac.new(SECRET.encode(), msg.encode(), hashlib.sha256).digest()
    return msg + "." + b64(sig)


def call(base, method, path, tok, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + tok)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def mb(kb):
    return f"{kb / 1024:.0f} MB"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="target/release/mfa-local")
    ap.add_argument("--clients", type=int, default=24)
    ap.add_argument("--starts", type=int, default=200)
    ap.add_argument("--settle", type=float, default=3.0, help="seconds to wait after the burst")
    a = ap.parse_args()

    phc = subprocess.run([a.bin, "hash-password"], input=PASSWORD.encode(), capture_output=True, check=True)
    phc = phc.stdout.decode().strip()

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    server = subprocess.Popen([a.bin, "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        for line in server.stdout:
            if b"listening on" in line:
                break
        threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()
        base = f"http://127.0.0.1:{port}"
        admin = token("admin@burst", "mfa:admin mfa:operator")
        root = f"/v1/admin/applications/{APP}"
        assert call(base, "PUT", root + "/mfa-availability", admin, {"available": True})[0] == 200
        body = {"enabled": True, "include_in_signup": True, "enforcement": "optional"}
        assert call(base, "PUT", root + "/mfa-policy", admin, body)[0] == 200
        users = [f"u{i}" for i in range(a.starts)]
        for u in users:
            body = {"email": f"{u}@example.com", "email_verified": True, "password_hash": phc}
            st, out = call(base, "PUT", f"{root}/users/{u}", admin, body)
            assert st == 200, (st, out)
        time.sleep(0.5)
        idle = status_kb(server.pid, "VmRSS")

        todo = list(users)
        lock = threading.Lock()
        lat, codes = [], {}

        def client():
            while True:
                with lock:
                    if not todo:
                        return
                    u = todo.pop()
                t0 = time.monotonic()
                st, _ = call(base, "POST", "/v1/mfa/enrollments", token(u), {"password": PASSWORD})
                with lock:
                    lat.append(time.monotonic() - t0)
                    codes[st] = codes.get(st, 0) + 1

        t0 = time.monotonic()
        threads = [threading.Thread(target=client) for _ in range(a.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - t0
        peak = status_kb(server.pid, "VmHWM")
        time.sleep(a.settle)
        after = status_kb(server.pid, "VmRSS")
        lat.sort()
        print(f"mfa-local {a.bin}: {a.starts} Starts (argon2id m=19456 t=2 p=1) from {a.clients} clients, {os.cpu_count()} cores")
        print(f"  answers: {dict(sorted(codes.items()))} in {wall:.1f} s")
        print(f"  Start latency p50 {statistics.median(lat) * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms")
        print(f"  RSS idle before {mb(idle)}, peak (VmHWM) {mb(peak)}, {a.settle:.0f} s after {mb(after)}")
        return 0 if codes.get(201, 0) == a.starts else 1
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    sys.exit(main())
