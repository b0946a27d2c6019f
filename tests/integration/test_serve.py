"""``notibot serve`` for real: a subprocess on a free port, on the embedded default.

Needs no outside server, so it is never skipped.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

PASSWORD_LINE = re.compile(r"created user 'admin' with password (\S+)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _request(url: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def test_serve_answers_health_and_the_printed_admin_password_logs_in(tmp_path: Path) -> None:
    port = _free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("NOTIBOT_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "notibot", "serve", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.extend(iter(process.stderr.readline, "")),
                              daemon=True)
    reader.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        status = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                status, _ = _request(f"{base}/health")
            except (OSError, ValueError):
                status = None
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200, f"no healthy server within 20 s; stderr:\n{''.join(stderr)}"

        passwords = [m.group(1) for line in stderr if (m := PASSWORD_LINE.search(line))]
        assert len(passwords) == 1, "".join(stderr)

        status, tokens = _request(f"{base}/auth/login",
                                  {"username": "admin", "password": passwords[0]})
        assert status == 200, tokens
        assert tokens["token_type"] == "bearer"

        status, me = _request(f"{base}/auth/me", token=tokens["access_token"])
        assert status == 200, me
        assert me["username"] == "admin"
        assert me["role"] == "admin"

        status, _ = _request(f"{base}/auth/login", {"username": "admin", "password": "wrong-pw"})
        assert status == 401
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(timeout=5)
    assert process.returncode in (0, -15), "".join(stderr)
    assert "Traceback" not in "".join(stderr)
