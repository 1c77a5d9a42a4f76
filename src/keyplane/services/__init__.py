"""Use cases: permissions, expiry rules, events. Services own transactions."""
