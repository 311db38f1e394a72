"""``quarry model train``'s pairs: mined as ``quarry eval`` builds its queries, clear about
bad input, a fixed order and seeded batches (pure: files in a temporary folder)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import cli.model
from cli.train_pairs import NoPairsError, counts, mine, mine_folder, shuffled_batches

PY = '''"""The module's own docstring."""


def add(a, b):
    """Return the sum of two numbers given to it.

    More words that are not the query.
    """
    return a + b


def bare(x):
    return x
'''

GO = """package calc

// Sub returns the difference of two integers.
func Sub(a, b int) int {
\treturn a - b
}
"""


def _repo(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "util.py").write_text(PY)
    (root / "calc.go").write_text(GO)
    (root / "tests").mkdir()
    (root / "tests" / "helpers.py").write_text(PY.replace("add", "plus"))
    return root


def test_pairs_take_the_first_sentence_without_the_name_and_the_blanked_code(
    tmp_path: Path,
) -> None:
    pairs = {p.language: p for p in mine_folder(_repo(tmp_path / "repo"))}
    assert set(pairs) == {"python", "go"}  # tests/ is not mined, `bare` has no docstring
    py, go = pairs["python"], pairs["go"]
    assert py.query == "Return the sum of two numbers given to it."
    assert py.code.startswith("pkg/util.py\nadd\n\n")  # the chunker's header
    assert "def add(a, b):" in py.code and "return a + b" in py.code
    assert "sum of two numbers" not in py.code and '""' in py.code  # docstring blanked
    assert (py.source, py.path, py.start_line, py.end_line) == ("repo", "pkg/util.py", 4, 9)
    assert go.query == "returns the difference of two integers."  # `Sub` dropped
    assert "func Sub(a, b int) int {" in go.code and "difference" not in go.code


def test_a_code_text_is_kept_once_across_sources(tmp_path: Path) -> None:
    one, two = _repo(tmp_path / "one"), tmp_path / "two"
    (two / "pkg").mkdir(parents=True)
    (two / "pkg" / "util.py").write_text(PY)  # the same file, the same header
    pairs = mine([one, two])
    assert counts(pairs) == {"go": 1, "python": 1}
    assert counts(pairs, key="source") == {"one": 2}


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no-such-folder"):
        mine([tmp_path / "no-such-folder"])


def test_a_folder_without_doc_comments_is_named(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "m.py").write_text("def f(x):\n    return x\n")
    with pytest.raises(NoPairsError, match="plain"):
        mine([tmp_path / "plain"])
    with pytest.raises(NoPairsError, match="no training source"):
        mine([])


def test_batches_are_seeded_and_never_end_with_a_lone_pair(tmp_path: Path) -> None:
    pair = mine_folder(_repo(tmp_path / "repo"))[0]
    pairs = [pair.__class__(f"q{i}", f"c{i}", "go", "s", "p", i, i) for i in range(7)]
    first = shuffled_batches(pairs, 3, seed=1)
    assert first == shuffled_batches(pairs, 3, seed=1)
    assert [len(b) for b in first] == [3, 3]  # the seventh pair alone is dropped
    assert [p.query for b in first for p in b] != [
        p.query for b in shuffled_batches(pairs, 3, seed=2) for p in b
    ]
    assert [len(b) for b in shuffled_batches(pairs[:1], 3, seed=0)] == [1]
    with pytest.raises(ValueError, match="batch_size=1"):
        shuffled_batches(pairs, 1, seed=0)


def _train(*args: str) -> tuple[int, str]:
    app = typer.Typer()
    cli.model.register(app)

    @app.callback()
    def main() -> None:
        """Quarry."""

    result = CliRunner().invoke(app, ["model", "train", *args])
    return result.exit_code, result.stderr


def test_the_command_names_a_missing_folder_an_empty_one_and_a_used_output(
    tmp_path: Path,
) -> None:
    code, err = _train(str(tmp_path / "nowhere"), "--out", str(tmp_path / "model"))
    assert code == 2 and "nowhere" in err and "no such folder" in err
    (tmp_path / "plain").mkdir()
    code, err = _train(str(tmp_path / "plain"), "--out", str(tmp_path / "model"))
    assert code == 2 and "no (doc comment, function) pairs found" in err and "plain" in err
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("x")
    code, err = _train(str(tmp_path / "plain"), "--out", str(tmp_path / "used"))
    assert code == 2 and "used" in err and "not empty" in err
    assert not (tmp_path / "model").exists()


def test_a_symlink_out_of_the_folder_is_not_mined(tmp_path: Path) -> None:
    # A hostile source tree cannot make training read (and bake into weights) files
    # outside it: the indexer's file rule never follows a symlink out of the root.
    secret = tmp_path / "outside.py"
    secret.write_text('def leak():\n    """Return the private key of the host."""\n    return 1\n')
    root = _repo(tmp_path / "repo")
    (root / "pkg" / "linked.py").symlink_to(secret)
    assert all("private key" not in p.query for p in mine_folder(root))
