"""The word-embedding table of an ONNX export, read row by row, never held in memory.

The export's graph starts at the token embeddings (``inputs_embeds``); the table itself
(vocabulary x hidden float32: 45 MiB for MiniLM) is a file of its own. A batch needs the
rows of its distinct token ids only (a query: 10-30), read with ``pread``: unlike a
mapping, which maps the page-cache folios around every row it touches until the whole
table is resident, nothing of the table stays in the process (the API's RSS grew 27 MiB
over 11 queries with the table inside the graph; bench/results/e2e.md, "Lean API").

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path

import numpy as np
import numpy.typing as npt

from pipeline.errors import ConfigError, InvalidInputError

_FLOAT32_BYTES = 4


class WordTable:
    """The rows of ``path``: ``rows`` token ids, ``width`` float32 values each. The file
    stays open while this object lives (then it is closed, also while unreferenced by a
    call still running elsewhere: never under it)."""

    def __init__(self, path: Path, *, rows: int, width: int) -> None:
        self._row_bytes = width * _FLOAT32_BYTES
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise ConfigError(f"embedding model file {path} does not load: {exc}") from exc
        if size != rows * self._row_bytes:
            raise ConfigError(
                f"embedding model file {path}: {size} bytes, not {rows} rows of {width} floats"
            )
        self._fd = os.open(path, os.O_RDONLY)
        self._closer = weakref.finalize(self, os.close, self._fd)
        self._rows = rows
        self._width = width
        self.path = path

    def vectors(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """``ids``' rows, shaped ``ids.shape + (width,)``."""
        unique, inverse = np.unique(ids, return_inverse=True)
        rows = np.empty((len(unique), self._width), dtype=np.float32)
        for index, token in enumerate(unique.tolist()):
            if not 0 <= token < self._rows:
                raise InvalidInputError(f"token id {token} is outside the vocabulary")
            data = os.pread(self._fd, self._row_bytes, token * self._row_bytes)
            if len(data) != self._row_bytes:
                raise ConfigError(f"embedding model file {self.path}: row {token} is short")
            rows[index] = np.frombuffer(data, dtype=np.float32)
        return rows[inverse.reshape(-1)].reshape(*ids.shape, self._width)

    def close(self) -> None:
        self._closer()
