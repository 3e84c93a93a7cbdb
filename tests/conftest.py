"""Shared fixtures: the real third-party data folder, node homes, a real HTTP server, both store backends,
and a free port for servers the tests start in their own processes."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from kuroshio.node import Node
from kuroshio.principals import Role
from kuroshio.store import Store

_DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DATA = Path(os.environ.get("KUROSHIO_DATA", str(_DEFAULT_DATA)))
POSTGRES_URL = os.environ.get("KUROSHIO_TEST_POSTGRES")
PASSWORD = "correct horse battery staple"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"real third-party data not found at {DATA} (set KUROSHIO_DATA to its folder)")
    return DATA


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = Node.init(tmp_path / "node", "TWN", org_name="Taiwan")
    n.add_user("alice", Role.CONTRIBUTOR, password=PASSWORD)
    n.add_user("rita", Role.READER, password=PASSWORD)
    n.add_user("root", Role.ADMIN, password=PASSWORD)
    yield n
    n.close()


class RunningServer:
    def __init__(self, node: Node) -> None:
        from kuroshio.taxii import create_app

        self.node = node
        from kuroshio.tls import server_config

        self.scheme = "https" if node.config.tls_cert else "http"
        config = server_config(node, create_app(node), "127.0.0.1", 0, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> RunningServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.base = f"{self.scheme}://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    @property
    def discovery(self) -> str:
        return f"{self.base}/taxii2/"

    def root_url(self) -> str:
        return f"{self.base}/{self.node.config.default_api_root}/"


@pytest.fixture
def server(node: Node) -> Iterator[RunningServer]:
    with RunningServer(node) as running:
        yield running


def _open_backend(kind: str, tmp_path: Path) -> Store:
    if kind == "sqlite":
        from kuroshio.store.sqlite import SqliteStore

        return SqliteStore(tmp_path / "store.db")
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL tests need KUROSHIO_TEST_POSTGRES=postgresql://USER@HOST/DB (.ci/run sets it "
                    "when a server answers on 127.0.0.1:5432)")
    from kuroshio.store.postgres import PostgresStore

    return PostgresStore(POSTGRES_URL, schema=f"kuroshio_test_{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s = _open_backend(request.param, tmp_path)
    s.migrate()
    yield s
    drop = getattr(s, "drop_schema", None)
    if drop is not None:
        drop()
    s.close()
