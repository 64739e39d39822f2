"""The combination rules the ``combine`` attempt scores recorded member forecasts with."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.accuracy_attempts import trailing_combination


def _two_regimes(days: int = 40, hours: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Member 0 is exact in the first half of the days, member 1 in the second; member 2 is always off by 5."""
    rng = np.random.default_rng(7)
    actual = 50 + 10 * rng.standard_normal((days, hours))
    noise = 4 * rng.standard_normal((days, hours, 2))
    members = np.stack([actual + noise[..., 0], actual + noise[..., 1], actual + 5], axis=-1)
    half = days // 2
    members[:half, :, 0] = actual[:half]
    members[half:, :, 1] = actual[half:]
    return members, actual


def test_trailing_combination__follows_the_member_that_was_exact_in_the_window_before_each_day():
    members, actual = _two_regimes()
    combined = trailing_combination(members, actual, window=7)
    assert np.isnan(combined[:7]).all()
    # days 7..19: the window saw only member 0 exact, so its forecast is the combination
    np.testing.assert_allclose(combined[7:20], members[7:20, :, 0], atol=1e-6)
    # from day 27 on the window lies wholly in the second regime: member 1
    np.testing.assert_allclose(combined[27:], members[27:, :, 1], atol=1e-6)


def test_trailing_combination__per_hour_weights_differ_by_hour_and_read_only_their_hour():
    members, actual = _two_regimes()
    members[:, 5, 1] = actual[:, 5]  # at hour 5 member 1 is exact from the start
    combined = trailing_combination(members, actual, window=7, per_hour=True)
    np.testing.assert_allclose(combined[7:20, 5], members[7:20, 5, 1], atol=1e-6)
    np.testing.assert_allclose(combined[7:20, 4], members[7:20, 4, 0], atol=1e-6)


@pytest.mark.parametrize("per_hour", [False, True])
def test_trailing_combination__a_day_reads_nothing_of_itself_or_later(per_hour):
    members, actual = _two_regimes(days=20)
    combined = trailing_combination(members, actual, window=5, per_hour=per_hour)
    tampered_actual, tampered_members = actual.copy(), members.copy()
    tampered_actual[12:] += 1000.0
    tampered_members[13:] -= 1000.0
    again = trailing_combination(tampered_members, tampered_actual, window=5, per_hour=per_hour)
    np.testing.assert_array_equal(again[:13], combined[:13])
    assert not np.allclose(again[13:], combined[13:])


def test_trailing_combination__realised_prices_of_another_shape_are_refused():
    members, actual = _two_regimes(days=10)
    with pytest.raises(ValueError, match=r"\(9, 24\) realised prices for forecasts of shape \(10, 24, 3\)"):
        trailing_combination(members, actual[:9], window=3)
