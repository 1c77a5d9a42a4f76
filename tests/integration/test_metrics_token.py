"""KEYPLANE_METRICS_TOKEN: /metrics open without it, a bearer token's alone with it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from keyplane.domain.clock import FrozenClock
from keyplane.settings import Settings
from tests.conftest import replica
from tests.integration.conftest import assert_error

SCRAPE_TOKEN = "scrape-" + "t0ken-" * 6


async def test_unset_leaves_metrics_open(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    async with replica(tmp_path, database_url, clock) as one, one.client() as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert "keyplane_verifications_total" in response.text


async def test_set_answers_only_the_token(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    async with (
        replica(tmp_path, database_url, clock, metrics_token=SCRAPE_TOKEN) as one,
        one.client() as http,
    ):
        good = await http.get("/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"})
        lower = await http.get("/metrics", headers={"Authorization": f"bearer {SCRAPE_TOKEN}"})
        missing = await http.get("/metrics")
        wrong = await http.get("/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}x"})
        prefix = await http.get("/metrics", headers={"Authorization": "Bearer scrape-"})
        basic = await http.get("/metrics", headers={"Authorization": f"Basic {SCRAPE_TOKEN}"})
        query = await http.get("/metrics", params={"token": SCRAPE_TOKEN})
    assert good.status_code == 200, good.text
    assert "keyplane_verifications_total" in good.text
    assert lower.status_code == 200
    for refused in (missing, wrong, prefix, basic, query):
        message = assert_error(refused, 401, "UNAUTHENTICATED", "METRICS_TOKEN_REQUIRED")
        assert "KEYPLANE_METRICS_TOKEN" in message
        assert SCRAPE_TOKEN not in refused.text
        assert "keyplane_" not in refused.text


def test_an_empty_token_is_unset_and_a_spaced_one_refused() -> None:
    assert Settings(metrics_token="").metrics_token is None
    with pytest.raises(ValidationError, match="metrics_token"):
        Settings(metrics_token=" padded ")
