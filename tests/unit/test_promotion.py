"""The champion/challenger rule (flight_delay.ml.promotion): what it promotes, and why it says."""

from __future__ import annotations

import pytest

from flight_delay.ml.promotion import PromotionRule, decide, refusals

CHAMPION = {"roc_auc": 0.70, "pr_auc": 0.40, "brier": 0.160, "log_loss": 0.50, "ece": 0.030}


def pair(**challenger: float) -> dict[str, dict[str, float] | None]:
    return {"champion": CHAMPION, "challenger": {**CHAMPION, **challenger}}


def test_a_challenger_better_by_the_margin_and_as_well_calibrated_is_promoted() -> None:
    decision = decide(PromotionRule(min_margin=0.01), {"holdout": pair(roc_auc=0.711)})
    assert decision.promote and decision.verdict == "promoted"
    assert decision.reasons == [
        "holdout: roc_auc 0.7110 vs 0.7000 (+0.0110; needs at least +0.0100) met",
        "holdout: ECE 0.0300 vs 0.0300 not worse",
    ]


@pytest.mark.parametrize(
    ("rule", "challenger"),
    [
        (PromotionRule(min_margin=0.01), {"roc_auc": 0.709}),  # short of the margin
        (PromotionRule(min_margin=0.0), {"roc_auc": 0.70}),  # a tie keeps the champion
        (PromotionRule(min_margin=0.0), {"roc_auc": 0.69}),
        (PromotionRule(), {"roc_auc": 0.80, "ece": 0.031}),  # calibration worse
        (PromotionRule(metric="brier"), {"brier": 0.170}),  # lower is better
        (PromotionRule(metric="log_loss", min_margin=0.02), {"log_loss": 0.49}),
    ],
)
def test_challengers_that_do_not_meet_the_rule_are_kept(
    rule: PromotionRule, challenger: dict[str, float]
) -> None:
    decision = decide(rule, {"holdout": pair(**challenger)})
    assert not decision.promote and decision.verdict == "kept"


def test_losses_count_lower_as_better_and_ece_tolerance_allows_a_little() -> None:
    rule = PromotionRule(metric="brier", min_margin=0.005, ece_tolerance=0.002)
    assert decide(rule, {"holdout": pair(brier=0.150, ece=0.031)}).promote
    assert not decide(rule, {"holdout": pair(brier=0.150, ece=0.033)}).promote
    off = PromotionRule(calibration_not_worse=False)
    assert decide(off, {"holdout": pair(roc_auc=0.8, ece=0.2)}).promote


def test_the_rule_must_hold_on_every_evaluation_set() -> None:
    better, worse = pair(roc_auc=0.75), pair(roc_auc=0.65)
    decision = decide(PromotionRule(), {"holdout": better, "outcomes": worse})
    assert not decision.promote
    assert [r.split(":")[0] for r in decision.reasons] == ["holdout"] * 2 + ["outcomes"] * 2


def test_without_a_champion_the_challenger_is_promoted() -> None:
    decision = decide(PromotionRule(), {"holdout": {"champion": None, "challenger": CHAMPION}})
    assert decision.promote
    assert decision.reasons == ["holdout: no deployed champion to beat"]


@pytest.mark.parametrize(
    "settings",
    [{"metric": "accuracy"}, {"min_margin": -0.1}, {"min_margin": 0.6}, {"ece_tolerance": True},
     {"min_margin": "0.1"}, {"surprise": 1}, {"min_outcome_flights": 49},
     {"min_outcome_flights": 500.0}, {"min_outcome_flights": 10**7}],
)  # fmt: skip
def test_bad_rules_are_refused(settings: dict[str, object]) -> None:
    with pytest.raises((ValueError, TypeError)):
        PromotionRule.from_dict(settings)


def test_a_decision_needs_metrics() -> None:
    with pytest.raises(ValueError, match="at least one"):
        decide(PromotionRule(), {})
    with pytest.raises(ValueError, match="ece"):
        decide(PromotionRule(), {"holdout": {"champion": CHAMPION, "challenger": {"roc_auc": 1}}})


def test_a_challenger_that_refuses_what_the_champion_serves_is_named() -> None:
    champion = {
        "required": ["Fecha-I", "Vlo-I", "Des-I", "Emp-I", "OPERA", "TIPOVUELO"],
        "allowed_values": {"OPERA": ["Air Canada", "Grupo LATAM", "Sky Airline"],
                           "TIPOVUELO": ["I", "N"]},
    }  # fmt: skip
    generated = {
        "required": ["OPERA", "TIPOVUELO", "MES"],  # MES comes from Fecha-I: nothing missing
        "allowed_values": {"OPERA": ["Grupo LATAM", "Sky Airline"], "TIPOVUELO": ["I", "N"]},
    }
    assert refusals(champion, generated) == [
        "the challenger refuses 1 OPERA value(s) the deployed model serves ('Air Canada')"
    ]
    assert refusals(champion, {**champion, "allowed_values": {}}) == []
    minimal_champion = {"required": ["OPERA", "TIPOVUELO", "MES"], "allowed_values": {}}
    assert refusals(minimal_champion, champion)[0].startswith(
        "the challenger needs Fecha-I, Vlo-I, Des-I, Emp-I"
    )


def test_on_a_guard_set_the_challenger_need_only_be_no_worse() -> None:
    rule = PromotionRule(min_margin=0.01, calibration_not_worse=False)
    sets = {
        "holdout": {"champion": {"roc_auc": 0.70, "ece": 0.02}, "challenger": {"roc_auc": 0.72, "ece": 0.02}},
        "champion_data": {"champion": {"roc_auc": 0.70, "ece": 0.02}, "challenger": {"roc_auc": 0.703, "ece": 0.02}},
    }  # fmt: skip
    assert decide(rule, sets, guards=("champion_data",)).promote
    assert not decide(rule, sets).promote
    worse = {**sets, "champion_data": {**sets["champion_data"], "challenger": {"roc_auc": 0.69, "ece": 0.02}}}  # fmt: skip
    assert not decide(rule, worse, guards=("champion_data",)).promote
