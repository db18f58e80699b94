"""A plain Lambda Runtime API loop for the peer: import the handler (init), then forever
GET the next event, call the handler, POST its result (or the error)."""

import importlib
import json
import os
import traceback
import urllib.request

API = f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}/2018-06-01/runtime"
module_name, function_name = os.environ.get("_HANDLER", "status.handler").rsplit(".", 1)


def post(path, body):
    req = urllib.request.Request(f"{API}{path}", data=json.dumps(body).encode(), method="POST")
    req.add_header("content-type", "application/json")
    urllib.request.urlopen(req).read()


try:
    handler = getattr(importlib.import_module(module_name), function_name)
except Exception as e:  # noqa: BLE001 - reported to the Runtime API as Lambda does
    post("/init/error", {"errorMessage": str(e), "errorType": type(e).__name__})
    raise


class Context:
    def __init__(self, headers):
        self.aws_request_id = headers["Lambda-Runtime-Aws-Request-Id"]
        self.invoked_function_arn = headers.get("Lambda-Runtime-Invoked-Function-Arn")
        self.deadline_ms = int(headers.get("Lambda-Runtime-Deadline-Ms", "0"))
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")


while True:
    with urllib.request.urlopen(f"{API}/invocation/next") as r:
        ctx = Context(r.headers)
        event = json.loads(r.read())
    try:
        result = handler(event, ctx)
    except Exception as e:  # noqa: BLE001
        post(
            f"/invocation/{ctx.aws_request_id}/error",
            {"errorMessage": str(e), "errorType": type(e).__name__, "stackTrace": traceback.format_exc().splitlines()},
        )
        continue
    post(f"/invocation/{ctx.aws_request_id}/response", result)
