"""schemathesis hooks for the `security` tier (loaded with SCHEMATHESIS_HOOKS=st_hooks).

- `error_shape`: every 4xx/5xx answer to an API path carries the JSON error shape
  `{"error": {"code": "snake_case", "message": "..."}}` (API.md).
- `HearthAuth`: signs the role in again whenever its token stops working, so a generated
  request that revokes the caller's own device (or switches its profile) does not turn the
  rest of the run into 401s. The role and the credentials come from the environment that
  tests/security/api-fuzz sets.
"""

import json
import os
import re
import secrets
import sys
import time

import schemathesis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HttpError, request  # noqa: E402

CODE = re.compile(r"^[a-z][a-z0-9_]*$")


@schemathesis.check
def error_shape(ctx, response, case):
    if response.status_code < 400:
        return None
    path = case.formatted_path if hasattr(case, "formatted_path") else case.path
    if not str(path).startswith("/api/"):
        return None
    try:
        body = json.loads(response.content or b"")
    except ValueError:
        raise AssertionError(
            f"{response.status_code} answer is not JSON: {response.content[:200]!r}"
        )
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        raise AssertionError(f"{response.status_code} answer has no error object: {body!r}")
    code, message = err.get("code"), err.get("message")
    if not isinstance(code, str) or not CODE.match(code):
        raise AssertionError(f"error code is not snake_case: {code!r}")
    if not isinstance(message, str) or not message.strip():
        raise AssertionError(f"error message is empty: {body!r}")
    if response.status_code == 429 and "retry-after" not in {
        k.lower() for k in response.headers
    }:
        raise AssertionError("429 without Retry-After")
    return None


ROLE = os.environ.get("HEARTH_ROLE", "anonymous")
BASE = os.environ.get("HEARTH_BASE", "")


def _login(username, password):
    """Signs in from a loopback address of its own (the fuzzer's failed sign-ins throttle
    127.0.0.1) as a new device (the fuzzer may have blocked the last one)."""
    tag = secrets.randbelow(250) + 2
    client = "st-" + secrets.token_hex(4)
    for _ in range(10):
        try:
            _, r = request(BASE, "POST", "/api/v1/auth/login", source=f"127.0.{tag}.{tag}", body={
                "username": username, "password": password,
                "device": {"name": client, "platform": "test", "client_id": client}})
            return r["token"]
        except HttpError as e:
            if e.status != 429:
                raise
            # The per-account lane is capped at 30 s; try a few times across it.
            time.sleep(5)
    raise RuntimeError(f"could not sign {username} in again")


def _fresh_token():
    """Signs the role in again over HTTP."""
    password = os.environ["HEARTH_OWNER_PASSWORD"]
    if ROLE == "owner":
        return _login("anna", password)
    if ROLE == "managed":
        # A household tablet: the owner signs in, then switches down to the profile. If the
        # fuzzer gave the profile a PIN, the owner clears it first.
        token = _login("anna", password)
        kid = int(os.environ["HEARTH_MANAGED_ID"])
        try:
            request(BASE, "POST", "/api/v1/auth/switch", token, {"user_id": kid})
        except HttpError:
            owner = _login("anna", password)
            request(BASE, "PUT", f"/api/v1/users/{kid}/pin", owner, {"pin": None})
            request(BASE, "POST", "/api/v1/auth/switch", token, {"user_id": kid})
        return token
    if ROLE == "friend":
        return _login("ben", os.environ["HEARTH_FRIEND_PASSWORD"])
    return None


def _still_good(token):
    try:
        _, me = request(BASE, "GET", "/api/v1/me", token, timeout=10)
    except HttpError:
        return False
    if ROLE == "managed":
        return me["user"]["id"] == int(os.environ["HEARTH_MANAGED_ID"])
    return True


if ROLE != "anonymous":

    @schemathesis.auth(refresh_interval=None)
    class HearthAuth:
        token = os.environ.get("HEARTH_TOKEN")

        def get(self, case, ctx):
            if not self.token or not _still_good(self.token):
                HearthAuth.token = _fresh_token()
            return HearthAuth.token

        def set(self, case, data, ctx):
            case.headers = case.headers or {}
            case.headers["Authorization"] = f"Bearer {data}"
