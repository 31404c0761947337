"""/deploy and /deployment: which model every API process serves."""

from __future__ import annotations

import contextlib
from typing import Any

import redis
from flask import current_app
from flask.views import MethodView

from flight_delay import tracing
from flight_delay.api.base import Blueprint
from flight_delay.api.presenters import present, registry
from flight_delay.api.schemas import DeploymentSchema, DeployQuerySchema
from flight_delay.api.security import requires_configured_scope, requires_scope
from flight_delay.auth import caller_name
from flight_delay.errors import ModelArtifactError, scrub_paths
from flight_delay.registry import ModelNotFound, ModelNotReady, Status
from flight_delay.storage import CorruptArtifact, ModelNotPublished

blp = Blueprint(
    "deployment", __name__, description="Deploy a completed model; see what is deployed."
)


@blp.route("/deploy")
class Deploy(MethodView):
    @requires_scope(blp, "deploy")
    @blp.alt_response(400, description="model-id is missing")
    @blp.alt_response(404, description="no model with this id")
    @blp.alt_response(409, description="the model is not completed, or its files fail to load")
    @blp.alt_response(503, description="the artifact store cannot be reached (nothing changed)")
    @blp.arguments(DeployQuerySchema, location="query")
    @blp.response(204)
    def put(self, query: dict[str, Any]) -> None:
        """Deploy a model

        Needs the `deploy` scope. Every API process serves the model within one second. Rolling
        back is deploying an older id.
        """
        record = registry().get(query["model_id"])
        if record["status"] != Status.COMPLETED:
            raise ModelNotReady(record["id"], record["status"], "deploying")
        model_dir = current_app.config["MODEL_DIR"]
        cache = current_app.extensions["deployed_model"]
        try:  # never point every process at files that do not load; loaded once, then served
            model = cache.load(record["id"])
        except (ModelArtifactError, ModelNotPublished, CorruptArtifact, OSError) as exc:
            registry().get(record["id"])  # deleted meanwhile (records go before files): 404
            reason = scrub_paths(
                str(exc),
                {"MODEL_DIR": model_dir, "MODEL_CACHE_DIR": current_app.config["MODEL_CACHE_DIR"]},
            )
            raise ModelNotReady(
                record["id"], f"completed but unloadable ({reason})", "deploying"
            ) from exc
        # the status is checked again inside the atomic deploy: a DELETE that came in meanwhile
        # wins (404) rather than leaving the deployment pointing at a deleted model
        event = registry().deploy(record["id"], by=caller_name())
        cache.install(record["id"], int(event["version"]), model)
        # every process's load of this deployment joins this request's trace (when tracing);
        # the deploy is done either way
        with contextlib.suppress(redis.RedisError):
            registry().keep_deploy_trace(int(event["version"]), tracing.current_carrier())


@blp.route("/deployment")
class Deployment(MethodView):
    @requires_configured_scope(blp, "READ_SCOPE")
    @blp.response(200, DeploymentSchema)
    def get(self) -> dict[str, Any]:
        """Show the deployed model and the deployment history"""
        model_id, version, history = registry().deployment_state()
        model = None
        if model_id:
            # a record deleted by hand in Redis: show the pointer, not a 404
            with contextlib.suppress(ModelNotFound):
                model = present(registry().get(model_id), model_id)
        return {
            "model_id": model_id,
            "version": version,
            "deployed_at": history[0]["deployed_at"] if history else None,
            "model": model,
            "history": history,
        }
