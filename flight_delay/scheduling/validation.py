"""What a schedule may say: the fields a new or changed schedule stores, every one checked
against the configuration (the dataset reference, the model settings every run trains with, the
promotion rule, the timing)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flight_delay.data.download import AllowList
from flight_delay.data.sources import check_reference
from flight_delay.errors import BadRequest, InvalidConfig
from flight_delay.ml.config import TrainConfig
from flight_delay.ml.promotion import PromotionRule
from flight_delay.scheduling.runs import RUN_SETTINGS
from flight_delay.scheduling.timing import InvalidTiming, Timing


def checked_fields(
    body: Mapping[str, Any], config: Mapping[str, Any], current: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The fields to store for a new or changed schedule, every one checked (a BadRequest
    naming the field otherwise); ``current`` is the schedule a change applies to."""
    fields: dict[str, Any] = {}
    if "name" in body:
        fields["name"] = body["name"].strip()
    if "dataset" in body:
        check_reference(
            body["dataset"], config["DATA_ROOT"], AllowList.parse(config["DOWNLOAD_ALLOW_HOSTS"])
        )
        fields["dataset"] = body["dataset"].strip()
    if "model" in body:
        try:
            settings = TrainConfig.from_dict({**body["model"], **RUN_SETTINGS}).to_dict()
        except InvalidConfig as exc:
            raise InvalidConfig(f"model.{exc.field}", exc.problem) from None
        fields["settings"] = settings
    if "rule" in body:
        fields["rule"] = PromotionRule.from_dict(body["rule"]).to_dict()
    timing_given = {"every_seconds", "cron", "timezone"} & set(body)
    if current is None or timing_given:
        if "every_seconds" in body and "cron" in body:
            raise BadRequest(
                "give either every_seconds or cron, not both",
                [{"location": "json", "field": "cron", "problem": "with every_seconds"}],
            )
        every = body.get("every_seconds")
        cron = body.get("cron")
        if current is not None and every is None and cron is None:  # the time zone only
            every, cron = current.get("every_seconds") or None, current.get("cron") or None
        timezone = body.get("timezone") or (current or {}).get("timezone") or "UTC"
        try:
            Timing(every, cron, timezone).check(int(config["SCHEDULE_MIN_INTERVAL_SECONDS"]))
        except InvalidTiming as exc:
            raise BadRequest(
                str(exc), [{"location": "json", "field": exc.field, "problem": exc.problem}]
            ) from None
        fields.update(every_seconds=every or "", cron=cron or "", timezone=timezone)
    if "paused" in body:
        fields["paused"] = body["paused"]
        if not body["paused"]:
            fields["paused_reason"] = ""
    return fields
