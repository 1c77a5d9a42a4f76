"""Long lists stream: each page is written before the next is fetched, nothing is kept."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from keyplane.cli import accesskeys as accesskey_commands
from keyplane.cli import listing
from keyplane.cli.listing import ListColumn, RowStream
from keyplane.client import Client

COLUMNS = (ListColumn("id", 36, no_wrap=True), ListColumn("name", 10))


def key_json(index: int) -> dict[str, Any]:
    return {
        "id": str(uuid.UUID(int=index + 1)),
        "customer_id": str(uuid.UUID(int=10**6)),
        "name": f"k{index}",
        "detail": "",
        "token_prefix": "vb_AAAAAAAA",
        "tm_expire": "2027-12-01T10:15:30.123456Z",
        "tm_create": "2026-12-01T10:15:30.123456Z",
        "tm_update": None,
        "tm_delete": None,
        "tm_last_used": None,
        "tm_disable": None,
        "rotated_to": None,
    }


@pytest.fixture
def written(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    chunks: list[str] = []
    monkeypatch.setattr(listing, "write", chunks.append)
    monkeypatch.setattr(listing, "wants_json", lambda flag: flag)
    return chunks


def test_json_is_one_array_written_page_by_page(written: list[str]) -> None:
    with RowStream(COLUMNS, as_json=True, title="t") as out:
        out.page([{"id": "a"}, {"id": "b"}])
        out.page([{"id": "c"}])
    assert len(written) == 3  # two pages, then the closing bracket
    assert [row["id"] for row in json.loads("".join(written))] == ["a", "b", "c"]
    lines = "".join(written).splitlines()
    assert lines == ["[", '  {"id": "a"},', '  {"id": "b"},', '  {"id": "c"}', "]"]


def test_an_empty_list_is_an_empty_array(written: list[str]) -> None:
    with RowStream(COLUMNS, as_json=True, title="t"):
        pass
    assert json.loads("".join(written)) == []


def test_table_pages_share_one_header(written: list[str]) -> None:
    with RowStream(COLUMNS, as_json=False, title="keys") as out:
        out.page([{"id": str(uuid.UUID(int=1)), "name": "a"}])
        out.page([{"id": str(uuid.UUID(int=2)), "name": "b"}])
    assert "id" in written[0]
    assert "name" not in written[1]  # no second header
    assert str(uuid.UUID(int=2)) in written[1]  # the full id, never cut


def serve_pages(total: int, fetched: list[int]) -> Client:
    def handler(request: httpx.Request) -> httpx.Response:
        start = int(request.url.params.get("page_token") or 0)
        size = int(request.url.params["page_size"])
        fetched.append(start)
        result = [key_json(index) for index in range(start, min(start + size, total))]
        following = str(start + len(result)) if result else ""
        return httpx.Response(200, json={"result": result, "next_page_token": following})

    return Client(
        "http://keyplane.test", accesskey="vb_" + "A" * 32, transport=httpx.MockTransport(handler)
    )


def test_remote_list_writes_each_page_before_fetching_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fetched: list[int] = []
    fetched_at_write: list[int] = []
    monkeypatch.setattr(listing, "write", lambda text: fetched_at_write.append(len(fetched)))
    monkeypatch.setattr(listing, "wants_json", lambda flag: flag)
    with serve_pages(250, fetched) as client, RowStream(COLUMNS, as_json=True, title="") as out:
        accesskey_commands._stream_remote(client, out, None)
        assert out.count == 250
    assert fetched == [0, 100, 200]
    assert fetched_at_write[:3] == [1, 2, 3]  # page n written when n pages were fetched


def test_remote_list_limit_fetches_no_more_than_needed(written: list[str]) -> None:
    fetched: list[int] = []
    with serve_pages(1000, fetched) as client, RowStream(COLUMNS, as_json=True, title="") as out:
        accesskey_commands._stream_remote(client, out, 150)
    assert fetched == [0, 100]
    assert len(json.loads("".join(written))) == 150


@dataclass
class _Page:
    items: list[Any]
    next_page_token: str


class _FakeAccesskeys:
    """A store of ``total`` keys answering pages, counting the pages asked for."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.calls = 0

    async def list_page(
        self, identity: Any, customer_id: Any, *, page_size: int, cursor: Any
    ) -> _Page:
        start = self.calls * 100
        self.calls += 1
        items = [_Key(index) for index in range(start, min(start + page_size, self.total))]
        return _Page(items=items, next_page_token="x" if items else "")


class _Key:
    def __init__(self, index: int) -> None:
        self.id = uuid.UUID(int=index + 1)
        self.tm_create = datetime(2026, 1, 1, tzinfo=UTC)


class _FakeServices:
    def __init__(self, total: int) -> None:
        self.accesskeys = _FakeAccesskeys(total)


async def test_local_pages_are_fetched_lazily() -> None:
    services = _FakeServices(250)
    pages = accesskey_commands.local_pages(services, uuid.uuid4(), None)  # type: ignore[arg-type]
    first = await anext(pages)
    assert len(first) == 100
    assert services.accesskeys.calls == 1  # the next page is not read before it is wanted
    rest = [page async for page in pages]
    assert [len(page) for page in rest] == [100, 50]
    assert services.accesskeys.calls == 3


async def test_local_pages_honour_the_limit() -> None:
    services = _FakeServices(1000)
    pages = [page async for page in accesskey_commands.local_pages(services, uuid.uuid4(), 120)]  # type: ignore[arg-type]
    assert [len(page) for page in pages] == [100, 20]
    assert services.accesskeys.calls == 2


class _FakeProgress:
    def __init__(self) -> None:
        self.events: list[str] = []

    def add_task(self, description: str, total: int | None) -> int:
        self.events.append(f"task {total}")
        return 1

    def start(self) -> None:
        self.events.append("start")

    def update(self, task: int, completed: int) -> None:
        self.events.append(f"at {completed}")

    def stop(self) -> None:
        self.events.append("stop")


def test_a_progress_bar_only_after_a_second(
    monkeypatch: pytest.MonkeyPatch, written: list[str]
) -> None:
    bar = _FakeProgress()
    monkeypatch.setattr(listing, "progress_bar", lambda total: bar)
    moments = iter([0.0, 0.5, 1.5, 2.0])
    with RowStream(COLUMNS, as_json=True, title="", total=30, clock=lambda: next(moments)) as out:
        out.page([{"id": "a"}] * 10)  # at 0.5 s: no bar yet
        assert bar.events == []
        out.page([{"id": "b"}] * 10)  # at 1.5 s: the bar appears
        out.page([{"id": "c"}] * 10)
    assert bar.events == ["task 30", "start", "at 20", "at 30", "stop"]


def test_no_progress_bar_when_nobody_watches() -> None:
    # Under pytest standard error is captured, not a terminal.
    assert listing.progress_bar(10) is None
