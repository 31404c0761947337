"""Champion/challenger: the rule that decides whether a retrained model replaces the deployed one.

A rule names a metric, the margin by which the challenger must beat the champion on it, and
whether its calibration (ECE) may be worse. It is checked on every evaluation set a run has
(the most recent holdout of the dataset always; the prediction log's flights with outcomes
when there are enough of them; the deployed model's own data, when the schedule reads other
data, where the challenger need only be no worse): the challenger is promoted only when it
holds on all of them, and never when it would refuse flights the deployed model serves
(``refusals``).
Pure logic on metric dictionaries; the scheduled runs (flight_delay.scheduling) call it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

#: metrics a rule may name, and whether higher is better
RULE_METRICS: dict[str, bool] = {
    "roc_auc": True,
    "pr_auc": True,
    "brier": False,
    "log_loss": False,
}
#: largest margin or ECE tolerance a rule accepts (all four metrics live in [0, 1] or close)
MAX_MARGIN = 0.5
#: bounds of min_outcome_flights: below 50 a metric says nothing; the top bound turns them off
MIN_OUTCOME_FLIGHTS, MAX_OUTCOME_FLIGHTS = 50, 1_000_000


@dataclass(frozen=True)
class PromotionRule:
    """When a challenger replaces the champion.

    Attributes:
        metric: one of RULE_METRICS.
        min_margin: the challenger must be better on ``metric`` by at least this much (and by
            more than nothing: a tie keeps the champion).
        calibration_not_worse: the challenger's ECE may exceed the champion's by at most
            ``ece_tolerance``.
        ece_tolerance: see ``calibration_not_worse``.
        min_outcome_flights: the prediction log's flights with outcomes count as an evaluation
            set once at least this many (of both classes) can be read by both models; fewer
            give an ECE or AUC too noisy to decide on.
    """

    metric: str = "roc_auc"
    min_margin: float = 0.005
    calibration_not_worse: bool = True
    ece_tolerance: float = 0.0
    min_outcome_flights: int = 500

    def __post_init__(self) -> None:
        if self.metric not in RULE_METRICS:
            raise ValueError(f"metric must be one of {', '.join(RULE_METRICS)}")
        for name in ("min_margin", "ece_tolerance"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number")
            if not 0.0 <= value <= MAX_MARGIN:
                raise ValueError(f"{name} must be from 0 to {MAX_MARGIN}")
        flights = self.min_outcome_flights
        if isinstance(flights, bool) or not isinstance(flights, int):
            raise ValueError("min_outcome_flights must be an integer")
        if not MIN_OUTCOME_FLIGHTS <= flights <= MAX_OUTCOME_FLIGHTS:
            raise ValueError(
                f"min_outcome_flights must be from {MIN_OUTCOME_FLIGHTS} to {MAX_OUTCOME_FLIGHTS}"
            )

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any] | None) -> PromotionRule:
        return cls(**dict(settings or {}))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    """The outcome of a rule: promote or keep, and every reason (one line each)."""

    promote: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return "promoted" if self.promote else "kept"

    def explanation(self) -> str:
        return "; ".join(self.reasons)


def decide(
    rule: PromotionRule,
    evaluations: Mapping[str, Mapping[str, Mapping[str, Any] | None]],
    guards: Collection[str] = (),
) -> Decision:
    """Check ``rule`` on each evaluation set.

    Args:
        rule: the rule.
        evaluations: per evaluation set (``holdout``, ``outcomes``), the ``champion`` and
            ``challenger`` metrics (each a dict with the rule's metric and ``ece``); a set whose
            ``champion`` is None has no champion (nothing deployed).

        guards: sets on which the challenger need only be no worse than the champion (the
            margin is for the run's own evaluation sets): a check, not the contest.

    Returns:
        promote when the rule holds on every set; the reasons say what was compared.
    """
    if not evaluations:
        raise ValueError("a decision needs at least one evaluation set")
    reasons: list[str] = []
    promote = True
    higher_is_better = RULE_METRICS[rule.metric]
    for name, pair in evaluations.items():
        champion, challenger = pair.get("champion"), pair.get("challenger")
        if challenger is None:
            raise ValueError(f"{name}: no challenger metrics")
        if champion is None:
            reasons.append(f"{name}: no deployed champion to beat")
            continue
        ours, theirs = _number(challenger, rule.metric), _number(champion, rule.metric)
        gain = ours - theirs if higher_is_better else theirs - ours
        if name in guards:
            beats, needs = gain >= 0, "no worse"
        else:
            beats = gain > 0 and gain >= rule.min_margin
            needs = f"at least +{rule.min_margin:.4f}" if rule.min_margin > 0 else "more than 0"
        reasons.append(
            f"{name}: {rule.metric} {ours:.4f} vs {theirs:.4f} "
            f"({'+' if gain >= 0 else ''}{gain:.4f}; needs {needs}) "
            f"{'met' if beats else 'not met'}"
        )
        promote &= beats
        if rule.calibration_not_worse:
            ece_ours, ece_theirs = _number(challenger, "ece"), _number(champion, "ece")
            calibrated = ece_ours <= ece_theirs + rule.ece_tolerance
            allowance = f" + {rule.ece_tolerance:.4f}" if rule.ece_tolerance else ""
            reasons.append(
                f"{name}: ECE {ece_ours:.4f} vs {ece_theirs:.4f}{allowance} "
                f"{'not worse' if calibrated else 'worse'}"
            )
            promote &= calibrated
    return Decision(promote, reasons)


def _number(metrics: Mapping[str, Any], name: str) -> float:
    value = metrics.get(name)
    if value is None:
        raise ValueError(f"metric {name} is missing")
    return float(value)


#: most refused values a reason names
SHOWN_VALUES = 5


def refusals(champion_schema: Mapping[str, Any], challenger_schema: Mapping[str, Any]) -> list[str]:
    """Why the challenger would refuse flights the champion serves, one line per cause (empty
    when it takes every flight the champion takes): a field it needs that the champion's
    callers need not send, or a closed field (OPERA, TIPOVUELO) whose values the champion knows
    and it does not. A challenger trained on other data (say, generated flights) cannot replace
    a champion whose callers send airlines it never saw: they would all get a 400."""
    reasons = []
    champion_needs = set(champion_schema.get("required") or [])
    # a minimal model takes MES from Fecha-I when it is sent
    if "Fecha-I" in champion_needs:
        champion_needs.add("MES")
    missing = [f for f in challenger_schema.get("required") or [] if f not in champion_needs]
    if missing:
        reasons.append(
            f"the challenger needs {', '.join(missing)}, which the deployed model's callers "
            "need not send"
        )
    theirs = challenger_schema.get("allowed_values") or {}
    for field_name, values in (champion_schema.get("allowed_values") or {}).items():
        if field_name not in theirs:
            continue
        unknown = [v for v in values if v not in set(theirs[field_name])]
        if unknown:
            shown = ", ".join(repr(v) for v in unknown[:SHOWN_VALUES])
            more = f" and {len(unknown) - SHOWN_VALUES} more" if len(unknown) > SHOWN_VALUES else ""
            reasons.append(
                f"the challenger refuses {len(unknown)} {field_name} value(s) the deployed model "
                f"serves ({shown}{more})"
            )
    return reasons
