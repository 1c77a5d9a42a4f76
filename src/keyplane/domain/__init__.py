"""Pure rules: token format, hashing, passwords, permissions, time formatting."""
