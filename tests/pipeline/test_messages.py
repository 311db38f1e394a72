"""Stage messages round-trip exactly, and a malformed one is refused naming the field."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from pipeline.analysis.analyze import FileAnalysis, analyze_file
from pipeline.errors import InvalidInputError
from pipeline.messages import (
    FileChunks,
    decode_file_chunks,
    decode_file_graph,
    decode_more_vectors,
    decode_vectors,
    encode_file_chunks,
    encode_file_graph,
    encode_vectors,
)
from pipeline.models import FileGraph, FileVersion, RepoRef

SOURCE = '''"""Módulo."""

class Greeter(Base):
    def greet(self, name):
        return helper(name)


def helper(name):
    return f"hi {name}"
'''.encode()
REPO = RepoRef("acme", "tools")
FILE = FileVersion("src/gréet.py", "ab" * 32, "python", len(SOURCE))


def _analysis() -> FileAnalysis:
    result = analyze_file(FILE.path, SOURCE)
    assert isinstance(result, FileAnalysis)
    return result


def _roundtrip(payload: dict[str, Any]) -> Any:
    return json.loads(json.dumps(payload))


def test_file_chunks_survive_json_unchanged() -> None:
    batch = FileChunks("job-1", REPO, FILE, _analysis().chunks)
    assert decode_file_chunks(_roundtrip(encode_file_chunks(batch))) == batch


def test_file_graph_survives_json_unchanged() -> None:
    analysis = _analysis()
    pairs = tuple((c.chunk_id, c.symbol) for c in analysis.chunks)
    graph = FileGraph(FILE, analysis.extraction, pairs)
    job_id, repo, decoded = decode_file_graph(_roundtrip(encode_file_graph("j", REPO, graph)))
    assert (job_id, repo, decoded) == ("j", REPO, graph)


def test_vectors_round_trip_as_float32_and_none_stays_none() -> None:
    vectors = [np.arange(4, dtype=np.float32), None]
    decoded = decode_vectors(_roundtrip({"v": encode_vectors(vectors)})["v"], 2, 4)
    np.testing.assert_array_equal(decoded[0], vectors[0])
    assert decoded[1] is None


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda m: m.pop("file"), r"message\.file"),
        (lambda m: m["file"].update(size_bytes="12"), r"file\.size_bytes"),
        (lambda m: m["chunks"][0].update(kind="poem"), "unknown chunk kind 'poem'"),
        (lambda m: m["chunks"][0].update(span=[1, 2]), r"span: expected four integers"),
        (lambda m: m.update(repo=None), r"repo: expected an object"),
        (lambda m: m.update(job_id=5), r"job_id"),
    ],
)
def test_a_malformed_chunk_message_names_the_field(mutate: Any, message: str) -> None:
    payload = _roundtrip(encode_file_chunks(FileChunks(None, REPO, FILE, _analysis().chunks)))
    mutate(payload)
    with pytest.raises(InvalidInputError, match=message):
        decode_file_chunks(payload)


@pytest.mark.parametrize("values", [["not base64!"], [123], ["AAAA"], "AAAA", [None, None]])
def test_malformed_vectors_are_refused(values: Any) -> None:
    with pytest.raises(InvalidInputError, match="vectors"):
        decode_vectors(values, 1, 4)


def test_other_models_vectors_round_trip_and_a_malformed_map_names_the_field() -> None:
    vectors = {"model-b": encode_vectors([np.arange(3, dtype=np.float32), None])}
    decoded = decode_more_vectors(_roundtrip({"m": vectors})["m"], 2)
    np.testing.assert_array_equal(decoded["model-b"][0], np.arange(3, dtype=np.float32))
    assert decoded["model-b"][1] is None and decode_more_vectors(None, 2) == {}
    with pytest.raises(InvalidInputError, match="more_vectors"):
        decode_more_vectors(["x"], 2)
    with pytest.raises(InvalidInputError, match=r"message\.vectors"):
        decode_more_vectors({"model-b": ["AAAA"]}, 2)
