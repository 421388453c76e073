"""Fixtures for code that talks to AWS: a moto server on 127.0.0.1, reset for every test."""

from __future__ import annotations

import pytest

from tests.aws.moto_server import MotoServer, moto_server


@pytest.fixture(scope="session")
def moto_session() -> MotoServer:
    with moto_server() as server:
        yield server


@pytest.fixture
def moto(moto_session: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """An empty fake account; boto3 in this process and its children point at it."""
    moto_session.reset()
    for key, value in moto_session.env().items():
        monkeypatch.setenv(key, value)
    return moto_session
