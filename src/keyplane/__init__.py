"""keyplane: issue, manage and verify API access keys and login sessions."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
