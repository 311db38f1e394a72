"""The GPU checks' own logic, on a CPU: parity verdicts, the parity sample, GPU sampling."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import numpy as np
import pytest

from bench.e2e_gpu import gpu_sampler, summarise
from bench.gpu_checks import parity_report
from bench.gpu_prepare import parity_sample


def _unit(rows: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((rows, 384)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _nudged(v: np.ndarray, scale: float) -> np.ndarray:
    w = v + scale * _unit(len(v), 7)
    return w / np.linalg.norm(w, axis=1, keepdims=True)


@pytest.mark.parametrize(
    ("case", "passes"),
    [("same", True), ("fp16-like noise", True), ("one row off", False), ("one NaN", False)],
)
def test_parity_passes_only_when_every_row_is_finite_and_close(case: str, passes: bool) -> None:
    reference = _unit(32, 1)
    got = reference.copy()
    if case == "fp16-like noise":
        got = _nudged(reference, 1e-3)
    elif case == "one row off":
        got[5] = _unit(1, 2)[0]
    elif case == "one NaN":
        got[3, 10] = np.nan
    report = parity_report(got, reference)
    assert report["passed"] is passes
    assert report["nan_or_inf_rows"] == (1 if case == "one NaN" else 0)


def test_the_parity_sample_spans_short_to_full_chunks() -> None:
    texts = ["x" * n for n in range(1, 1001)]
    picked = parity_sample(texts, 10)
    lengths = sorted(len(texts[i]) for i in picked)
    assert len(set(picked)) == 10
    assert lengths[0] <= 100 and lengths[-1] >= 900
    assert parity_sample(texts[:5], 10) == [0, 1, 2, 3, 4]


def test_gpu_sampling_reads_nvidia_smi_in_loop_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in nvidia-smi printing what the real one prints with -lms: the parsing the
    # GPU run relies on, rehearsed where there is no GPU.
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\nwhile true; do echo '87, 1234'; echo '93, 1240'; sleep 0.02; done\n")
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    with gpu_sampler(interval_ms=20) as samples:
        time.sleep(0.5)
    summary = summarise(samples)
    assert summary["samples"] >= 4
    assert 87 <= summary["util_mean_pct"] <= 93
    assert summary["busy_share"] == 1.0
    assert summary["memory_peak_mib"] == 1240
