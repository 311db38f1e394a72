"""Bytes to text: UTF-8 first, a fallback guess otherwise, with every repair counted.

Owns decoding and the cleaning that storage needs (NUL bytes removed: PostgreSQL text
cannot hold them). Builds a :class:`SourceFile` from a path and its bytes.
Must not import: celery, tasks/, workers/, api/, cli/, or any driver; does no I/O.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from pipeline.analysis.languages import detect_language
from pipeline.models import SourceFile

# Above this share of undecodable bytes the file is probably not UTF-8 at all; a
# single-byte code page then reads it without losing characters.
_MAX_UTF8_ERROR_RATIO = 0.01

_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


@dataclass(frozen=True, slots=True)
class DecodedText:
    """Text with the encoding used and the repairs made to it."""

    text: str
    encoding: str
    replaced_count: int
    removed_nul_count: int


def decode_bytes(data: bytes) -> DecodedText:
    """Decode ``data``; never raises. Undecodable bytes become U+FFFD and are counted."""
    encoding = _encoding_from_bom(data)
    if encoding is not None:
        text = data.decode(encoding, errors="replace")
    else:
        try:
            text = data.decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError:
            text, encoding = _decode_fallback(data)
    replaced = text.count("\ufffd") - _count_literal_replacement_chars(data, encoding)
    nul_count = text.count("\x00")
    if nul_count:
        text = text.replace("\x00", "")
    return DecodedText(text, encoding, max(replaced, 0), nul_count)


def source_file(path: str, data: bytes, language: str | None = None) -> SourceFile:
    """Decode ``data`` and detect its language from ``path`` (and a shebang)."""
    decoded = decode_bytes(data)
    lang = language or detect_language(path, decoded.text[:256])
    return SourceFile(
        path=path,
        language=lang,
        text=decoded.text,
        encoding=decoded.encoding,
        replaced_count=decoded.replaced_count,
        removed_nul_count=decoded.removed_nul_count,
    )


def _encoding_from_bom(data: bytes) -> str | None:
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name
    return None


def _decode_fallback(data: bytes) -> tuple[str, str]:
    text = data.decode("utf-8", errors="replace")
    errors = text.count("\ufffd") - data.count(b"\xef\xbf\xbd")
    if _UTF8_SEQUENCE.search(data) or errors <= max(1, int(len(data) * _MAX_UTF8_ERROR_RATIO)):
        # Valid multi-byte sequences mean UTF-8 with a few corrupt bytes, not a code page.
        return text, "utf-8"
    # cp1252 leaves five bytes undefined; those are replaced and counted like any other.
    return data.decode("cp1252", errors="replace"), "cp1252"


def _count_literal_replacement_chars(data: bytes, encoding: str) -> int:
    """U+FFFD that the file really contains are not repairs."""
    if encoding.startswith("utf-8"):
        return data.count(b"\xef\xbf\xbd")
    return 0
