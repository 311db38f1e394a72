"""GPU presence and utilisation over a run, for ``quarry bench e2e --device cuda``.

Owns: finding the GPU (``nvidia-smi -L``, else pynvml) with a clear error where there
is none, and sampling its utilisation while a job runs (``nvidia-smi`` in loop mode
every ``interval_ms``, else pynvml polled from a thread). ``utilization.gpu`` is the
share of the last sample period in which a kernel ran, so its mean over the job is the
share of the job's wall time the GPU was busy.

Must not import: torch, api/, workers/, tasks/.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class NoGpuError(RuntimeError):
    """--device cuda was asked for on a machine without a usable NVIDIA GPU."""


def gpu_names() -> list[str]:
    """The machine's NVIDIA GPUs; NoGpuError (saying why) when there is none."""
    smi = shutil.which("nvidia-smi")
    if smi:
        listing = subprocess.run([smi, "-L"], capture_output=True, text=True, check=False)
        names = [line for line in listing.stdout.splitlines() if line.startswith("GPU ")]
        if listing.returncode == 0 and names:
            return names
        raise NoGpuError(f"nvidia-smi -L lists no GPU: {listing.stderr.strip() or 'no output'}")
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError as exc:
        raise NoGpuError("no GPU: neither nvidia-smi nor pynvml is on this machine") from exc
    try:
        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
        return [
            str(pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i)))
            for i in range(count)
        ]
    except Exception as exc:  # pynvml raises its own NVMLError_* tree
        raise NoGpuError(f"no GPU: pynvml could not open the driver ({exc})") from exc


def summarise(samples: list[tuple[float, float, float]]) -> dict[str, Any]:
    """(seconds, util %, memory MiB) samples -> mean and median utilisation, the share
    of samples with the GPU busy at all, peak memory."""
    if not samples:
        return {"samples": 0, "util_mean_pct": None}
    utils = [u for _, u, _ in samples]
    return {
        "samples": len(samples),
        "util_mean_pct": round(statistics.fmean(utils), 1),
        "util_median_pct": round(statistics.median(utils), 1),
        "busy_share": round(sum(1 for u in utils if u > 0) / len(utils), 3),
        "memory_peak_mib": max(m for _, _, m in samples),
    }


@contextmanager
def gpu_sampler(interval_ms: int = 200) -> Iterator[list[tuple[float, float, float]]]:
    """Samples of GPU 0 while the block runs: (seconds since start, util %, MiB)."""
    samples: list[tuple[float, float, float]] = []
    started = time.perf_counter()
    smi = shutil.which("nvidia-smi")
    if smi:
        query = "--query-gpu=utilization.gpu,memory.used"
        proc = subprocess.Popen(
            [smi, "-i", "0", query, "--format=csv,noheader,nounits", f"-lms={interval_ms}"],
            stdout=subprocess.PIPE,
            text=True,
        )

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                util, _, memory = line.partition(",")
                if util.strip().isdigit():
                    at = time.perf_counter() - started
                    samples.append((at, float(util), float(memory.strip() or 0)))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            yield samples
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            reader.join(timeout=5)
            # The pipe outlives the process; left open it is a ResourceWarning (an
            # error under the tests' filterwarnings).
            assert proc.stdout is not None
            proc.stdout.close()
        return
    import pynvml

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(interval_ms / 1000):
            rates = pynvml.nvmlDeviceGetUtilizationRates(handle)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20
            samples.append((time.perf_counter() - started, float(rates.gpu), memory))

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        yield samples
    finally:
        stop.set()
        poller.join(timeout=5)
