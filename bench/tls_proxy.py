"""A local TLS terminator in front of moto, for the benchmark's TLS mode.

Makes a throwaway CA and a server certificate for 127.0.0.1 and localhost (ECDSA P-256, made
fresh at every start, never kept), writes the CA to DIR/ca.pem for the clients to trust, then
accepts TLS on a free loopback port and forwards each request to moto. moto answers every
request with `Connection: close`; the proxy opens a plain connection to moto per request but
keeps the client's TLS connection alive (dropping that header), as AWS endpoints do, so that
clients reuse their connections and handshakes as they would in a Lambda.

    python bench/tls_proxy.py --upstream 127.0.0.1:5000 --dir target/bench-tls [--log FILE]
prints "tls-proxy listening on https://127.0.0.1:PORT" once ready.

With --log, one line per connection (when it was accepted, how long its TLS handshake took
here) and per request (when it came in, and how long until the first byte of its answer came
back from moto), in ms since the proxy started: how many connections, handshakes and requests
a benchmarked invocation made, and where they waited. One asyncio thread serves every
connection; the handshakes are its only CPU work of note (ECDSA P-256, about 1 ms each).
"""

import argparse
import asyncio
import datetime
import ipaddress
import itertools
import os
import ssl
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def make_certs(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mfa-bench throwaway CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths = {name: os.path.join(out_dir, name) for name in ("ca.pem", "server.pem", "server.key")}
    with open(paths["ca.pem"], "wb") as f:
        f.write(ca.public_bytes(pem))
    with open(paths["server.pem"], "wb") as f:
        f.write(cert.public_bytes(pem) + ca.public_bytes(pem))
    with open(paths["server.key"], "wb") as f:
        f.write(
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
    return paths


START = time.monotonic()
LOG = None


def log(line):
    if LOG is not None:
        LOG.write(f"{(time.monotonic() - START) * 1000:10.2f} {line}\n")
        LOG.flush()


def ms_since(t):
    return (time.monotonic() - t) * 1000


async def read_message(reader):
    """One HTTP/1.1 message with a Content-Length body (or none): head lines and body. None at
    a clean end of stream. A message without a length is read to the end of the stream."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            return None
        raise
    lines = head[:-4].split(b"\r\n")
    length = None
    for h in lines[1:]:
        name, _, value = h.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        elif name.strip().lower() == b"transfer-encoding":
            raise ValueError("chunked messages are not supported")
    body = await reader.readexactly(length) if length is not None else await reader.read()
    return lines, body


def header(lines, name):
    for h in lines[1:]:
        n, _, v = h.partition(b":")
        if n.strip().lower() == name:
            return v.strip().decode("latin-1")
    return ""


async def exchange(conn, client_r, client_w, host, port):
    """Forwards one request of a kept-alive client connection to moto on a connection of its
    own (moto answers `Connection: close` to everything), and its answer back without that
    header: the client keeps its TLS connection, as it would with AWS. False once the client
    has closed its side."""
    request = await read_message(client_r)
    if request is None:
        return False
    lines, body = request
    sent = time.monotonic()
    log(f"conn {conn}: request {lines[0].decode('latin-1')} {header(lines, b'x-amz-target')}")
    up_r, up_w = await asyncio.open_connection(host, port)
    try:
        up_w.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        await up_w.drain()
        answer = await read_message(up_r)
    finally:
        up_w.close()
    if answer is None:
        raise ValueError("moto closed without an answer")
    lines, body = answer
    kept = [h for h in lines if h.partition(b":")[0].strip().lower() != b"connection"]
    if header(lines, b"content-length") == "":
        kept.append(b"Content-Length: " + str(len(body)).encode())
    client_w.write(b"\r\n".join(kept) + b"\r\n\r\n" + body)
    await client_w.drain()
    log(f"conn {conn}: answered after {ms_since(sent):.2f} ms")
    return True


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True, help="moto's host:port")
    ap.add_argument("--dir", required=True, help="where ca.pem (and the server's pair) go")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--log", help="a file for one line per connection and per request")
    args = ap.parse_args()

    host, port = args.upstream.rsplit(":", 1)
    paths = make_certs(args.dir)
    global LOG
    if args.log:
        LOG = open(args.log, "w", buffering=1)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(paths["server.pem"], paths["server.key"])

    ids = itertools.count(1)

    async def handle(client_r, client_w):
        conn = next(ids)
        accepted = time.monotonic()
        peer = client_w.get_extra_info("peername")
        try:
            await client_w.start_tls(ctx)
        except (OSError, ssl.SSLError) as e:
            log(f"conn {conn} from {peer}: handshake failed: {e}")
            client_w.close()
            return
        log(f"conn {conn} from {peer}: accepted, handshake {ms_since(accepted):.2f} ms")
        served = 0
        try:
            while await exchange(conn, client_r, client_w, host, int(port)):
                served += 1
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError, ValueError) as e:
            log(f"conn {conn}: {type(e).__name__}: {e}")
        finally:
            client_w.close()
        log(f"conn {conn}: closed after {served} requests")

    server = await asyncio.start_server(handle, "127.0.0.1", args.port)
    bound = server.sockets[0].getsockname()[1]
    print(f"tls-proxy listening on https://127.0.0.1:{bound}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
