"""Per-replica verification cache, invalidation between replicas, rate limits."""
