"""keyplane.client against a real server, and docs/client.md's examples run as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyplane.client import (
    Accesskey,
    AccesskeyIdentity,
    Agent,
    AsyncClient,
    AuthenticationError,
    Client,
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
)
from tests.functional.conftest import (
    CLI_TIMEOUT,
    FirstStartBlock,
    ServerLauncher,
    ServerProcess,
    Workspace,
    parse_first_start,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
# The Python blocks that need a live server: all of docs/client.md, and README.md's.
DOCS = [ROOT / "docs" / "client.md", ROOT / "README.md"]
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, FirstStartBlock]]:
    root = tmp_path_factory.mktemp("client")
    workspace = Workspace(cwd=root / "cwd", data_dir=root / "data")
    workspace.cwd.mkdir()
    workspace.data_dir.mkdir()
    workspace.env_overrides.update(
        {"KEYPLANE_BOOTSTRAP": "true", "KEYPLANE_SESSION_COOKIE_SECURE": "false"}
    )
    launcher = ServerLauncher(workspace)
    try:
        server = launcher.start()
        yield server, parse_first_start(server.stdout())
    finally:
        launcher.cleanup()


def test_the_key_lifecycle(live: tuple[ServerProcess, FirstStartBlock]) -> None:
    server, first = live
    with Client(server.base_url, accesskey=first.token) as client:
        me = client.whoami()
        assert isinstance(me, AccesskeyIdentity)
        assert str(me.customer_id) == first.customer_id

        new = client.accesskeys.create(name="live", detail="d", expire=86400)
        assert isinstance(new, Accesskey)
        assert new.token is not None
        assert new.token_prefix == new.token[:11]
        assert (new.tm_expire - new.tm_create).total_seconds() == 86400

        assert client.accesskeys.get(new.id).token is None
        assert client.accesskeys.update(new.id, name="renamed").detail == ""
        assert client.accesskeys.disable(new.id).state == "disabled"
        assert not client.verify(new.token).valid
        assert client.accesskeys.enable(new.id).state == "active"
        verified = client.verify(new.token)
        assert verified.valid
        assert verified.identity_id == new.id

        rotated = client.accesskeys.rotate(new.id, grace=60)
        assert rotated.token not in (None, new.token)
        assert client.accesskeys.get(new.id, expand="all").state == "rotating"
        ids = [key.id for key in client.accesskeys.iter(page_size=1)]
        assert ids[:2] == [rotated.id, new.id]  # newest first, across pages of one

        deleted = client.accesskeys.delete(rotated.id)
        assert deleted.tm_delete is not None
        with pytest.raises(ConflictError) as conflict:
            client.accesskeys.get(rotated.id)
        assert conflict.value.reason == "STATE_INVALID"
        assert conflict.value.request_id
        with pytest.raises(NotFoundError):
            client.accesskeys.get(uuid.uuid4())
        with pytest.raises(InvalidArgumentError):
            client.accesskeys.create(expire=60)


def test_login_and_customer(live: tuple[ServerProcess, FirstStartBlock]) -> None:
    server, first = live
    with Client(server.base_url) as client:
        with pytest.raises(AuthenticationError):
            client.whoami()
        session = client.login(first.username, first.password)
        assert session.username == first.username
        me = client.whoami()
        assert isinstance(me, Agent)
        before = client.customer.get()
        after = client.customer.update(address="1 Main St")
        assert after.address == "1 Main St"
        assert after.name == before.name
        assert after.tm_update is not None


def test_credentials_in_the_url_when_asked(live: tuple[ServerProcess, FirstStartBlock]) -> None:
    server, first = live
    with Client(server.base_url, accesskey=first.token, credentials_in_url=True) as client:
        assert str(client.whoami().customer_id) == first.customer_id


async def test_async_client(live: tuple[ServerProcess, FirstStartBlock]) -> None:
    server, first = live
    async with AsyncClient(server.base_url, accesskey=first.token) as client:
        keys = [key async for key in client.accesskeys.iter()]
        assert keys
        assert (await client.verify()).valid


def test_the_docs_examples_run(live: tuple[ServerProcess, FirstStartBlock]) -> None:
    server, first = live
    blocks = [b for doc in DOCS for b in PYTHON_BLOCK.findall(doc.read_text(encoding="utf-8"))]
    assert len(blocks) >= 8
    env = {
        **os.environ,
        "KP": server.base_url,
        "KEY": first.token,
        "PASSWORD": first.password,
        "KP_USERNAME": first.username,
    }
    for block in blocks:
        result = subprocess.run(
            [sys.executable, "-c", block],
            env=env,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            check=False,
        )
        assert result.returncode == 0, f"{block}\n---\n{result.stderr}"
        assert first.token not in result.stdout
