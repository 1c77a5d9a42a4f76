"""What ``keyplane serve`` prints as it starts: where it listens, and the first start's block.

The migrations' own log lines are kept out of the way (``quiet_migrations``)
and the first-start block comes last, once the server accepts requests, so
the secrets a new user must save are the last thing on the screen.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from keyplane.cli.output import say
from keyplane.domain.timefmt import format_timestamp
from keyplane.services.bootstrap import FirstStart


def announce(first: FirstStart, base_url: str) -> None:
    """Print the first admin's credentials once, to the terminal, not to any log."""
    lines = [
        "",
        "keyplane first start: created a customer, an admin agent and an access key.",
        "These secrets are shown ONCE and are not stored anywhere. Save them now.",
        "",
        f"  customer     {first.customer.name} ({first.customer.id})",
        f"  username     {first.agent.username}",
        f"  password     {first.password}",
        f"  access key   {first.token}",
        f"  expires      {format_timestamp(first.accesskey.tm_expire)}",
        "",
        "Try it:",
        f"  curl '{base_url}/v1.0/accesskeys?accesskey={first.token}'",
        "or, keeping the key out of URLs:",
        f"  curl -H 'Authorization: Bearer {first.token}' {base_url}/v1.0/accesskeys",
        "",
    ]
    say(*lines)


@contextmanager
def quiet_migrations() -> Iterator[None]:
    """Alembic's per-revision INFO lines left out; its warnings and errors still shown."""
    logger = logging.getLogger("alembic")
    level = logger.level
    logger.setLevel(max(logging.WARNING, level))
    try:
        yield
    finally:
        logger.setLevel(level)


def announce_start(url: str, first: FirstStart | None) -> None:
    """Where the server listens, on every start; then the first start's block, if any."""
    say(f"keyplane is listening on {url}")
    if first is not None:
        announce(first, url)
