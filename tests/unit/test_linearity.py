"""The linearity check itself: it passes linear work and fails quadratic work."""

from __future__ import annotations

import re

import pytest

from tests.linearity import assert_linear


def test_linear_work_passes() -> None:
    assert_linear(lambda size: lambda: re.sub("b", "c", "ab" * size))


def test_quadratic_work_fails() -> None:
    def pairs(size: int) -> int:
        side = size // 32  # 512 x 512 pairs at 16 KiB, 2048 x 2048 at 64 KiB
        return sum(1 for _ in range(side) for _ in range(side))

    with pytest.raises(AssertionError, match="grows more than"):
        assert_linear(lambda size: lambda: pairs(size))
