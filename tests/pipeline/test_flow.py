"""The stage graph (pipeline.flow) is the one place that says where work goes next: every
stage is routed to its queue and registered as a task, every edge names a stage, the
flow only moves forward, and no other module names a task by its string."""

from __future__ import annotations

import ast
import fnmatch
import importlib
from pathlib import Path

import pytest

from config import queues
from pipeline import flow

REPO = Path(__file__).resolve().parents[2]
NAMES = {s.name for s in flow.STAGES}


def test_the_stages_read_in_order_and_only_move_forward() -> None:
    assert [s.name for s in flow.STAGES] == [
        "ingest", "ingest-more", "chunk", "embed", "write", "graph", "graph-files", "commit",
        "webhook",
    ]  # fmt: skip
    for index, stage in enumerate(flow.STAGES):
        for successor in stage.sends:
            assert successor in NAMES, f"{stage.name} sends to unknown stage {successor!r}"
            later = [s.name for s in flow.STAGES[index + 1 :]]
            # A stage may continue itself (the next slice); it never goes back.
            assert successor in later or successor == stage.name, (
                f"{stage.name} -> {successor} goes backwards"
            )


def test_only_settling_stages_release_and_only_the_next_slice() -> None:
    """Fair sharing's one backward hand-off (pipeline.stages.window)."""
    for name, released in flow.RELEASES.items():
        assert name in NAMES
        assert released == (flow.INGEST_MORE.name,)


def test_every_stage_is_routed_to_its_queue() -> None:
    for stage in flow.STAGES:
        routes = [
            r["queue"] for p, r in queues.TASK_ROUTES.items() if fnmatch.fnmatch(stage.task, p)
        ]
        assert routes == [stage.queue], stage
        assert stage.task in queues.ALL_TASKS


def test_the_registered_tasks_are_the_graphs_and_nothing_else() -> None:
    from tasks.app import create_app

    app = create_app()
    app.loader.import_default_modules()
    registered = {name for name in app.tasks if name.startswith("quarry.")}
    assert registered == {s.task for s in flow.STAGES} | {
        flow.SWEEP_TASK,
        flow.DELETE_REPO_TASK,
        flow.INDEX_VECTORS_TASK,
        flow.MODEL_BACKFILL_TASK,
        flow.MODEL_RETIRE_TASK,
    }
    assert set(queues.ALL_TASKS) == registered


@pytest.mark.parametrize("stage", flow.STAGES, ids=lambda s: s.name)
def test_each_stage_names_a_use_case_that_exists(stage: flow.Stage) -> None:
    module, _, name = stage.use_case.rpartition(".")
    assert callable(getattr(importlib.import_module(module), name))


def test_stage_names_an_unknown_stage_in_its_error() -> None:
    assert flow.stage("embed") is flow.EMBED
    with pytest.raises(KeyError, match="no stage 'index'"):
        flow.stage("index")


def _modules() -> list[Path]:
    return sorted(
        p for pkg in ("pipeline", "tasks", "api", "workers") for p in (REPO / pkg).rglob("*.py")
    )


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_module_hands_work_on_by_a_task_name_of_its_own(path: Path) -> None:
    """Hand-offs name a stage of the graph (``flow.WRITE.task``): no literal task name
    and, in pipeline/ and tasks/, no task-name constant taken around the graph."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    literals = {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in queues.ALL_TASKS
    }
    assert not literals, f"{path.name} names tasks by string: {sorted(literals)}"
    rel = path.relative_to(REPO)
    if rel.parts[0] in ("pipeline", "tasks") and rel.as_posix() != "pipeline/flow.py":
        around = {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == "config.queues"
            for alias in node.names
            if alias.name.endswith("_TASK")
        }
        assert not around, f"{path.name} imports {sorted(around)} around the stage graph"
