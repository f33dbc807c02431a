"""Host files: the ``hosts`` setting's file and the node files batch systems write.

One reader for all of them. A line names one host; ``#`` starts a comment and blank lines
are ignored. ``PBS_NODEFILE`` repeats a host once per slot; Grid Engine's ``PE_HOSTFILE``
lists ``host slots queue processors``, read with ``slots_column=1``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

from ..errors import LaunchError, SettingsError


class HostFileError(SettingsError, LaunchError):
    """A host file cannot be read or is malformed: a bad ``hosts`` setting, or a batch
    system's node file a launch cannot use."""


@dataclass(frozen=True)
class HostLine:
    """One host of a host file and where it stands, for messages about that host."""

    host: str
    path: str
    line: int  #: 1-based line number
    slots: int = 1

    def where(self) -> str:
        """``line 3 of host file 'hosts.txt'``."""
        return f"line {self.line} of host file {self.path!r}"


def host_lines(path: str, *, slots_column: Optional[int] = None, source: Optional[str] = None) -> List[HostLine]:
    """The host lines of a host file, in order.

    :param slots_column: the column holding a slot count; None: one host name per line,
        and a line with more is an error.
    :param source: where the path came from, for error messages (e.g. ``"flag --hosts"``).
    :raises HostFileError: the file cannot be read, a line is malformed, or it names no host.
    """
    origin = f" from {source}" if source else ""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise HostFileError(f"cannot read host file {path!r}{origin}: {exc}") from None
    found: List[HostLine] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        slots = 1
        if slots_column is None and len(fields) > 1:
            raise HostFileError(f"line {number} of host file {path!r}{origin} is {' '.join(fields)!r}; "
                                "allowed is one host name per line")
        if slots_column is not None and len(fields) > slots_column:
            try:
                slots = max(1, int(fields[slots_column]))
            except ValueError:
                raise HostFileError(f"line {number} of host file {path!r}{origin}: bad slot count "
                                    f"{fields[slots_column]!r}") from None
        found.append(HostLine(fields[0], path, number, slots))
    if not found:
        raise HostFileError(f"host file {path!r}{origin} lists no hosts (one host per line, '#' starts a comment)")
    return found


def where_host(entries: Sequence[HostLine], host: str) -> Optional[str]:
    """Where ``host`` stands among ``entries``: ``line 3 of host file 'hosts'``, or
    ``lines 3 and 7 of host file 'hosts'`` when it is listed more than once; None if absent."""
    found = [entry for entry in entries if entry.host == host]
    if len(found) <= 1:
        return found[0].where() if found else None
    numbers = [str(entry.line) for entry in found]
    return f"lines {', '.join(numbers[:-1])} and {numbers[-1]} of host file {found[0].path!r}"


def read_host_file(path: str, *, slots_column: Optional[int] = None, source: Optional[str] = None) -> List[str]:
    """The hosts of a host file, one entry per slot, in order (see :func:`host_lines`)."""
    return [entry.host for entry in host_lines(path, slots_column=slots_column, source=source)
            for _ in range(entry.slots)]
