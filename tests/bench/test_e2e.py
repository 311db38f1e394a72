"""The pure parts of ``quarry bench e2e`` / ``incremental``: result shape, ratios,
changed-file selection, edits, option parsing, CPU accounting, GPU sample summary."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.e2e_gpu import summarise
from bench.e2e_plan import (
    apply_edits,
    change_counts,
    cold_figures,
    copy_tree,
    edit_text,
    incremental_step,
    parse_batch_sizes,
    parse_sweep,
    pick_changes,
    ratio,
    step_label,
    targets,
)
from bench.e2e_proc import CpuSample, cpu_use
from bench.e2e_stack import poll_wait_s
from cli.main import app

pytestmark = pytest.mark.timeout(30)


def test_cold_figures_carry_the_keys_the_issue_names_and_json_encode() -> None:
    result = cold_figures(files=100, chunks=2000, wall_s=80.0, raw_encode_s=72.0)
    for key in ("files", "chunks", "wall_s", "raw_encode_s", "ratio"):
        assert key in result
    assert result["ratio"] == 0.9
    assert result["chunks_per_s"] == 25.0
    assert result["raw_chunks_per_s"] == pytest.approx(27.8)
    assert result["files_per_s"] == 1.2
    assert json.loads(json.dumps(result)) == result


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [(72.0, 80.0, 0.9), (10.0, 3.0, 3.333), (1.0, 0.0, None), (None, 2.0, None), (2.0, None, None)],
)
def test_ratio_is_rounded_and_none_when_undefined(
    numerator: float | None, denominator: float | None, expected: float | None
) -> None:
    assert ratio(numerator, denominator) == expected


def test_incremental_speedup_is_cold_over_step() -> None:
    step = incremental_step(changed=12, wall_s=4.0, cold_wall_s=100.0)
    assert step == {"changed_files": 12, "wall_s": 4.0, "speedup": 25.0}


@pytest.mark.parametrize(
    ("total", "fractions", "expected"),
    [(1000, [0.01, 0.1, 0.2], [1, 10, 100, 200]), (30, [0.01, 0.1, 0.2], [1, 1, 3, 6])],
)
def test_change_counts_start_with_one_file_then_fractions_at_least_one(
    total: int, fractions: list[float], expected: list[int]
) -> None:
    assert change_counts(total, fractions) == expected


@pytest.mark.parametrize(("total", "fractions"), [(0, [0.1]), (10, [0.0]), (10, [1.5])])
def test_change_counts_reject_empty_corpus_and_bad_fractions(
    total: int, fractions: list[float]
) -> None:
    with pytest.raises(ValueError):
        change_counts(total, fractions)


def test_pick_changes_draws_disjoint_editable_sets_reproducibly() -> None:
    paths = [f"pkg/m{i}.py" for i in range(50)] + ["logo.png", "data.json"]
    sets = pick_changes(paths, [1, 5, 10], seed=7)
    assert [len(s) for s in sets] == [1, 5, 10]
    flat = [p for s in sets for p in s]
    assert len(set(flat)) == len(flat)
    assert all(p.endswith(".py") for p in flat)
    assert sets == pick_changes(paths, [1, 5, 10], seed=7)
    assert sets != pick_changes(paths, [1, 5, 10], seed=8)
    assert all(s == sorted(s) for s in sets)


def test_pick_changes_names_the_shortage() -> None:
    with pytest.raises(ValueError, match=r"need 3 editable files.*has 2"):
        pick_changes(["a.py", "b.md", "c.png"], [1, 2], seed=0)


def test_edits_append_new_content_that_differs_per_tag(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("x = 1\n")
    (tmp_path / "README.md").write_text("# T\n")
    apply_edits(tmp_path, ["src/a.py", "README.md"], "s1")
    code = (tmp_path / "src" / "a.py").read_text()
    assert code.startswith("x = 1\n") and "def quarry_bench_edit_s1(" in code
    compile(code, "a.py", "exec")
    assert (tmp_path / "README.md").read_text().endswith("edit s1: one more paragraph.\n")
    assert edit_text("a.py", "s1") != edit_text("a.py", "s2")


def test_copy_tree_copies_only_the_given_files(tmp_path: Path) -> None:
    root, dest = tmp_path / "root", tmp_path / "dest"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "a.py").write_text("abc")
    (root / "skip.py").write_text("zz")
    assert copy_tree(root, ["pkg/a.py"], dest) == 3
    assert [p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()] == ["pkg/a.py"]


def test_targets_are_judged_from_the_figures_and_none_when_not_measured() -> None:
    result = {
        "ratio": 2.5,
        "ratio_vs_raw_int8": 0.92,
        "backend": "onnx-int8",
        "wall_vs_cocoindex": 0.7,
        "cocoindex": {"cold": {"wall_s": 100.0}},
        "incremental": [
            {"label": "1 file", "wall_s": 0.8, "speedup": 100.0},
            {"label": "1%", "wall_s": 9.0, "speedup": 9.0},
            {"label": "20%", "wall_s": 30.0, "speedup": 2.5},
        ],
    }
    assert targets(result) == {
        "cold_ratio_ge_0.9": True,
        "int8_wall_le_0.6_cocoindex": False,
        "wall_le_0.6_cocoindex": False,
        "one_file_le_1s": True,
        "speedup_ge_10_at_1pct": False,
        "speedup_ge_2_at_20pct": True,
    }
    assert set(targets({"ratio": 0.5}).values()) == {False, None}
    # int8 is judged against the int8 embedder's own raw speed, not fp32's.
    int8 = {"backend": "onnx-int8", "ratio": 2.7, "ratio_vs_raw_int8": 0.88}
    assert targets(int8)["cold_ratio_ge_0.9"] is False
    assert targets({"backend": "onnx-int8", "ratio": 2.7})["cold_ratio_ge_0.9"] is None
    # onnx-fp32 (the CPU default) likewise against its own raw encode.
    fp32 = {"backend": "onnx-fp32", "ratio": 1.1, "ratio_vs_raw_own": 0.93}
    assert targets(fp32)["cold_ratio_ge_0.9"] is True
    assert targets({**fp32, "ratio_vs_raw_own": 0.8})["cold_ratio_ge_0.9"] is False


def test_step_labels_name_one_file_then_percentages() -> None:
    fractions = [0.01, 0.1, 0.2]
    assert [step_label(i, fractions) for i in range(4)] == ["1 file", "1%", "10%", "20%"]


def test_sweep_and_batch_sizes_parse_and_name_bad_entries() -> None:
    assert parse_sweep("1x2, 2x1,2x2") == [(1, 2), (2, 1), (2, 2)]
    assert parse_batch_sizes("64,256,1024") == [64, 256, 1024]
    for bad in ("2by1", "0x2", "x1", ""):
        with pytest.raises(ValueError):
            parse_sweep(bad)
    with pytest.raises(ValueError, match="'9000'"):
        parse_batch_sizes("64,9000")


def test_cpu_use_splits_the_machine_into_stack_kinds_and_others() -> None:
    before = CpuSample(1000, {"worker-embed": 100, "api": 10})
    after = CpuSample(1600, {"worker-embed": 400, "api": 30, "bench": 5})
    use = cpu_use(before, after, hz=100)
    assert use["machine_core_s"] == 6.0
    assert use["by_kind_core_s"] == {"api": 0.2, "bench": 0.05, "worker-embed": 3.0}
    assert use["stack_core_s"] == 3.25
    assert use["other_core_s"] == 2.75


def test_gpu_summary_is_the_mean_utilisation_and_busy_share() -> None:
    samples = [(0.2, 100.0, 900.0), (0.4, 50.0, 1000.0), (0.6, 0.0, 950.0), (0.8, 90.0, 990.0)]
    summary = summarise(samples)
    assert summary["util_mean_pct"] == 60.0
    assert summary["busy_share"] == 0.75
    assert summary["memory_peak_mib"] == 1000.0
    assert summarise([])["util_mean_pct"] is None


def test_cli_names_a_missing_corpus_and_a_bad_sweep(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["bench", "e2e", "--corpus", str(tmp_path / "nope")])
    assert missing.exit_code == 2
    assert "corpus does not exist" in missing.output
    bad = runner.invoke(app, ["bench", "e2e", "--corpus", str(tmp_path), "--sweep", "2by1"])
    assert bad.exit_code == 2
    assert "sweep entry '2by1'" in bad.output


def test_device_cuda_without_a_gpu_fails_saying_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bench.e2e_gpu.shutil.which", lambda _name: None)
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    result = CliRunner().invoke(
        app, ["bench", "e2e", "--corpus", str(tmp_path), "--device", "cuda"]
    )
    assert result.exit_code == 2
    assert "no GPU: neither nvidia-smi nor pynvml" in result.output


def test_a_job_is_polled_less_often_as_it_ages_and_never_late_by_over_one_percent() -> None:
    assert poll_wait_s(0.1, 0.0) == 0.1
    assert poll_wait_s(0.1, 9.0) == 0.1
    assert poll_wait_s(0.1, 30.0) == pytest.approx(0.3)
    assert poll_wait_s(0.1, 400.0) == 0.5
    assert poll_wait_s(0.01, 0.3) == 0.01  # the one-file step keeps its 10 ms polls
