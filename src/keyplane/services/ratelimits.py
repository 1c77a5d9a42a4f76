"""Who may try again, and when.

- Per customer, for every authenticated request: generous, so normal use and
  scripts never meet it.
- Per client address, for failed authentication: slows a guesser hard.
- Per username and client address, for failed logins: slows password
  guessing without letting anyone lock a real user out from elsewhere.

Every credential is looked at on a slot of its address's failure budget,
taken *before* the credential is evaluated and given back when it was good
(or when there was no verdict: the database was away, a timeout, a
cancelled request), so a burst of N
parallel guesses can never test more than the budget. A login takes a slot of
the address and one of the username from that address the same way. An
address out of budget is refused with 429 before its credential is looked
at, and the refusal is remembered in this replica until the budget refills.
A credential this replica has already verified (its cache vouches for it)
costs one limiter call, the customer's.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from keyplane.cache.ratelimit import Decision as Decision  # re-exported for web/
from keyplane.cache.ratelimit import Limiter, Policy
from keyplane.errors import InvalidCredentials, LoginRefused, ResourceExhausted
from keyplane.metrics import Metrics

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
        metrics: Metrics | None = None,
    ) -> None:
        self.limiter = limiter
        self.metrics = metrics or Metrics()
        self.customer = customer
        self.auth_failures = auth_failures
        self.login_failures = login_failures
        self._blocked: OrderedDict[str, tuple[float, Decision]] = OrderedDict()
        # Per budget and key: slots taken in this replica whose verdict is still
        # pending, and an event set whenever one of them settles.
        self._pending: dict[str, int] = {}
        self._settled: dict[str, anyio.Event] = {}

    async def consume_customer(self, customer_id: uuid.UUID) -> Decision:
        decision = await self.limiter.hit(self.customer, str(customer_id))
        if not decision.allowed:
            self.metrics.refused("customer")
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
        self.metrics.refused(key.partition(":")[0])
        raise exhausted(
            Decision(False, decision.limit, 0, until - now, until - now),
            "Too many failed attempts from this address; retry after the time in Retry-After.",
            "RATE_LIMIT_EXCEEDED",
        )

    def ensure_auth_allowed(self, client: str) -> None:
        self.ensure_not_blocked(f"authfail:ip:{client}")

    @asynccontextmanager
    async def auth_attempt(self, client: str) -> AsyncIterator[None]:
        """Look at one credential from ``client`` on a slot of its failure budget.

        The slot is taken before the body runs and kept only when the body
        refuses the credential (``InvalidCredentials``, ``LoginRefused``); a good
        credential, or an outcome that is no verdict (the database was away, a
        timeout, a cancelled request), gives it back.
        """
        async with self._slot(self.auth_failures, f"ip:{client}"):
            yield

    @asynccontextmanager
    async def login_attempt(self, username: str, client: str) -> AsyncIterator[None]:
        """Like ``auth_attempt``, also on a slot of this username from this address.

        The username's slot is taken first: logins of one user waiting for it
        hold no slot of the address, so they cannot make the address's other
        credentials (its access keys) wait.
        """
        self.ensure_auth_allowed(client)
        async with (
            self._slot(self.login_failures, f"user:{username}|{client}"),
            self._slot(self.auth_failures, f"ip:{client}"),
        ):
            yield

    @asynccontextmanager
    async def _slot(self, policy: Policy, key: str) -> AsyncIterator[None]:
        await self._take_slot(policy, key)
        async with self._settling(policy, key):
            yield

    async def _take_slot(self, policy: Policy, key: str) -> None:
        """One slot of the budget ``policy`` keeps for ``key``, or 429.

        A slot refused only because slots of this replica are still pending
        waits for one of them to settle: good credentials give theirs back, so
        a busy but honest address (or user logging in from several windows) is
        not refused for its own parallelism. Waiting costs the process nothing,
        and no more credentials are looked at in parallel than the budget holds.
        """
        blocked_key = f"{policy.name}:{key}"
        while True:
            self.ensure_not_blocked(blocked_key)
            decision = await self.limiter.hit(policy, key)
            if decision.allowed:
                self._pending[blocked_key] = self._pending.get(blocked_key, 0) + 1
                return
            if not self._pending.get(blocked_key):
                self._block(blocked_key, decision)
                self.ensure_not_blocked(blocked_key)
            event = self._settled.setdefault(blocked_key, anyio.Event())
            await event.wait()

    @asynccontextmanager
    async def _settling(self, policy: Policy, key: str) -> AsyncIterator[None]:
        """Keep the slot on a refusal, give it back otherwise, then wake the waiters."""
        try:
            yield
        except (InvalidCredentials, LoginRefused):
            self._settle(f"{policy.name}:{key}")
            raise
        except BaseException:
            # No verdict (unavailable, timed out, cancelled): give the slot back,
            # shielded so that a cancellation cannot skip the refund.
            with anyio.CancelScope(shield=True):
                await self.limiter.refund(policy, key)
            self._settle(f"{policy.name}:{key}")
            raise
        await self.limiter.refund(policy, key)
        self._settle(f"{policy.name}:{key}")

    def _settle(self, pending_key: str) -> None:
        left = self._pending.get(pending_key, 1) - 1
        if left:
            self._pending[pending_key] = left
        else:
            self._pending.pop(pending_key, None)
        event = self._settled.pop(pending_key, None)
        if event is not None:
            event.set()

    def _block(self, key: str, decision: Decision) -> None:
        self._blocked[key] = (time.monotonic() + decision.retry_after, decision)
        self._blocked.move_to_end(key)
        while len(self._blocked) > MAX_BLOCKED:
            self._blocked.popitem(last=False)
