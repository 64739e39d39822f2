"""The promotion gate as a pure function: hand-made evaluations in, a decision with every reason out.

Numbers are chosen so each verdict and each reason string can be checked by hand: a NP-like
holdout of 14 days (336 hours), the seasonal naive at MAE 8, a champion at MAE 4.5, the
Nord Pool MAPE threshold of 10%.
"""

from __future__ import annotations

import math

import pytest

from registry.gate import Evaluation, GatePolicy, decide_promotion

HOURS = 336
POLICY = GatePolicy(mape_threshold=10.0)


def ev(label: str, mae: float, mape: float = 6.0, hours: int = HOURS, naive_mae: float = 8.0) -> Evaluation:
    return Evaluation(label, mae=mae, rmae=mae / naive_mae, smape=mape * 0.9, rmse=mae * 1.4, mape=mape, hours=hours)


NAIVE = ev("seasonal naive", 8.0, mape=14.0)
CHAMPION = ev("champion v5", 4.5, mape=6.5)


def test_gate__promotes_a_candidate_below_threshold_better_than_naive_and_champion():
    decision = decide_promotion(ev("candidate v7", 4.0, mape=6.0), CHAMPION, NAIVE, POLICY)
    assert decision.promote is True
    assert decision.checks == {"mape_threshold": True, "beats_seasonal_naive": True, "beats_champion": True}
    assert decision.reasons == [
        "MAPE 6.00% < threshold 10.00%",
        "MAE 4.0000 < seasonal naive 8.0000",
        "MAE 4.0000 < champion v5 4.5000",
    ]
    assert decision.summary == "promote: " + "; ".join(decision.reasons)


def test_gate__rejects_candidate_worse_than_champion_naming_both_maes():
    decision = decide_promotion(ev("candidate v7", 4.6), CHAMPION, NAIVE, POLICY)
    assert decision.promote is False
    assert decision.checks == {"mape_threshold": True, "beats_seasonal_naive": True, "beats_champion": False}
    assert decision.reasons[-1] == "MAE 4.6000 >= champion v5 4.5000"
    assert decision.summary.startswith("reject: ")


def test_gate__rejects_a_candidate_only_as_good_as_the_champion():
    decision = decide_promotion(ev("candidate v7", 4.5), CHAMPION, NAIVE, POLICY)
    assert decision.promote is False
    assert decision.checks["beats_champion"] is False
    assert decision.reasons[-1] == "MAE 4.5000 >= champion v5 4.5000"


def test_gate__rejects_a_candidate_above_the_mape_threshold_even_when_it_beats_the_champion():
    decision = decide_promotion(ev("candidate v7", 4.0, mape=12.5), CHAMPION, NAIVE, POLICY)
    assert decision.promote is False
    assert decision.checks == {"mape_threshold": False, "beats_seasonal_naive": True, "beats_champion": True}
    assert decision.reasons[0] == "MAPE 12.50% >= threshold 10.00%"


def test_gate__a_mape_exactly_at_the_threshold_is_not_below_it():
    decision = decide_promotion(ev("candidate v7", 4.0, mape=10.0), CHAMPION, NAIVE, POLICY)
    assert decision.promote is False
    assert decision.reasons[0] == "MAPE 10.00% >= threshold 10.00%"


def test_gate__rejects_a_candidate_worse_than_the_seasonal_naive():
    decision = decide_promotion(ev("candidate v7", 8.5, mape=9.0), None, NAIVE, POLICY)
    assert decision.promote is False
    assert decision.checks == {"mape_threshold": True, "beats_seasonal_naive": False, "beats_champion": True}
    assert decision.reasons[1] == "MAE 8.5000 >= seasonal naive 8.0000"


def test_gate__without_a_champion_needs_only_the_threshold_and_the_naive():
    decision = decide_promotion(ev("candidate v1", 7.9, mape=9.9), None, NAIVE, POLICY)
    assert decision.promote is True
    assert decision.checks == {"mape_threshold": True, "beats_seasonal_naive": True, "beats_champion": True}
    assert decision.reasons == [
        "MAPE 9.90% < threshold 10.00%",
        "MAE 7.9000 < seasonal naive 8.0000",
        "no champion yet",
    ]


def test_gate__min_improvement_rejects_a_candidate_one_percent_better_under_a_two_percent_margin():
    champion = ev("champion v5", 5.0)
    decision = decide_promotion(ev("candidate v7", 4.95), champion, NAIVE, GatePolicy(10.0, min_improvement=0.02))
    assert decision.promote is False  # the bar is 5.0 * 0.98 = 4.9
    assert decision.reasons[-1] == "MAE 4.9500 >= champion v5 5.0000 less 2.0%"


def test_gate__min_improvement_promotes_a_candidate_three_percent_better_under_a_two_percent_margin():
    champion = ev("champion v5", 5.0)
    decision = decide_promotion(ev("candidate v7", 4.85), champion, NAIVE, GatePolicy(10.0, min_improvement=0.02))
    assert decision.promote is True
    assert decision.reasons[-1] == "MAE 4.8500 < champion v5 5.0000 less 2.0%"


def test_gate__a_nan_mape_is_rejected_and_said_to_be_undefined():
    decision = decide_promotion(ev("candidate v7", 4.0, mape=math.nan), CHAMPION, NAIVE, POLICY)
    assert decision.promote is False
    assert decision.checks["mape_threshold"] is False
    assert decision.reasons[0] == "MAPE undefined (every holdout price is near zero)"
    assert decision.checks["beats_seasonal_naive"] and decision.checks["beats_champion"]


def test_gate__a_nan_mae_passes_neither_the_naive_nor_the_champion():
    decision = decide_promotion(ev("candidate v7", math.nan), CHAMPION, NAIVE, POLICY)
    assert decision.promote is False
    assert decision.checks["beats_seasonal_naive"] is False and decision.checks["beats_champion"] is False


@pytest.mark.parametrize("who", ["champion", "baseline"])
def test_gate__refuses_evaluations_scored_on_different_hours(who):
    short = {"champion": ev("champion v5", 4.5, hours=312), "baseline": ev("seasonal naive", 8.0, hours=312)}
    champion = short["champion"] if who == "champion" else CHAMPION
    baseline = short["baseline"] if who == "baseline" else NAIVE
    with pytest.raises(
        ValueError,
        match=rf"{'champion v5' if who == 'champion' else 'seasonal naive'} was scored "
        r"on 312 hours, the candidate on 336",
    ):
        decide_promotion(ev("candidate v7", 4.0), champion, baseline, POLICY)


def test_gate__lists_every_reason_when_several_checks_fail():
    decision = decide_promotion(ev("candidate v7", 9.0, mape=15.0), CHAMPION, NAIVE, POLICY)
    assert decision.promote is False
    assert decision.checks == {"mape_threshold": False, "beats_seasonal_naive": False, "beats_champion": False}
    assert decision.summary == (
        "reject: MAPE 15.00% >= threshold 10.00%; MAE 9.0000 >= seasonal naive 8.0000; MAE 9.0000 >= champion v5 4.5000"
    )


def test_gate__evaluation_from_metrics_reads_the_five_metrics_and_ignores_the_rest():
    metrics = {"mae": 3.9, "rmae": 0.5, "smape": 7.1, "rmse": 5.2, "mape": 7.4, "mape_excluded_share": 0.0}
    evaluation = Evaluation.from_metrics("candidate v2", metrics, 336)
    assert evaluation == Evaluation("candidate v2", 3.9, 0.5, 7.1, 5.2, 7.4, 336)
    decision = decide_promotion(
        evaluation, None, Evaluation.from_metrics("seasonal naive", {**metrics, "mae": 7.8}, 336), POLICY
    )
    assert decision.as_dict() == {
        "promote": True,
        "checks": {"mape_threshold": True, "beats_seasonal_naive": True, "beats_champion": True},
        "reasons": ["MAPE 7.40% < threshold 10.00%", "MAE 3.9000 < seasonal naive 7.8000", "no champion yet"],
    }
