"""The store's SQL texts and rows, checked without a driver."""

from __future__ import annotations

import re

import numpy as np
import pytest

from pipeline.errors import InvalidInputError
from pipeline.models import Chunk, ChunkKind, RepoRef, Span, StoredChunk
from pipeline.statements import sql

DIM = 4


def _chunk(
    chunk_id: str = "c1", *, path: str = "pkg/mod.py", text: str = "def getX(): ..."
) -> Chunk:
    return Chunk(chunk_id, path, "python", Span(1, 3, 0, 40), "pkg.mod.getX", ChunkKind.FUNCTION,
                 "hash-" + chunk_id, 7, text)  # fmt: skip


UNIT = np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32)


def _stored(
    chunk: Chunk | None = None, *, sha: str = "sha-1", embedding: object = UNIT
) -> StoredChunk:
    return StoredChunk(chunk or _chunk(), sha, "model-a", embedding)  # type: ignore[arg-type]


def _columns(create: str) -> list[tuple[str, str]]:
    body = create[create.index("(") + 1 : create.rindex(")")]
    return [tuple(line.strip(" ,").split()[:2]) for line in body.strip().splitlines()]  # type: ignore[misc]


def _listed(statement: str, after: str) -> list[str]:
    start = statement.index(after) + len(after)
    inside = statement[statement.index("(", start) + 1 : statement.index(")", start)]
    return [name.strip() for name in inside.split(",")]


def test_staging_table_copy_and_row_share_one_column_order() -> None:
    created = _columns(sql.CREATE_CHUNK_STAGING)
    assert [name for name, _ in created] == list(sql.CHUNK_STAGING_COLUMNS)
    assert [kind for _, kind in created] == list(sql.CHUNK_STAGING_TYPES)
    assert _listed(sql.COPY_CHUNK_STAGING, "COPY quarry_chunk_staging") == list(
        sql.CHUNK_STAGING_COLUMNS
    )
    assert len(sql.chunk_row(_stored(), DIM)) == len(sql.CHUNK_STAGING_COLUMNS)
    assert "ON COMMIT DROP" in sql.CREATE_CHUNK_STAGING
    assert "FORMAT BINARY" in sql.COPY_CHUNK_STAGING


def test_merge_is_one_insert_select_keyed_by_file_version_with_tsvector_in_sql() -> None:
    merge = sql.merge_chunks(7)
    assert merge.params == {"repository_id": 7, "defer": False}
    assert sql.merge_chunks(7, defer_index=True).params == {"repository_id": 7, "defer": True}
    text = " ".join(merge.text.split())
    assert text.startswith("INSERT INTO chunks AS c (")
    assert "FROM quarry_chunk_staging ORDER BY file_sha256, id" in text, "same lock order"
    assert "ON CONFLICT (repository_id, file_sha256, id) DO UPDATE SET" in text
    assert "to_tsvector('simple', lexical)" in text
    inserted = _listed(text, "INSERT INTO chunks AS c")
    staged = [c for c in sql.CHUNK_STAGING_COLUMNS if c != "lexical"]
    assert inserted == ["repository_id", *staged, "tsv", "indexed"]
    assert "lexical), embedding IS NULL OR NOT %(defer)s::boolean FROM" in text, (
        "a deferred row with a vector waits for the HNSW index (0021); one without a"
        " vector, or not deferred, has none to wait for"
    )
    updated = re.findall(r"(\w+) = EXCLUDED\.\1", text)
    assert updated == [c for c in inserted if c not in ("repository_id", "id", "file_sha256")]
    assert "IS DISTINCT FROM" in text, "a replay that changes nothing must not rewrite rows"


@pytest.mark.parametrize(
    "query",
    [
        sql.delete_files(3, ["a.py"]),
        sql.retain_versions(3, {"a.py": "s"}),
        sql.file_versions(3),
        sql.chunk_keys(3),
        *sql.delete_repository(3)[:1],
    ],
    ids=lambda q: q.text.split()[0] + " " + q.text.split()[3],
)
def test_every_chunk_statement_is_scoped_by_repository(query: sql.Query) -> None:
    assert "repository_id = %(repository_id)s" in query.text
    assert query.params["repository_id"] == 3


def test_delete_files_binds_distinct_paths_as_one_array() -> None:
    query = sql.delete_files(1, ["b.py", "a.py", "b.py"])
    assert query.params["paths"] == ["a.py", "b.py"]
    assert "path = ANY(%(paths)s::text[])" in query.text


def test_retain_versions_binds_the_paths_and_aligned_kept_path_and_sha_arrays() -> None:
    query = sql.retain_versions(1, {"b.py": {"sb"}, "a.py": {"sa2", "sa1"}, "c.py": set()})
    assert query.params["paths"] == ["a.py", "b.py", "c.py"]
    assert query.params["kept_paths"] == ["a.py", "a.py", "b.py"]
    assert query.params["kept_shas"] == ["sa1", "sa2", "sb"]
    text = " ".join(query.text.split())
    assert "c.path = ANY(%(paths)s::text[]) AND NOT EXISTS" in text
    assert "unnest(%(kept_paths)s::text[], %(kept_shas)s::text[])" in text


def test_repository_then_chunks_are_deleted() -> None:
    first, second = sql.delete_repository(9)
    assert first.text.startswith("DELETE FROM chunks")
    assert second.text.startswith("DELETE FROM repositories WHERE id")


def test_repository_lookups_bind_tenant_and_name() -> None:
    repo = RepoRef("acme", "web")
    assert sql.ensure_tenant(repo).params == {"tenant": "acme"}
    assert sql.repository_id(repo).params == {"tenant": "acme", "name": "web"}
    created = {"tenant": "acme", "name": "web", "default_ref": None}
    assert sql.ensure_repository(repo).params == created
    assert sql.ensure_repository(repo, "trunk").params == created | {"default_ref": "trunk"}
    assert "ON CONFLICT (tenant_id, name) DO NOTHING" in sql.ensure_repository(repo).text


def test_cache_statements_bind_model_and_distinct_hashes() -> None:
    query = sql.cached_embeddings("m", ["h2", "h1", "h2"])
    assert query.params == {"model_id": "m", "hashes": ["h1", "h2"]}
    assert "content_sha256 = ANY(%(hashes)s::text[])" in query.text
    assert "ON CONFLICT (model_id, content_sha256) DO NOTHING" in sql.merge_cache("m").text
    assert [n for n, _ in _columns(sql.CREATE_CACHE_STAGING)] == list(sql.CACHE_STAGING_COLUMNS)


def test_chunk_row_holds_the_chunk_a_fresh_float32_vector_and_lexical_text() -> None:
    source = np.array([0.5, 0.5, 0.5, 0.5], dtype=np.float32)
    row = sql.chunk_row(_stored(embedding=source), DIM)
    assert row[:13] == ("c1", "pkg/mod.py", "sha-1", 1, 3, 0, 40, "pkg.mod.getX", "function",
                        "python", "def getX(): ...", "hash-c1", "model-a")  # fmt: skip
    vector = row[13]
    assert vector is not None and vector.dtype == np.float32
    assert np.array_equal(vector, source) and not np.shares_memory(vector, source)
    assert row[14] == "def getx get x"


def test_chunk_row_takes_a_list_of_floats_and_no_embedding() -> None:
    assert sql.chunk_row(_stored(embedding=[0.0, 1.0, 0.0, 0.0]), DIM)[13] is not None
    assert sql.chunk_row(_stored(embedding=None), DIM)[13] is None


def test_duplicate_keys_in_a_batch_keep_the_last() -> None:
    first = _stored(_chunk(text="one"))
    second = _stored(_chunk(text="two"))
    other_version = _stored(_chunk(text="three"), sha="sha-2")
    rows = sql.chunk_rows([first, second, other_version], DIM)
    assert [(r[2], r[10]) for r in rows] == [("sha-1", "two"), ("sha-2", "three")]


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        (_stored(_chunk(text="a\x00b")), r"chunk 'c1' of 'pkg/mod.py': its text holds a NUL byte"),
        (_stored(_chunk(path="a\x00.py")), r"its path holds a NUL byte"),
        (_stored(_chunk(text="\ud800")), r"its text holds a lone surrogate"),
        (_stored(_chunk(path="")), r"its path is empty"),
        (_stored(sha=""), r"its file sha256 is empty"),
        (_stored(embedding=[1.0, 0.0]), r"embedding has shape \(2,\), expected \(4,\)"),
        (_stored(embedding=[[1.0] * 4]), r"embedding has shape \(1, 4\)"),
        (_stored(embedding=[1.0, float("nan"), 0.0, 0.0]), r"NaN or infinite"),
        (_stored(embedding=["x", "y", "z", "w"]), r"not a vector of floats"),
    ],
)
def test_bad_chunk_is_refused_naming_the_chunk_and_the_field(
    stored: StoredChunk, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        sql.chunk_rows([_stored(_chunk("ok")), stored], DIM)


@pytest.mark.parametrize(
    "span", [Span(0, 1, 0, 1), Span(3, 2, 0, 1), Span(1, 1, 5, 4), Span(1, 1, -1, 4)]
)
def test_span_the_schema_would_refuse_is_refused(span: Span) -> None:
    chunk = Chunk("c1", "a.py", "python", span, "", ChunkKind.OTHER, "h", 1, "x")
    with pytest.raises(InvalidInputError, match="its span"):
        sql.chunk_row(_stored(chunk), DIM)


@pytest.mark.parametrize(
    ("repo", "message"),
    [
        (RepoRef("Acme", "web"), "tenant 'Acme' is invalid"),
        (RepoRef("-acme", "web"), "tenant '-acme' is invalid"),
        (RepoRef("a" * 64, "web"), "is invalid"),
        (RepoRef("acme", ""), "repository name '' of tenant 'acme' is invalid"),
        (RepoRef("acme", "x" * 201), "is invalid"),
        (RepoRef("acme", "a\x00b"), "is invalid"),
    ],
)
def test_repository_the_schema_would_refuse_is_refused_naming_it(
    repo: RepoRef, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        sql.check_repo(repo)


def test_valid_repositories_pass() -> None:
    for repo in (RepoRef("acme", "web"), RepoRef("a" * 63, "x" * 200), RepoRef("t_1-x", "a/b")):
        sql.check_repo(repo)


def test_cache_rows_are_checked_and_named() -> None:
    rows = sql.cache_rows("m", {"h1": np.ones(DIM, dtype=np.float32)}, DIM)
    assert [h for h, _ in rows] == ["h1"]
    with pytest.raises(InvalidInputError, match=r"content 'h2' of 'm'.*shape"):
        sql.cache_rows("m", {"h1": np.ones(DIM), "h2": np.ones(3)}, DIM)
    with pytest.raises(InvalidInputError, match="model id is empty"):
        sql.cache_rows("", {}, DIM)
    with pytest.raises(InvalidInputError, match="content hash cached for model 'm' 'a\\\\x00'"):
        sql.cache_rows("m", {"a\x00": np.ones(DIM)}, DIM)


def test_vector_column_lookup_binds_table_and_column() -> None:
    query = sql.vector_column("chunks", "embedding")
    assert query.params == {"table": "chunks", "column": "embedding"}
    assert "to_regclass(%(table)s)" in query.text
