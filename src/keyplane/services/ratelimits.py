"""Who may try again, and when.

- Per customer, for every authenticated request: generous, so normal use and
  scripts never meet it.
- Per client address, for failed authentication: slows a guesser hard.
- Per username and client address, for failed logins: slows password
  guessing without letting anyone lock a real user out from elsewhere.

An address that has run out of failure budget is refused before its
credential is even looked at; the failure that exhausts it is answered with
429 too. The refusal is remembered in this replica until the budget refills,
so a request with a good credential costs one limiter call (the customer's),
and one that fails costs one more. A login spends its slot *before* the
password is checked (and gets it back when the password was right), so
parallel guesses cannot outrun the budget.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import OrderedDict

from keyplane.cache.ratelimit import Decision, Limiter, Policy
from keyplane.errors import ResourceExhausted

MAX_BLOCKED = 100_000


def exhausted(decision: Decision, message: str, reason: str) -> ResourceExhausted:
    return ResourceExhausted(
        message,
        reason=reason,
        retry_after=max(1, math.ceil(decision.retry_after)),
        limit=decision.limit,
        reset_after=decision.reset_after,
    )


class RateLimits:
    def __init__(
        self,
        limiter: Limiter,
        *,
        customer: Policy,
        auth_failures: Policy,
        login_failures: Policy,
    ) -> None:
        self.limiter = limiter
        self.customer = customer
        self.auth_failures = auth_failures
        self.login_failures = login_failures
        self._blocked: OrderedDict[str, tuple[float, Decision]] = OrderedDict()

    async def consume_customer(self, customer_id: uuid.UUID) -> Decision:
        decision = await self.limiter.hit(self.customer, str(customer_id))
        if not decision.allowed:
            raise exhausted(
                decision,
                "This customer is sending too many requests; retry after the time in Retry-After.",
                "RATE_LIMIT_EXCEEDED",
            )
        return decision

    def ensure_not_blocked(self, key: str) -> None:
        found = self._blocked.get(key)
        if found is None:
            return
        until, decision = found
        now = time.monotonic()
        if until <= now:
            del self._blocked[key]
            return
        raise exhausted(
            Decision(False, decision.limit, 0, until - now, until - now),
            "Too many failed attempts from this address; retry after the time in Retry-After.",
            "RATE_LIMIT_EXCEEDED",
        )

    async def auth_failed(self, client: str) -> None:
        await self._spend(self.auth_failures, f"ip:{client}")

    def ensure_auth_allowed(self, client: str) -> None:
        self.ensure_not_blocked(f"authfail:ip:{client}")

    async def reserve_login(self, username: str, client: str) -> None:
        """Spend one login attempt of this username from this address, or raise 429."""
        self.ensure_auth_allowed(client)
        await self._spend(self.login_failures, f"user:{username}|{client}")

    async def login_succeeded(self, username: str, client: str) -> None:
        """A right password gives its attempt back."""
        await self.limiter.refund(self.login_failures, f"user:{username}|{client}")

    async def login_failed(self, client: str) -> None:
        await self.auth_failed(client)

    async def _spend(self, policy: Policy, key: str) -> None:
        """One attempt from the budget; the attempt that finds it empty is refused too."""
        blocked_key = f"{policy.name}:{key}"
        self.ensure_not_blocked(blocked_key)
        decision = await self.limiter.hit(policy, key)
        if not decision.allowed:
            self._block(blocked_key, decision)
            self.ensure_not_blocked(blocked_key)

    def _block(self, key: str, decision: Decision) -> None:
        self._blocked[key] = (time.monotonic() + decision.retry_after, decision)
        self._blocked.move_to_end(key)
        while len(self._blocked) > MAX_BLOCKED:
            self._blocked.popitem(last=False)
