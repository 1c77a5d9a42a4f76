"""`make test` hands out the files that start servers first (tests/conftest.py).

xdist's own order (files with the most tests first) left a file of three tests
that take a minute, the benchmarks' smoke run, near the end of the run, with
the other worker idle until it finished.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from tests.conftest import _directory_rank, pytest_collection_modifyitems

TESTS = Path(__file__).parent.parent


def _item(path: str) -> Any:
    return SimpleNamespace(path=TESTS / path)


def test_files_that_start_servers_come_first_and_the_shuffle_stays_within_each_group() -> None:
    functional = [_item(f"functional/test_{n}.py") for n in range(5)]
    integration = [_item(f"integration/test_{n}.py") for n in range(5)]
    integration.append(_item("integration/admin/test_admin_routes.py"))
    unit = [_item(f"unit/test_{n}.py") for n in range(5)]
    elsewhere = [SimpleNamespace(path=TESTS.parent / "test_elsewhere.py")]
    items = [*functional, *integration, *unit, *elsewhere]
    random.Random(7).shuffle(items)

    ordered = list(items)
    pytest_collection_modifyitems(cast(list[pytest.Item], ordered))

    def shuffled(group: list[Any]) -> list[Any]:
        return [item for item in items if item in group]

    # A file outside tests/ (named on the command line) goes with the first group.
    first = shuffled([*functional, *elsewhere])
    assert ordered == [*first, *shuffled(integration), *shuffled(unit)]


def test_this_runs_collection_is_in_that_order(request: pytest.FixtureRequest) -> None:
    ranks = [_directory_rank(item) for item in request.session.items]
    assert ranks == sorted(ranks)


def test_make_test_keeps_the_collected_order() -> None:
    makefile = (TESTS.parent / "Makefile").read_text()
    recipe = re.search(r"^test:.*\n\t(.+)$", makefile, re.MULTILINE)
    assert recipe is not None
    assert "--dist loadfile --no-loadscope-reorder" in recipe.group(1)
