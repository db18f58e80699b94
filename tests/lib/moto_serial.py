"""moto's server, handling one request at a time.

moto's DynamoDB is not atomic across its server threads: two concurrent TransactWriteItems can
both pass the same condition (or one fails with "dictionary changed size during iteration"),
where real DynamoDB serializes them. The race tests send concurrent requests on purpose, so the
emulator must evaluate each request atomically, as DynamoDB does: a lock around the WSGI app
does that and keeps the threaded server (and its keep-alive connections). moto runs on one
CPU-bound interpreter anyway, so little throughput is lost.

Usage: python tests/lib/moto_serial.py -H 127.0.0.1 -p PORT   (moto_server's arguments)
"""

import sys
import threading

import moto.server as server

_lock = threading.Lock()
_dispatch = server.DomainDispatcherApplication.__call__


def _serialized(self, environ, start_response):
    # moto's own API (/moto-api/data.json: what was "sent") only reads, and can take a second
    # once many texts are kept: it must not hold up the AWS calls of other tests.
    if environ.get("PATH_INFO", "").startswith("/moto-api"):
        return _dispatch(self, environ, start_response)
    with _lock:
        # Drain the body inside the lock: a lazy iterable would run moto's code after release.
        return list(_dispatch(self, environ, start_response))


server.DomainDispatcherApplication.__call__ = _serialized

if __name__ == "__main__":
    server.main(sys.argv[1:])
