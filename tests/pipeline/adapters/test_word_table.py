"""The export's word-embedding table, read by row: shapes, repeats, bad ids and files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.adapters.models.word_table import WordTable
from pipeline.errors import ConfigError, InvalidInputError


@pytest.fixture
def table_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.onnx.words"
    np.arange(5 * 3, dtype=np.float32).reshape(5, 3).tofile(path)
    return path


def test_rows_come_back_in_the_shape_of_the_ids_repeats_included(table_file: Path) -> None:
    table = WordTable(table_file, rows=5, width=3)
    ids = np.array([[4, 0, 4], [1, 1, 2]], dtype=np.int64)
    expected = np.arange(15, dtype=np.float32).reshape(5, 3)[ids]
    np.testing.assert_array_equal(table.vectors(ids), expected)
    assert table.vectors(ids).shape == (2, 3, 3)
    table.close()


def test_an_id_outside_the_vocabulary_is_refused(table_file: Path) -> None:
    table = WordTable(table_file, rows=5, width=3)
    with pytest.raises(InvalidInputError, match="token id 5"):
        table.vectors(np.array([[0, 5]], dtype=np.int64))


@pytest.mark.parametrize(("rows", "width"), [(6, 3), (5, 4)])
def test_a_file_of_another_size_is_a_config_error(table_file: Path, rows: int, width: int) -> None:
    with pytest.raises(ConfigError, match="60 bytes"):
        WordTable(table_file, rows=rows, width=width)


def test_a_missing_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.words"):
        WordTable(tmp_path / "missing.words", rows=1, width=1)
