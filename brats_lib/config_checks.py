"""Checks of config values shared by the training configs (:class:`~brats_lib.train.TrainConfig`,
:class:`~brats_lib.gan.train.GanConfig`): each fault is one :class:`~brats_lib.errors.BratsConfigError` naming the
key, the expectation and the value."""

from __future__ import annotations

import math
from typing import Any

from .errors import BratsConfigError


def is_int(value: Any) -> bool:
    """An int, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite int or float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class ConfigChecks:
    """Checks on the attributes of one config object."""

    def __init__(self, config: Any):
        self.config = config

    def bad(self, key: str, expected: str) -> BratsConfigError:
        """The error for ``key``: ``config <key> must be <expected>, got <value>``."""
        return BratsConfigError(f"config {key} must be {expected}, got {getattr(self.config, key)!r}")

    def _each(self, keys, valid, expected: str) -> None:
        for key in keys:
            if not valid(getattr(self.config, key)):
                raise self.bad(key, expected)

    def positive_ints(self, *keys: str) -> None:
        self._each(keys, lambda v: is_int(v) and v >= 1, "a positive integer")

    def non_negative_ints(self, *keys: str) -> None:
        self._each(keys, lambda v: is_int(v) and v >= 0, "a non-negative integer")

    def positive_numbers(self, *keys: str) -> None:
        self._each(keys, lambda v: is_number(v) and v > 0, "a positive number")


__all__ = ["ConfigChecks", "is_int", "is_number"]
