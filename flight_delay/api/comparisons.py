"""Models compared on one common holdout (issue 12)."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView

from flight_delay.api.base import Blueprint
from flight_delay.api.errors import ComparisonNotFound
from flight_delay.api.schemas import (
    ComparisonCreatedSchema,
    ComparisonCreateSchema,
    ComparisonSchema,
)
from flight_delay.api.security import requires_configured_scope, requires_scope
from flight_delay.data.download import AllowList
from flight_delay.data.sources import check_reference
from flight_delay.errors import BadRequest
from flight_delay.registry import ModelNotReady, ModelRegistry, Status
from flight_delay.tasks.comparison import queue_comparison, read_comparison

blp = Blueprint(
    "comparisons",
    __name__,
    url_prefix="/comparisons",
    description="Score several models on one common holdout, side by side.",
)


@blp.route("")
class Comparisons(MethodView):
    @requires_scope(blp, "train")
    @blp.arguments(
        ComparisonCreateSchema,
        example={
            "model_ids": [
                "3f1c2a9e-8d7b-4c55-9a61-2b7e0f4d8c10",
                "8a0e3c51-7d2f-4b1a-9c3e-5f6a7b8c9d0e",
            ],
            "dataset": "dataset_SCL.csv",
            "holdout": {"since": "2017-11-01"},
        },
    )
    @blp.response(202, ComparisonCreatedSchema)
    @blp.alt_response(404, description="one of the models does not exist")
    @blp.alt_response(409, description="one of the models is not completed")
    @blp.alt_response(
        429,
        description="as many reports and comparisons as FLIGHT_DELAY_ANALYSIS_MAX_ACTIVE are "
        "being computed; ask again after Retry-After seconds",
    )
    def post(self, body: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Compare models

        Needs the `train` scope (it reads a dataset, as training does). Queues a job that
        loads the dataset, takes the flights scheduled in [`holdout.since`, `holdout.until`)
        (all by default) and scores every model on them with its own pipeline and threshold.
        `GET /comparisons/{id}` has the status and, once completed, the metrics side by side
        with ROC, precision-recall and reliability points for plotting.
        """
        registry: ModelRegistry = current_app.extensions["model_registry"]
        model_ids = [str(model_id) for model_id in body["model_ids"]]
        if len(set(model_ids)) != len(model_ids):
            raise BadRequest("each model once", [{"field": "model_ids", "problem": "repeated id"}])
        for model_id in model_ids:
            record = registry.get(model_id)  # 404 when it does not exist
            if record["status"] != Status.COMPLETED:
                raise ModelNotReady(model_id, record["status"], "a comparison")
        config = current_app.config
        check_reference(  # a bad reference is a 400 now, not a failed job later
            body["dataset"], config["DATA_ROOT"], AllowList.parse(config["DOWNLOAD_ALLOW_HOSTS"])
        )
        holdout = {name: day.isoformat() for name, day in body["holdout"].items()}
        request = {"model_ids": model_ids, "dataset": body["dataset"], "holdout": holdout}
        comparison_id = queue_comparison(current_app._get_current_object(), request)  # type: ignore[attr-defined]
        return (
            {"id": comparison_id, "status": "pending"},
            202,
            {"Location": f"/comparisons/{comparison_id}"},
        )


@blp.route("/<uuid:comparison_id>")
class Comparison(MethodView):
    @requires_configured_scope(blp, "READ_SCOPE")
    @blp.response(200, ComparisonSchema)
    @blp.alt_response(404, description="no comparison with this id (or it expired)")
    def get(self, comparison_id: Any) -> dict[str, Any]:
        """Show a comparison"""
        found = read_comparison(current_app._get_current_object(), str(comparison_id))  # type: ignore[attr-defined]
        if found is None:
            raise ComparisonNotFound(str(comparison_id))
        return found
