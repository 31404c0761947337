"""A scheduled run's state machine: every transition is one method here and one atomic script
where the run lives (Redis), so two processes that race on a run (two evaluations, a beat and a
worker, a promotion and an operator's deploy) can never both win.

::

    queued ──start_training──▶ training ──claim_evaluation──▶ evaluating ──keep────▶ completed
       │                          │                            │  ▲        ──promote─▶ completed
       └──reject_settings─▶ failed ◀──fail_training            │  └─ claim_evaluation (lease lapsed)
                                  ▲                            │
                                  └──────── fail_evaluation ◀──┘  (and: attempts exhausted)

A run is created ``queued`` by its schedule (``ScheduleStore.claim_due`` / ``start_now``). A
transition whose precondition no longer holds changes nothing and says so (False, or the
outcome), so a late or duplicate caller is harmless. Finishing frees the schedule for its next
run. The promotion deploys through the registry's conditional deploy in the same script.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flight_delay.registry import (
    CONDITIONAL_DEPLOY,
    CONDITIONAL_DEPLOY_ARGS,
    CONDITIONAL_DEPLOY_KEYS,
)
from flight_delay.tasks.lease import LOST_WORKER, ClaimResult, JobKind, now_iso

if TYPE_CHECKING:
    from flight_delay.scheduling.store import ScheduleStore


class RunStatus:
    QUEUED = "queued"
    TRAINING = "training"
    EVALUATING = "evaluating"
    COMPLETED = "completed"
    FAILED = "failed"
    UNFINISHED = (QUEUED, TRAINING, EVALUATING)


#: a run's evaluation, as a job with the lease every job has (flight_delay.tasks.lease)
EVALUATION = JobKind("evaluation", claimable=("training",), running="evaluating")

# The end of a run, for the scripts that finish one: no lease, out of the unfinished set, and
# the schedule free for its next run.
_FINISH = """
local function finish(run_key, schedule_key, unfinished_key, run_id)
  redis.call('HDEL', run_key, 'attempt', 'lease_until')
  redis.call('SREM', unfinished_key, run_id)
  if redis.call('HGET', schedule_key, 'active_run') == run_id then
    redis.call('HSET', schedule_key, 'active_run', '')
  end
end
"""

# queued -> training. KEYS: run. ARGV: challenger id, now -> 1, or 0 when past queued
_START_TRAINING = """
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'training', 'challenger_id', ARGV[1],
  'training_queued_at', ARGV[2])
return 1
"""

# KEYS: run, schedule, unfinished. ARGV: run id. A run the lease failed (its evaluation gave up)
# leaves the unfinished set and frees its schedule.
_RELEASE = (
    _FINISH
    + """
finish(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
return 1
"""
)

# -> completed | failed. KEYS: run, schedule, unfinished. ARGV: run id, token ('' = whoever
# holds it), the status it must be in, field, value, ... -> 1, or 0 when that no longer holds
_FINISH_RUN = (
    _FINISH
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= ARGV[3] then return 0 end
if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
finish(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
return 1
"""
)

# evaluating -> completed, promoted: the registry's conditional deploy (the champion scored is
# still deployed, the challenger is completed) and the run's completion in one step, only while
# this attempt holds the run and its schedule exists.
# KEYS: 1-3 the registry's deploy keys, 4 run, 5 schedule, 6 unfinished.
# ARGV: 1-4 the registry's deploy args, 5 run id, 6 token, field, value, ...
# -> {'promoted', event} | {'lost' | 'schedule_gone' | 'moved' | 'not_completed', detail}
assert (CONDITIONAL_DEPLOY_KEYS, CONDITIONAL_DEPLOY_ARGS) == (3, 4), "renumber _PROMOTE"
_PROMOTE = (
    _FINISH
    + """
local run = KEYS[4]
if redis.call('HGET', run, 'status') ~= 'evaluating' or redis.call('HGET', run, 'attempt') ~= ARGV[6]
  then return {'lost', ''} end
if redis.call('EXISTS', KEYS[5]) == 0 then return {'schedule_gone', ''} end
"""
    + CONDITIONAL_DEPLOY
    + """
redis.call('HSET', run, unpack(ARGV, 7))
redis.call('HSET', run, 'deployment_version', version, 'deployed_at', ARGV[2])
finish(run, KEYS[5], KEYS[6], ARGV[5])
return {'promoted', event}
"""
)


class RunLifecycle:
    """The transitions of the runs of one ``ScheduleStore`` (its keys, its connection)."""

    def __init__(self, store: ScheduleStore) -> None:
        self.store = store
        self._scripts = {
            name: store.redis.register_script(source)
            for name, source in (
                ("start_training", _START_TRAINING),
                ("finish_run", _FINISH_RUN),
                ("release", _RELEASE),
                ("promote", _PROMOTE),
            )
        }

    # -- queued ------------------------------------------------------------------------------
    def start_training(self, run_id: str, challenger_id: str) -> bool:
        """queued -> training: the run's challenger is recorded; False when another caller
        moved the run first."""
        run_key = self.store.run_key(run_id)
        return bool(
            self._scripts["start_training"](keys=[run_key], args=[challenger_id, now_iso()])
        )

    def reject_settings(self, run: Mapping[str, Any], reason: str) -> bool:
        """queued -> failed: the schedule's settings are no longer accepted."""
        return self._finish(run, RunStatus.QUEUED, RunStatus.FAILED, error=reason)

    # -- training ----------------------------------------------------------------------------
    def fail_training(self, run: Mapping[str, Any], reason: str) -> bool:
        """training -> failed: the challenger failed or was deleted."""
        return self._finish(run, RunStatus.TRAINING, RunStatus.FAILED, error=reason)

    def claim_evaluation(
        self, run: Mapping[str, Any], token: str, lease: float, max_attempts: int, worker: str = ""
    ) -> str:
        """training (or evaluating with a lapsed lease) -> evaluating, held by ``token``: the
        lease every kind of job has (flight_delay.tasks.lease). 'claimed' | 'leased' |
        'exhausted' (failed now, after ``max_attempts``) | the status it is in."""
        claim = self.store.lease.claim(
            EVALUATION, self.store.run_key(run["id"]), token, worker, lease, max_attempts,
            on_claim={"evaluation_started_at": now_iso()},
            on_give_up={"error": f"gave up after {max_attempts} evaluation attempt(s): {LOST_WORKER}"},
        )  # fmt: skip
        if claim.outcome == ClaimResult.EXHAUSTED:
            self.release(run)  # out of the unfinished set, its schedule free for the next run
        if claim.outcome == ClaimResult.FINISHED:
            return claim.detail
        return claim.outcome

    def renew_evaluation(self, run_id: str, token: str, lease: float) -> bool:
        return self.store.lease.renew(EVALUATION, self.store.run_key(run_id), token, lease)

    # -- evaluating --------------------------------------------------------------------------
    def keep(self, run: Mapping[str, Any], token: str, fields: Mapping[str, Any]) -> bool:
        """evaluating -> completed, the champion kept; only while ``token`` holds the run."""
        return self._finish(run, RunStatus.EVALUATING, RunStatus.COMPLETED, token, **fields)

    def promote(
        self,
        run: Mapping[str, Any],
        token: str,
        champion_id: str | None,
        by: str,
        fields: Mapping[str, Any],
    ) -> tuple[str, str]:
        """evaluating -> completed, the challenger deployed, in one step (see _PROMOTE).

        Returns:
            ('promoted', the history event) or why not: ('lost', '') another attempt holds
            the run; ('schedule_gone', ''); ('moved', the model deployed now);
            ('not_completed', the challenger's status).
        """
        store, registry = self.store, self.store.registry
        challenger = str(run.get("challenger_id") or "")  # none yet: the script answers 'lost'
        args = store.encode_args(
            {"status": RunStatus.COMPLETED, "finished_at": now_iso(), **fields}
        )
        outcome, detail = self._scripts["promote"](
            keys=[*registry.deploy_keys(challenger), *store.run_keys(run)],
            args=[*registry.deploy_args(challenger, by, champion_id), run["id"], token, *args],
        )
        return str(outcome), str(detail)

    def fail_evaluation(self, run: Mapping[str, Any], token: str, reason: str) -> bool:
        """evaluating -> failed; only while ``token`` holds the run."""
        return self._finish(run, RunStatus.EVALUATING, RunStatus.FAILED, token, error=reason)

    # -- shared ------------------------------------------------------------------------------
    def release(self, run: Mapping[str, Any]) -> None:
        """Free the schedule of a run its lease already failed (idempotent)."""
        self._scripts["release"](keys=self.store.run_keys(run), args=[run["id"]])

    def _finish(
        self, run: Mapping[str, Any], expected: str, status: str, token: str = "", **fields: Any
    ) -> bool:
        # a run whose schedule was deleted already expires (the delete script set it; HSET
        # keeps a key's expiry)
        args = self.store.encode_args({"status": status, "finished_at": now_iso(), **fields})
        return bool(
            self._scripts["finish_run"](
                keys=self.store.run_keys(run), args=[run["id"], token, expected, *args]
            )
        )
