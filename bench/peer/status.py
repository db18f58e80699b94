"""The peer: GET /v1/mfa/status as a team would write it in Python 3.11 with boto3.

Written the usual way: the client is created at import (once per cold start), the handler
reads the same DynamoDB items the Rust service reads for status (shared/src/flows/status.rs,
keys from shared/src/adapters/dynamodb.rs), strongly consistent, and answers the same JSON.
"""

import json
import os
import time

import boto3
from boto3.dynamodb.types import TypeDeserializer

TABLE = os.environ["MFA_TABLE_NAME"]
dynamodb = boto3.client("dynamodb")
_des = TypeDeserializer()


def _item(raw):
    return {k: _des.deserialize(v) for k, v in raw.items()} if raw else None


def _get(pk, sk):
    out = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True)
    return _item(out.get("Item"))


def _query(pk, prefix, count=False):
    kwargs = {
        "TableName": TABLE,
        "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :prefix)",
        "ExpressionAttributeNames": {"#pk": "pk", "#sk": "sk"},
        "ExpressionAttributeValues": {":pk": {"S": pk}, ":prefix": {"S": prefix}},
        "ConsistentRead": True,
    }
    if count:
        kwargs["Select"] = "COUNT"
    items, total = [], 0
    while True:
        out = dynamodb.query(**kwargs)
        total += out.get("Count", 0)
        items.extend(_item(i) for i in out.get("Items", []))
        if not out.get("LastEvaluatedKey"):
            return total if count else items
        kwargs["ExclusiveStartKey"] = out["LastEvaluatedKey"]


def _masked(e164):
    # Keeps "+", a country calling code (1 to 3 digits; "+1" for NANP) and the last 4 digits.
    cc = 1 if e164.startswith("+1") else 2
    digits = e164[1:]
    return "+" + digits[:cc] + "•" * (len(digits) - cc - 4) + digits[-4:]


def _ts(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch))) if epoch is not None else None


def _response(status, body):
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}


def handler(event, context):
    claims = event.get("requestContext", {}).get("authorizer", {}).get("jwt", {}).get("claims", {})
    app, user = claims.get("app_id"), claims.get("sub")
    if not app or not user:
        return _response(401, {"error": "unauthenticated", "message": "Sign in again."})
    now = int(time.time())
    user_pk = f"USER#{app}#{user}"
    policy = _get(f"APP#{app}", "POLICY") or {}
    profile = _get(user_pk, "PROFILE")
    phones = _query(user_pk, "PHONE#")
    phones.sort(key=lambda p: (not p["primary"], int(p["verified_at"])))
    skip = _get(user_pk, "SKIP")
    skipped_until = int(skip["until"]) if skip and int(skip["until"]) > now else None
    recovery = _query(user_pk, "RECOVERY#", count=True)

    enabled = bool(policy.get("available")) and bool(policy.get("enabled"))
    enforcement = policy.get("enforcement", "optional")
    required = enforcement == "required"
    enrolled = bool(phones)
    email_verified = bool(profile and profile.get("email_verified"))
    prompt = (
        enabled
        and bool(policy.get("include_in_signup"))
        and not enrolled
        and email_verified
        and (required or skipped_until is None)
    )
    return _response(
        200,
        {
            "enabled": enabled,
            "enforcement": enforcement,
            "enrolled": enrolled,
            "email_verified": email_verified,
            "prompt": "enroll" if prompt else "none",
            "can_skip": enabled and not required and not enrolled,
            "skipped_until": _ts(skipped_until),
            "phones": [
                {
                    "phone_id": p["phone_id"],
                    "masked": _masked(p["number"]),
                    "label": p.get("label"),
                    "primary": p["primary"],
                    "verified_at": _ts(p["verified_at"]),
                }
                for p in phones
            ],
            "recovery_codes_remaining": recovery,
        },
    )
