"""Compact storage for an element's tuples: pickled payloads packed into byte chunks.

A dict of number -> bytes costs ~140 bytes of server memory per small tuple and gives
little back when emptied (dicts never shrink, and a million small bytes objects
fragment the allocator's arenas). Here payloads are appended to chunks of up to
``CHUNK_BYTES`` bytes with an ``array('I')`` of start offsets beside each chunk: a small
pickled tuple costs its own bytes plus 4. ``drop_below`` frees whole chunks, so the
memory of axed tuples goes back to the allocator in large blocks (and, through
``malloc_trim`` where glibc offers it, back to the operating system).

Values that are not ``bytes`` (X-function elements store objects) and entries replaced
through ``Element.__set_entry`` live in a side dict that is consulted first.
"""
from __future__ import annotations

from array import array
from bisect import bisect_right
from typing import Any, Dict, List, Optional, Tuple

from ..wire.batches import pack_reply

#: a chunk is sealed once it holds this many bytes (a bigger tuple gets a chunk of its own)
CHUNK_BYTES = 256 * 1024
#: ... or this many tuples (objects kept aside take no chunk bytes)
CHUNK_TUPLES = 65536
#: give freed memory back to the OS once this much was dropped since the last time
TRIM_BYTES = 4 * 1024 * 1024

_MISSING = object()


def _malloc_trim():
    """glibc's malloc_trim (returns free heap pages to the OS), or None elsewhere."""
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError, ImportError):
        return None


_trim: Any = None


def give_back_memory() -> None:
    """Return the allocator's free pages to the operating system (where possible)."""
    global _trim
    if _trim is None:
        _trim = _malloc_trim() or False
    if _trim:
        _trim(0)




class TupleLog:
    """Tuples ``oldest .. end-1`` of an element, by number."""

    __slots__ = ("_chunks", "_bases", "end", "oldest", "_objects", "_dropped")

    def __init__(self) -> None:
        self._chunks: List[list] = []  # [data (bytearray while open, bytes once sealed), starts]
        self._bases: List[int] = []  # number of each chunk's first tuple
        self.end = 0
        self.oldest = 0
        self._objects: Optional[Dict[int, Any]] = None
        self._dropped = 0  # bytes freed since the last trim

    # -- writing ------------------------------------------------------------------------
    def _open_chunk(self, need: int) -> list:
        if self._chunks:
            tail = self._chunks[-1]
            data, starts = tail
            if len(starts) < CHUNK_TUPLES and (len(data) + need <= CHUNK_BYTES or not starts):
                return tail
            if type(data) is bytearray:
                tail[0] = bytes(data)  # sealed: reads slice bytes directly
        tail = [bytearray(), array("I")]
        self._chunks.append(tail)
        self._bases.append(self.end)
        return tail

    def append(self, value: Any) -> None:
        """Store ``value`` as tuple number ``end``."""
        if type(value) is bytes:
            payload = value
            if self._objects:
                self._objects.pop(self.end, None)
        else:
            payload = b""
            if self._objects is None:
                self._objects = {}
            self._objects[self.end] = value
        tail = self._chunks[-1] if self._chunks else None
        if tail is None or len(tail[1]) >= CHUNK_TUPLES or len(tail[0]) + len(payload) > CHUNK_BYTES:
            tail = self._open_chunk(len(payload))  # seals the tail if it is full
        data, starts = tail
        starts.append(len(data))
        data += payload
        self.end += 1

    def extend_packed(self, blob: bytes, offs: array, lo: int, hi: int) -> None:
        """Append payloads ``lo .. hi-1`` of a packed batch (``offs``: n+1 start offsets)."""
        view = memoryview(blob)
        i = lo
        while i < hi:
            tail = self._open_chunk(offs[i + 1] - offs[i])
            data, starts = tail
            room = CHUNK_BYTES - len(data)
            j = bisect_right(offs, offs[i] + room, i + 1, hi + 1) - 1
            j = min(max(j, i + 1), hi, i + CHUNK_TUPLES - len(starts))
            starts.extend(map((len(data) - offs[i]).__add__, offs[i:j]))
            data += view[offs[i]:offs[j]]
            if self._objects:
                for number in range(self.end, self.end + j - i):
                    self._objects.pop(number, None)
            self.end += j - i
            i = j

    def set(self, number: int, value: Any) -> None:
        """Store ``value`` as tuple ``number`` (a new tuple, or a replacement)."""
        if number == self.end:
            self.append(value)
        elif number >= self.oldest:
            if self._objects is None:
                self._objects = {}
            self._objects[number] = value

    # -- reading ------------------------------------------------------------------------
    def _locate(self, number: int) -> Tuple[Any, array, int]:
        bases = self._bases
        c = len(bases) - 1 if number >= bases[-1] else bisect_right(bases, number) - 1
        data, starts = self._chunks[c]
        return data, starts, number - bases[c]

    def get(self, number: int) -> Any:
        """Tuple ``number``; KeyError if it is not held."""
        if self._objects:
            value = self._objects.get(number, _MISSING)
            if value is not _MISSING:
                return value
        if not self.oldest <= number < self.end:
            raise KeyError(number)
        base = self._bases[-1]
        if number >= base:  # most reads are of the newest chunk
            data, starts = self._chunks[-1]
            k = number - base
        else:
            data, starts, k = self._locate(number)
        a = starts[k]
        b = starts[k + 1] if k + 1 < len(starts) else len(data)
        return data[a:b] if type(data) is bytes else bytes(data[a:b])

    def packed(self, lo: int, hi: int) -> Tuple[bytes, bytes]:
        """Tuples ``lo .. hi-1`` (all bytes) as (their concatenation, n+1 offsets as
        array('Q') bytes): one reply for a whole batch."""
        if self._objects and any(n in self._objects for n in range(lo, hi)):
            return pack_reply([self.get(n) for n in range(lo, hi)])
        pieces = []
        offs = array("Q")
        total = 0
        number = lo
        while number < hi:
            data, starts, k = self._locate(number)
            stop = min(len(starts), k + hi - number)
            a = starts[k]
            b = starts[stop] if stop < len(starts) else len(data)
            offs.extend(map((total - a).__add__, starts[k:stop]))
            pieces.append(data[a:b])
            total += b - a
            number += stop - k
        offs.append(total)
        blob = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        return (blob if type(blob) is bytes else bytes(blob)), offs.tobytes()

    # -- freeing ------------------------------------------------------------------------
    def drop_below(self, mark: int) -> None:
        """Forget tuples numbered below ``mark``; free every chunk wholly below it."""
        if mark <= self.oldest:
            return
        self.oldest = min(mark, self.end)
        if self._objects:
            for number in [n for n in self._objects if n < mark]:
                del self._objects[number]
        bases, chunks = self._bases, self._chunks
        drop = 0
        while drop < len(bases) and (bases[drop + 1] if drop + 1 < len(bases) else self.end) <= mark:
            self._dropped += len(chunks[drop][0]) + 4 * len(chunks[drop][1])
            drop += 1
        if drop:
            del bases[:drop], chunks[:drop]
        if self._dropped >= TRIM_BYTES:
            self._dropped = 0
            give_back_memory()

    def clear(self) -> None:
        """Forget everything (the element was deleted)."""
        self._dropped += sum(len(d) + 4 * len(s) for d, s in self._chunks)
        self._chunks, self._bases, self._objects = [], [], None
        self.oldest = self.end
        if self._dropped >= TRIM_BYTES:
            self._dropped = 0
            give_back_memory()

    def held(self) -> int:
        """Bytes of payload and offsets held (for tests and status)."""
        return sum(len(d) + 4 * len(s) for d, s in self._chunks)

