"""Database errors that mean "not now" become 503, whatever the driver calls them."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError

from keyplane.errors import Unavailable
from keyplane.store.engine import Database


class DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__("driver says no")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    "sqlstate",
    ["57P03", "57P01", "57P02", "08006", "08001"],  # shutting down, admin/crash shutdown, lost
)
async def test_a_server_refusing_work_is_unavailable(sqlstate: str) -> None:
    with pytest.raises(Unavailable):
        async with Database.mapped_errors():
            raise DBAPIError("SELECT 1", None, DriverError(sqlstate))


async def test_other_driver_errors_are_not_hidden() -> None:
    with pytest.raises(DBAPIError):
        async with Database.mapped_errors():
            raise DBAPIError("SELECT 1", None, DriverError("42601"))  # a syntax error
