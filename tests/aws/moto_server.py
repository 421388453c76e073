"""A moto server process on 127.0.0.1, reached by boto3 through AWS_ENDPOINT_URL.

One process per test session; each test starts from an empty account (moto's reset API).
Fake credentials only: nothing here can reach a real AWS endpoint.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


@dataclass(frozen=True)
class MotoServer:
    url: str

    def env(self) -> dict[str, str]:
        """The variables a boto3 client (or a prism-dr subprocess) needs to use this server."""
        return {**FAKE_ENV, "AWS_ENDPOINT_URL": self.url}

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).close()

    def enforce_iam(self, free_requests: float) -> None:
        """moto checks every request's signature and IAM policy once `free_requests` more
        requests have passed (`inf`: never, moto's default). moto's POST /moto-api/reset-auth
        reads the number from the raw body (moto/moto_api/_internal/responses.py)."""
        request = urllib.request.Request(
            f"{self.url}/moto-api/reset-auth",
            data=str(free_requests).encode(),
            method="POST",
            headers={"Content-Type": "text/plain"},  # not a form: the body must stay raw
        )
        urllib.request.urlopen(request, timeout=10).close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def moto_server() -> Iterator[MotoServer]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **FAKE_ENV},
    )
    server = MotoServer(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{server.url}/moto-api/", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the moto server did not start") from None
                time.sleep(0.1)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
