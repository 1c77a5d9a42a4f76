"""No statement parameter in any log line or error, whatever the failure (PostgreSQL)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from keyplane.domain.clock import FrozenClock
from keyplane.services.container import Services, build_services
from keyplane.web.app import create_app
from tests.conftest import START, empty_tables, make_settings
from tests.factories import Factory
from tests.integration.conftest import KEYS, assert_error
from tests.logcapture import captured_logging
from tests.servers import PostgresServer

CANARY = "canary-" + "f3a9c1d7e5"
HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
FAIL_INSERTS = """
CREATE OR REPLACE FUNCTION keyplane_test_refuse() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'refused by a test trigger' USING ERRCODE = 'XX000'; END
$$ LANGUAGE plpgsql;
CREATE TRIGGER keyplane_test_refuse BEFORE INSERT ON accesskeys
FOR EACH ROW EXECUTE FUNCTION keyplane_test_refuse();
"""
UNDO = """
DROP TRIGGER IF EXISTS keyplane_test_refuse ON accesskeys;
DROP FUNCTION IF EXISTS keyplane_test_refuse();
"""


@pytest.fixture
async def pg_services(postgres: PostgresServer, tmp_path: Path) -> AsyncIterator[Services]:
    built = build_services(
        make_settings(tmp_path, database_url=postgres.url()), clock=FrozenClock(START)
    )
    await built.migrate()
    await empty_tables(built)
    try:
        yield built
    finally:
        await built.close()


async def _run_script(services: Services, script: str) -> None:
    async with services.database.engine.begin() as conn:
        for statement in script.split(";\n"):
            if statement.strip():
                await conn.exec_driver_sql(statement)


async def test_a_failed_statement_never_shows_its_parameters(pg_services: Services) -> None:
    secret_hash = hashlib.sha256(CANARY.encode()).hexdigest()
    with pytest.raises(DBAPIError) as caught:
        async with pg_services.database.engine.connect() as conn:
            await conn.execute(
                text("SELECT 1 / 0 WHERE :token_hash <> ''"), {"token_hash": secret_hash}
            )
    assert secret_hash not in str(caught.value)
    assert "parameters hidden" in str(caught.value)


async def test_a_failing_insert_logs_a_traceback_without_parameters(
    pg_services: Services,
) -> None:
    factory = Factory(pg_services)
    customer = await factory.customer()
    key = await factory.identity_token(customer)
    app = create_app(pg_services.settings, services=pg_services)
    await _run_script(pg_services, FAIL_INSERTS)
    try:
        with captured_logging("json") as logs:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                response = await http.post(
                    KEYS,
                    json={"name": CANARY, "detail": CANARY, "expire": 86_400},
                    headers={"Authorization": f"Bearer {key}"},
                )
    finally:
        await _run_script(pg_services, UNDO)
    assert_error(response, 500, "INTERNAL", "INTERNAL_ERROR")
    output = logs.getvalue()
    assert "refused by a test trigger" in output, "the failure was logged, with its traceback"
    assert "Traceback" in output
    assert CANARY not in output
    assert "[parameters:" not in output
    assert not HEX_DIGEST.search(output), "a token hash reached the log"
