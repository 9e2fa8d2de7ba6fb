"""Starts the real `hearth serve` binary and sets up a household over HTTP, for the
`security` tier's tools (schemathesis, the load test). Standard library only, so it runs
with any python3 and inside the schemathesis venv alike.

    server = Server.start(binary, workdir)        # unclaimed, HTTP on 127.0.0.1:<free port>
    house = server.household(media="/path/to/media")   # owner, managed profile, friend, library
    server.stop()
"""

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request

OWNER_PASSWORD = "correct horse battery staple"


class HttpError(Exception):
    def __init__(self, status, body):
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


def request(base, method, path, token=None, body=None, timeout=30, source=None):
    """One JSON request; `source` picks the client address (any 127.x.y.z works on
    loopback), e.g. to sign in again from an address no fuzzer has throttled."""
    data = None if body is None else json.dumps(body).encode()
    if source:
        host, port = base.removeprefix("http://").rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout,
                                          source_address=(source, 0))
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            headers["Authorization"] = "Bearer " + token
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        conn.close()
        parsed = json.loads(raw) if raw else None
        if resp.status >= 400:
            raise HttpError(resp.status, parsed)
        return resp.status, parsed
    req = urllib.request.Request(base + path, data=data, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw.decode(errors="replace")
        raise HttpError(e.code, parsed) from None


class Server:
    def __init__(self, binary, data, log_path, proc, base, env):
        self.binary = binary
        self.data = data
        self.log_path = log_path
        self.proc = proc
        self.base = base
        self.env = env

    @classmethod
    def start(cls, binary, workdir, env=None, http="127.0.0.1:0"):
        """Starts `hearth serve` on `workdir/data` and waits until health answers."""
        data = os.path.join(workdir, "data")
        os.makedirs(data, exist_ok=True)
        log_path = os.path.join(workdir, "serve.log")
        full_env = dict(os.environ)
        full_env.setdefault("HEARTH_LOG", "warn,hearth=info")
        full_env.update(env or {})
        offset = os.path.getsize(log_path) if os.path.exists(log_path) else 0
        log = open(log_path, "ab")
        proc = subprocess.Popen(
            [binary, "serve", "--data", data, "--http", http, "--https", "off"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
        )
        log.close()
        deadline = time.monotonic() + 60
        base = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"hearth serve exited: {open(log_path).read()[-2000:]}")
            with open(log_path, errors="replace") as f:
                f.seek(offset)  # this start's lines only (the log is kept across restarts)
                found = re.findall(r"listening on (http://[0-9.:]+)", f.read())
            if found:
                base = found[0]
                try:
                    request(base, "GET", "/api/v1/health", timeout=2)
                    break
                except (OSError, HttpError):
                    pass
            time.sleep(0.05)
        else:
            proc.kill()
            raise RuntimeError("hearth serve did not answer health in 60 s")
        return cls(binary, data, log_path, proc, base, full_env)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self):
        """SIGKILL: no shutdown, no flush; what a power cut does to the process."""
        self.proc.kill()
        self.proc.wait()

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def call(self, method, path, token=None, body=None):
        return request(self.base, method, path, token, body)

    def setup_code(self):
        with open(os.path.join(self.data, "setup-code")) as f:
            return f.read().strip()

    def claim(self):
        _, r = self.call(
            "POST",
            "/api/v1/setup/claim",
            body={
                "setup_code": self.setup_code(),
                "server_name": "Den",
                "owner": {"username": "anna", "password": OWNER_PASSWORD},
                "device": {"name": "harness", "platform": "test", "client_id": "harness"},
            },
        )
        return r["token"]

    def login(self, username, password, client_id):
        _, r = self.call(
            "POST",
            "/api/v1/auth/login",
            body={
                "username": username,
                "password": password,
                "device": {"name": client_id, "platform": "test", "client_id": client_id},
            },
        )
        return r["token"]

    def add_library(self, owner, name, kind, folder):
        _, lib = self.call(
            "POST", "/api/v1/libraries", owner, {"name": name, "kind": kind, "folders": [folder]}
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            _, scan = self.call("GET", f"/api/v1/libraries/{lib['id']}/scan", owner)
            if not scan["progress"]["running"]:
                return lib["id"]
            time.sleep(0.1)
        raise RuntimeError("library scan did not finish")

    def household(self, media=None):
        """Claims the server and makes one of each kind of caller; returns their tokens and
        the ids of what they can reach."""
        owner = self.claim()
        house = {"owner": owner, "libraries": []}
        if media:
            for name, kind in [("Films", "movies"), ("Shows", "shows"), ("Music", "music")]:
                folder = os.path.join(media, {"movies": "Movies"}.get(kind, name))
                if os.path.isdir(folder):
                    house["libraries"].append(self.add_library(owner, name, kind, folder))
        _, kid = self.call("POST", "/api/v1/users", owner, {"kind": "managed", "name": "Kit"})
        house["managed_id"] = kid["id"]
        # A second owner device, switched down to the managed profile: a household tablet.
        tablet = self.login("anna", OWNER_PASSWORD, "tablet")
        self.call("POST", "/api/v1/auth/switch", tablet, {"user_id": kid["id"]})
        house["managed"] = tablet
        _, invite = self.call("POST", "/api/v1/invites", owner, {"invitee": "ben"})
        _, friend = self.call(
            "POST",
            f"/api/v1/invites/{invite['token']}/accept",
            body={
                "username": "ben",
                "password": "a long friendly passphrase",
                "device": {"name": "ben-phone", "platform": "test", "client_id": "ben"},
            },
        )
        house["friend"] = friend["token"]
        return house


def copy_media(src, dest):
    """A private copy of the test media, so nothing a test does touches the generated one."""
    if os.path.exists(dest):
        shutil.rmtree(dest)
    shutil.copytree(src, dest, symlinks=False)
    return dest


def find_media():
    """The generated test media (tests/media/test-media makes it once into the build products)."""
    here = os.path.dirname(os.path.abspath(__file__))
    script = os.path.join(here, "../media/test-media")
    out = subprocess.run([script], check=True, stdout=subprocess.PIPE, text=True)
    return out.stdout.strip()
