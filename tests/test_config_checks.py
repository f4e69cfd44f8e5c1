"""The shared config-value checks: one error naming the key, the expectation and the value."""

from types import SimpleNamespace

import pytest

from brats_lib.config_checks import ConfigChecks, is_int, is_number
from brats_lib.errors import BratsConfigError


def test_kinds_of_numbers():
    assert is_int(3) and not is_int(True) and not is_int(3.0)
    assert is_number(0.5) and is_number(2) and not is_number(float("nan")) and not is_number(False)


@pytest.mark.parametrize("method, value, expected", [
    ("positive_ints", 0, "a positive integer"),
    ("positive_ints", 2.0, "a positive integer"),
    ("non_negative_ints", -1, "a non-negative integer"),
    ("positive_numbers", 0.0, "a positive number"),
    ("positive_numbers", float("inf"), "a positive number"),
])
def test_each_fault_is_one_error_naming_the_key(method, value, expected):
    checks = ConfigChecks(SimpleNamespace(good=1, broken=value))
    getattr(checks, method)("good")
    with pytest.raises(BratsConfigError, match=rf"^config broken must be {expected}, got {value!r}$"):
        getattr(checks, method)("good", "broken")
