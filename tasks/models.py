"""A model switch's Celery shims (pipeline.flow.MODEL_BACKFILL_TASK, MODEL_RETIRE_TASK;
the work: pipeline.stages.backfill), on the embed queue, where the models are.

A backfill runs as a chain of bounded steps (``model_backfill_step_s`` each): a step
sends the next with the key it stopped after, so that no task holds an embed process
for long, a worker killed mid-step costs one step (acks_late), and the progress is in
the registry, not in a task. The step that switches sends the retire task
``model_drop_grace_s`` later: it fills what stale writers left and drops the old vectors.

Must not import: workers/, api/, cli/, drivers.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from pipeline import flow
from pipeline.errors import PermanentError, TransientError
from pipeline.stages.backfill import backfill_step, retire_step
from tasks import recording
from tasks.context import embed_profile

log = logging.getLogger("quarry.models")
RETRY_S = 5.0


@shared_task(name=flow.MODEL_BACKFILL_TASK, acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]
def backfill(model_id: str, after: list[Any] | None = None) -> str:
    """One step of ``model_id``'s backfill; sends the next step, or the retire task."""
    resources, profile = embed_profile()
    live = profile.models
    if live is None:
        raise RuntimeError("this embed worker has no model registry")
    settings = resources.settings
    key = (int(after[0]), str(after[1]), str(after[2])) if after else None
    model = None
    try:
        model = next((m for m in live.registry.live() if m.model_id == model_id), None)
        if model is None or model.state != "backfilling":
            return "stopped"
        step = backfill_step(
            live.registry,
            live.service(model),
            model_id,
            after=key,
            batch_rows=settings.model_backfill_batch_rows,
            budget_s=settings.model_backfill_step_s,
        )
    except TransientError as exc:
        log.warning("backfill of %s: %s; again in %.0f s", model_id, exc, RETRY_S)
        backfill.apply_async(kwargs={"model_id": model_id, "after": after}, countdown=RETRY_S)
        return "retry"
    except PermanentError as exc:
        log.error("backfill of %s failed for good: %s", model_id, exc)
        if model is not None:
            live.registry.cancel(model, str(exc))
        return "failed"
    recording.record_backfill(model_id, step.done, step.total)
    if step.stopped:
        return "stopped"
    if step.switched:
        recording.record_model_states(
            {m.model_id: m.state for m in live.registry.models()}, switched=True
        )
        retire.apply_async(countdown=settings.model_drop_grace_s)
        return "switched"
    recording.record_model_states({model_id: "backfilling"})
    backfill.apply_async(kwargs={"model_id": model_id, "after": list(step.after or []) or None})
    return f"{step.done}/{step.total}"


@shared_task(name=flow.MODEL_RETIRE_TASK, acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]
def retire() -> list[str]:
    """Fill the active model's rows a stale writer left, then drop retired vectors."""
    resources, profile = embed_profile()
    live = profile.models
    if live is None:
        raise RuntimeError("this embed worker has no model registry")
    active = next((m for m in live.registry.live() if m.state == "active"), None)
    if active is None:
        return []
    written, dropped = retire_step(
        live.registry,
        live.service(active),
        batch_rows=resources.settings.model_backfill_batch_rows,
        budget_s=resources.settings.model_backfill_step_s,
    )
    if dropped is None:  # rows still missing after a step: on with the next one
        log.info(
            "model %s: %d rows filled after the switch, more to fill", active.model_id, written
        )
        retire.apply_async()
        return []
    log.info(
        "model %s: %d rows filled after the switch; dropped %s", active.model_id, written, dropped
    )
    recording.record_model_states({m.model_id: m.state for m in live.registry.models()})
    return dropped
