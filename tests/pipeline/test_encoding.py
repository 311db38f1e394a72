"""Decoding: UTF-8 first, a fallback otherwise, repairs counted, NUL bytes removed."""

from __future__ import annotations

import pytest

from pipeline.analysis.encoding import decode_bytes, source_file

CASES = [
    # data, text, encoding, replaced, removed NULs
    (b"plain ascii\n", "plain ascii\n", "utf-8", 0, 0),
    ("caf\u00e9 \u043a\u043b\u044e".encode(), "caf\u00e9 \u043a\u043b\u044e", "utf-8", 0, 0),
    (b"\xef\xbb\xbfbom", "bom", "utf-8-sig", 0, 0),
    ("x\u00e9".encode("utf-16"), "x\u00e9", "utf-16", 0, 0),
    (b"caf\xe9 cr\xe8me", "caf\u00e9 cr\u00e8me", "cp1252", 0, 0),
    (b"ok \xc3\xa9 bad \xff\xfe", "ok \u00e9 bad \ufffd\ufffd", "utf-8", 2, 0),
    (b"a\x00b\x00", "ab", "utf-8", 0, 2),
    (b"literal \xef\xbf\xbd kept", "literal \ufffd kept", "utf-8", 0, 0),
    (b"", "", "utf-8", 0, 0),
]  # fmt: skip


@pytest.mark.parametrize(("data", "text", "encoding", "replaced", "nuls"), CASES)
def test_decode_bytes(data: bytes, text: str, encoding: str, replaced: int, nuls: int) -> None:
    decoded = decode_bytes(data)
    assert (decoded.text, decoded.encoding) == (text, encoding)
    assert (decoded.replaced_count, decoded.removed_nul_count) == (replaced, nuls)


def test_source_file_reports_repairs_and_detects_language_from_shebang() -> None:
    source = source_file("bin/tool", b"#!/usr/bin/env python3\nx = '\xff'\x00\n")
    assert source.language == "python"
    assert source.had_decode_errors
    assert source.removed_nul_count == 1
    assert "\x00" not in source.text
