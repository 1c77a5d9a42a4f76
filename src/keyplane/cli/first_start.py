"""The one-time message of the first start."""

from __future__ import annotations

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
