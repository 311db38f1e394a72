"""`quarry chunk`: chunk listing, JSON lines, graph JSON lines, skips and a missing path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cli.chunk import register

FIXTURES = Path(__file__).resolve().parents[2] / "tests/fixtures/languages"
CHUNK_KEYS = {
    "path", "language", "start_line", "end_line", "symbol", "kind", "content_hash",
    "chunk_id", "tokens", "text",
}  # fmt: skip


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def main() -> None:
        """Quarry."""

    return app


def run(app: typer.Typer, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["chunk", *args])
    return result.exit_code, result.stdout, result.stderr


def test_json_prints_one_chunk_object_per_line(app: typer.Typer) -> None:
    code, out, _ = run(app, str(FIXTURES / "sample.py"), "--json")
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert records
    assert all(set(r) == CHUNK_KEYS for r in records)
    assert records[0]["language"] == "python"
    assert all(r["tokens"] <= 256 - 2 for r in records)


def test_plain_listing_names_path_lines_and_symbol(app: typer.Typer) -> None:
    code, out, _ = run(app, str(FIXTURES / "sample.go"))
    assert code == 0
    assert "sample.go:1-" in out
    assert "func bark() string" in out


def test_no_header_flag_drops_the_header(app: typer.Typer) -> None:
    _, out, _ = run(app, str(FIXTURES / "sample.py"), "--json", "--no-header")
    first = json.loads(out.splitlines()[0])
    assert first["text"].startswith('"""Sample module."""')


def test_graph_prints_symbols_and_edges(app: typer.Typer) -> None:
    code, out, _ = run(app, str(FIXTURES / "pyproj"), "--graph")
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    symbols = {r["qualified_name"] for r in records if r["type"] == "symbol"}
    assert {"app.Greeter", "app.Greeter.greet", "pkg.helpers.shout"} <= symbols
    symbol = next(r for r in records if r["type"] == "symbol")
    assert set(symbol) == {
        "type", "name", "qualified_name", "kind", "path", "start_line", "end_line"
    }  # fmt: skip
    edge_rows = {
        (r["kind"], r["source"], r["target"], r["resolved"]) for r in records if r["type"] == "edge"
    }
    assert ("imports", "app.py", "pkg/helpers.py", True) in edge_rows
    assert ("calls", "app.Greeter.greet", "pkg.helpers.shout", True) in edge_rows
    assert ("contains", "app.Greeter", "app.Greeter.greet", True) in edge_rows


def test_folder_reports_skipped_files_to_stderr(app: typer.Typer, tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01\x02")
    (tmp_path / ".gitignore").write_text("ignored.py\n")
    (tmp_path / "ignored.py").write_text("y = 2\n")
    code, out, err = run(app, str(tmp_path), "--json")
    assert code == 0
    assert {json.loads(line)["path"] for line in out.splitlines()} == {"a.py", ".gitignore"}
    assert "skipped blob.bin: binary" in err
    assert "skipped ignored.py: ignored" in err


def test_missing_path_is_a_one_line_error_with_exit_code_2(app: typer.Typer) -> None:
    code, out, err = run(app, "/no/such/path")
    assert code == 2
    assert out == ""
    assert err.strip() == "quarry: error: path does not exist: /no/such/path"


def test_undecodable_bytes_are_reported_on_stderr(app: typer.Typer, tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_bytes(b"x = '\xc3\xa9 \xff'\n")
    code, out, err = run(app, str(tmp_path / "bad.py"), "--json")
    assert code == 0
    assert "\ufffd" in json.loads(out.splitlines()[0])["text"]
    assert "1 undecodable bytes replaced" in err
