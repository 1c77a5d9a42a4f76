"""benchmarks/seed.py fills a migrated database as planned, deterministically."""

from __future__ import annotations

import pytest
from benchmarks.seed import Plan, customer_id, key_id, main, seed, seeded_token
from sqlalchemy import func, select

from keyplane.domain.tokens import hash_token, is_wellformed
from keyplane.services.container import Services
from keyplane.store.tables import accesskeys, customers


async def test_seeding_makes_the_planned_customers_and_keys(services: Services) -> None:
    plan = Plan(customers=5, keys=1_203, big=600, deleted=50)
    await seed(services.settings.database_url, plan)
    async with services.database.reader() as repos:
        conn = repos.connection
        assert (await conn.execute(select(func.count()).select_from(customers))).scalar() == 5
        assert (await conn.execute(select(func.count()).select_from(accesskeys))).scalar() == 1_203
        big = await repos.accesskeys.list_live(customer_id(0), limit=1_000)
        other = await repos.accesskeys.list_live(customer_id(3), limit=1_000)
        found = await repos.accesskeys.get_by_hash(hash_token(seeded_token(700)))
    assert len(big) == 550  # its newest 50 are deleted
    assert big[0].id == key_id(549)  # newest live first
    assert len(other) == 151  # 603 keys over the 4 other customers, round robin
    assert found is not None
    assert found.id == key_id(700)
    assert found.customer_id == customer_id(plan.owner(700))
    assert all(is_wellformed(seeded_token(n)) for n in (0, 1_202))


def test_the_command_line_seeds_and_says_how_much(
    services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    url = services.settings.database_url
    assert main([url, "--customers", "3", "--keys", "40", "--big", "10"]) == 0
    assert capsys.readouterr().out.startswith("seeded 3 customers and 40 keys in ")


@pytest.mark.parametrize(
    "plan",
    [
        {"customers": 0, "keys": 1},
        {"customers": 2, "keys": 5, "big": 6},
        {"customers": 2, "keys": 5, "big": 2, "deleted": 3},
        {"customers": 1, "keys": 5, "big": 2},
    ],
)
def test_an_impossible_plan_is_refused(plan: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=r"customer|keys|deleted|big"):
        Plan(**plan)
