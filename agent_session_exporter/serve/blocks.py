"""One exposition format's cached blocks, family by family, and what a scrape joins of them: the text,
and its gzip made from blocks compressed once each (``serve/exposition.py`` keeps one per format).

Each block (the sample lines of one family of one source's part) is kept as it is and compressed on
its own into raw deflate blocks ending at a byte boundary (a sync flush, no shared history), so the
compressed blocks of a scrape are laid end to end between a gzip header and trailer: a valid gzip
stream, which a scrape after a change of one source compresses nothing but that source's blocks for.
The trailer's CRC-32 is taken over the text, which every scrape joins anyway.
"""

from __future__ import annotations

import struct
import zlib

_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # gzip, deflate, no name, no time, unknown OS


def deflated(data: bytes) -> bytes:
    """``data`` as raw deflate blocks that end at a byte boundary and refer to nothing before them."""
    if not data:
        return b""
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)


_LAST = zlib.compressobj(1, zlib.DEFLATED, -15).flush()  # an empty final block


def gzip_of(deflated_pieces: list[bytes], text: bytes) -> bytes:
    """A gzip stream of ``text`` from the ``deflated`` forms of the pieces it joins, in order."""
    trailer = struct.pack("<II", zlib.crc32(text) & 0xFFFFFFFF, len(text) & 0xFFFFFFFF)
    return b"".join([_HEADER, *deflated_pieces, _LAST, trailer])


class FamilyBlocks:
    """The blocks of one format: for each family its header lines and, in the order the parts were
    added, each part's sample lines (empty where a part has none), kept and deflated."""

    def __init__(self) -> None:
        #: family -> header lines, in the order the families were first seen
        self.headers: dict[str, bytes] = {}
        self._deflated_headers: dict[str, bytes] = {}
        #: (source, part) -> its slot in every family's list
        self._slots: dict[tuple[str, str], int] = {}
        #: family -> each slot's sample lines; and deflated
        self._lines: dict[str, list[bytes]] = {}
        self._deflated: dict[str, list[bytes]] = {}
        #: (source, part) -> the families it has lines in
        self._families: dict[tuple[str, str], set[str]] = {}

    def add_part(self, key: tuple[str, str]) -> None:
        if key in self._slots:
            return
        self._slots[key] = len(self._slots)
        self._families[key] = set()
        for family in self._lines:
            self._lines[family].append(b"")
            self._deflated[family].append(b"")

    def remove_part(self, key: tuple[str, str]) -> None:
        slot = self._slots.pop(key, None)
        if slot is None:
            return
        del self._families[key]
        for family in self._lines:
            del self._lines[family][slot]
            del self._deflated[family][slot]
        self._slots = {other: index - (index > slot) for other, index in self._slots.items()}

    def set(self, key: tuple[str, str], headers: dict[str, bytes], blocks: dict[str, bytes]) -> None:
        """A part rendered anew: its header lines (kept where a family's are not yet) and sample lines."""
        slot = self._slots.get(key)
        if slot is None:
            return
        for family, header in headers.items():
            if family not in self.headers:
                self.headers[family] = header
                self._deflated_headers[family] = deflated(header)
                self._lines[family] = [b""] * len(self._slots)
                self._deflated[family] = [b""] * len(self._slots)
        before = self._families[key]
        for family in before - blocks.keys():
            self._lines[family][slot] = self._deflated[family][slot] = b""
        for family, lines in blocks.items():
            if family in self._lines and self._lines[family][slot] != lines:
                self._lines[family][slot] = lines
                self._deflated[family][slot] = deflated(lines)
        self._families[key] = set(blocks) & self._lines.keys()

    def pieces(self) -> list[bytes]:
        """Every family's header and lines, in order."""
        pieces: list[bytes] = []
        for family, header in self.headers.items():
            pieces.append(header)
            pieces.extend(self._lines[family])
        return pieces

    def deflated_pieces(self) -> list[bytes]:
        """``pieces``, deflated."""
        pieces: list[bytes] = []
        for family, header in self._deflated_headers.items():
            pieces.append(header)
            pieces.extend(self._deflated[family])
        return pieces
