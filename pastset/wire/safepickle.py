"""Read a request pickle only if it cannot nest deep enough to crash the server.

Unpickling builds tuples, frozensets, dict keys and set elements, and hashes them as it goes
(a frozenset or dict key hashes its elements at once). Hashing a tuple recurses in C once
per level with no recursion check, so a tuple nested a few hundred thousand deep anywhere a
hash happens crashes the whole server process (SIGSEGV) while the request is being read,
before any argument check can run. Measured on CPython 3.11, glibc Linux, in a server
connection thread (8 MiB stack, the default): about 64 bytes of C stack per level, so a crash
from ~131,000 levels (~16,000 with a 1 MiB stack, ~950 with 64 KiB).

The guard: a request may nest at most :data:`MAX_NESTING` levels. Every level needs at least
one opcode, so a request of at most :data:`MAX_NESTING` bytes cannot nest deeper, and is
unpickled without a look (the hot path pays one ``len``). A longer one is first walked
opcode by opcode (no objects built) and refused, unread, if it nests deeper, however the
pickle builds the nesting: objects taken again from the memo, the arguments of calls
(REDUCE, NEWOBJ) and the state of BUILD count as what they are, and an object filled after
another took it in is measured where it ends up (:func:`nesting`). 4096 levels use
~256 KiB of stack: 32 times below the crash depth of the server's threads. The walk skips
over bytes and string arguments in one step, so its cost follows the number of opcodes, not
the size: a move of an 8 MiB payload or a move_many batch (one blob and one lengths string)
is about twenty opcodes, ~5 us (measured: +0.05 us per request up to 4096 bytes, +5 us for a
4 KiB-1 MiB move, against 1 ms to receive the 1 MiB; a 10,000-entry template ~1.5 ms).

This bounds data nesting only. A key holder can still make the unpickler call any global
(that is what pickle is), and what a called function builds by itself is running code; the
authkey remains the trust boundary.
"""
from __future__ import annotations

import bisect
import pickle
import pickletools
import struct
from typing import Any, Dict, List, Union

#: deepest nesting (containers, objects) a request may have; also the size, in bytes, up to
#: which a request is read without a walk (it cannot nest deeper than its length)
MAX_NESTING = 4096

_loads = pickle.loads

# What each opcode does to the walk's model of the unpickler's stack. The model holds one
# node per object the unpickler would build (a list: [depth, what it holds, held, filled]);
# the stack and the memo hold nodes, so an object taken from the memo is the same node.
_PUSH, _MAKE, _MAKE_FROM_MARK, _FILL, _FILL_FROM_MARK, _MARK, _POP, _POP_MARK, _DUP, \
    _PUT, _MEMOIZE, _GET, _STOP, _SKIP = range(14)
# a node's fields
_DEPTH, _KIDS, _HELD, _FILLED = range(4)

_SPECIAL = {
    "MARK": (_MARK, 0), "POP": (_POP, 0), "POP_MARK": (_POP_MARK, 0), "DUP": (_DUP, 0),
    "PUT": (_PUT, 0), "BINPUT": (_PUT, 0), "LONG_BINPUT": (_PUT, 0), "MEMOIZE": (_MEMOIZE, 0),
    "GET": (_GET, 0), "BINGET": (_GET, 0), "LONG_BINGET": (_GET, 0), "STOP": (_STOP, 0),
    # these fill the object below their arguments, which stays on the stack
    "APPEND": (_FILL, 1), "SETITEM": (_FILL, 2), "BUILD": (_FILL, 1),
    "APPENDS": (_FILL_FROM_MARK, 0), "SETITEMS": (_FILL_FROM_MARK, 0), "ADDITEMS": (_FILL_FROM_MARK, 0),
}

# argument sizes that are not a fixed byte count
_LENGTH, _LINE, _TWO_LINES = -1, -2, -3
_LENGTH_PREFIX = {
    pickletools.TAKEN_FROM_ARGUMENT1: struct.Struct("<B"),
    pickletools.TAKEN_FROM_ARGUMENT4: struct.Struct("<i"),
    pickletools.TAKEN_FROM_ARGUMENT4U: struct.Struct("<I"),
    pickletools.TAKEN_FROM_ARGUMENT8U: struct.Struct("<Q"),
}


def _table() -> List[Any]:
    """opcode byte -> (action, items it takes, argument size, length prefix), None if unknown.
    The argument size is a fixed byte count (0: none), or _LENGTH / _LINE / _TWO_LINES."""
    table: List[Any] = [None] * 256
    for op in pickletools.opcodes:
        arg = op.arg
        prefix = None
        if arg is None:
            size = 0
        elif arg.n == pickletools.UP_TO_NEWLINE:
            size = _TWO_LINES if arg.name.endswith("_pair") else _LINE
        elif arg.n in _LENGTH_PREFIX:
            size, prefix = _LENGTH, _LENGTH_PREFIX[arg.n]
        else:
            size = arg.n
        if op.name in _SPECIAL:
            action, takes = _SPECIAL[op.name]
        elif pickletools.markobject in op.stack_before:
            action, takes = _MAKE_FROM_MARK, op.stack_before.index(pickletools.markobject)
        elif op.stack_after:
            action, takes = (_MAKE, len(op.stack_before)) if op.stack_before else (_PUSH, 0)
        else:
            action, takes = _SKIP, 0  # PROTO, FRAME (a frame's opcodes follow inline)
        table[op.code.encode("latin-1")[0]] = (action, takes, size, prefix)
    return table


_TABLE = _table()


class _Unreadable(Exception):
    """The walk met something the unpickler would refuse too."""


def nesting(data: Union[bytes, memoryview], limit: int = MAX_NESTING) -> int:
    """How deep the objects in pickle ``data`` nest (a conservative count, at most ``limit + 1``:
    the walk stops once it passes ``limit``). Raises ValueError if ``data`` is not a pickle.

    Every object the unpickler would build is a node holding what it was made from: a
    tuple its items, a list what was appended to it, the result of a call (REDUCE, NEWOBJ,
    OBJ, INST) its callable and arguments, an object its BUILD state. A node's depth is
    counted as it is made (one more than the deepest thing it holds) and raised as it is
    filled. That count is exact unless an object is filled after another one took it in
    (an argument tuple holding a list that is filled afterwards, say): the holder's count
    went stale. Then the whole graph is measured at the end (:func:`_graph_depth`), so no
    sequence of memo references, calls and fills builds a chain deeper than it counts.

    The model stays exact only as far as the unpickler would get: past a point where the
    unpickler fails (a stack underflow, say) nothing more would be built, so the walk need
    not check for it. What a called function builds by itself is not data nesting: calling
    a global is running code, which the authkey guards.
    """
    stack: List[List[Any]] = []
    marks: List[int] = []
    memo: Dict[int, List[Any]] = {}
    nodes: List[List[Any]] = []
    stale = False  # a node was filled after another node took it in
    deepest = 0
    pos, end = 0, len(data)
    table = _TABLE
    try:
        while True:
            action, takes, size, prefix = table[data[pos]]
            pos += 1
            if size >= 0:
                start = pos
                pos += size
            elif size == _LENGTH:
                length = prefix.unpack_from(data, pos)[0]
                if length < 0:
                    raise _Unreadable(f"negative length at byte {pos}")
                pos += prefix.size + length
            else:
                if type(data) is memoryview:  # (an observed tuple) no index() before Python 3.14
                    data = data.tobytes()
                start = pos
                pos = data.index(b"\n", pos) + 1
                if size == _TWO_LINES:
                    pos = data.index(b"\n", pos) + 1
            if pos > end:
                raise _Unreadable("an argument runs past its end")

            if action == _PUSH:
                node: List[Any] = [0, None, False, False]
                nodes.append(node)
                stack.append(node)
                continue
            if action == _MEMOIZE:
                memo[len(memo)] = stack[-1]
                continue
            if action == _MAKE or action == _MAKE_FROM_MARK:
                if action == _MAKE:
                    fence = len(stack) - takes
                else:
                    fence = marks.pop() - takes  # OBJ-like: items before the mark are taken too
                taken = stack[fence:]
                del stack[fence:]
                depth = 0
                for kid in taken:
                    kid[_HELD] = True
                    if kid[_DEPTH] >= depth:
                        depth = kid[_DEPTH] + 1
                node = [depth, taken, False, False]
                nodes.append(node)
                stack.append(node)
            elif action == _FILL or action == _FILL_FROM_MARK:
                fence = len(stack) - takes if action == _FILL else marks.pop()
                taken = stack[fence:]
                del stack[fence:]
                node = stack[-1]
                if not taken:
                    continue
                if node[_HELD]:
                    stale = True
                node[_FILLED] = True
                depth = node[_DEPTH]
                for kid in taken:
                    kid[_HELD] = True
                    if kid[_DEPTH] >= depth:
                        depth = kid[_DEPTH] + 1
                node[_DEPTH] = depth
                if node[_KIDS] is None:
                    node[_KIDS] = taken
                else:
                    node[_KIDS] += taken
            elif action == _MARK:
                marks.append(len(stack))
                continue
            elif action == _PUT:
                memo[_memo_index(data, start, pos, size)] = stack[-1]
                continue
            elif action == _GET:
                stack.append(memo[_memo_index(data, start, pos, size)])
                continue
            elif action == _POP:
                if len(stack) > (marks[-1] if marks else 0):
                    stack.pop()
                else:
                    marks.pop()
                continue
            elif action == _POP_MARK:
                del stack[marks.pop():]
                continue
            elif action == _DUP:
                stack.append(stack[-1])
                continue
            elif action == _STOP:
                if not stack:
                    raise _Unreadable("it ends with nothing to return")
                if stale:
                    return max(deepest, _graph_depth(nodes, limit))
                return deepest
            else:
                continue
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
    except TypeError:  # table[...] is None: not an opcode
        raise ValueError(f"the request is not a pickle the server can read: unknown opcode "
                         f"{data[pos]:#04x} at byte {pos}") from None
    except (_Unreadable, IndexError, KeyError, ValueError, struct.error) as exc:
        raise ValueError(f"the request is not a pickle the server can read: {str(exc) or type(exc).__name__}") from None


def _graph_depth(nodes: List[List[Any]], limit: int) -> int:
    """The longest chain of nodes, each holding the next, in the finished graph (at most
    ``limit + 1``: the count stops once it passes ``limit``).

    Objects that refer back to each other (a cycle, which only filling can make) form a
    strongly connected component. A chain C code recurses along unchecked (hashing nested
    tuples) cannot run round a cycle, for a cycle holds an object that is filled after it
    was made, and such objects (lists, dicts, sets, built instances) are not hashed by
    content. So a component counts as one level, or as its never-filled objects when it
    has several (the most a chain through it can pass), and the depth is the heaviest path
    through the graph of components. Components come out of Tarjan's algorithm (iterative)
    after every component they hold, so each one's depth is known when it is needed.
    """
    index: Dict[int, int] = {}  # id(node) -> its number in the order of the walk
    low: List[int] = []
    on_stack: List[bool] = []
    depth_of: List[int] = []  # per node: its component's depth, once the component is done
    members: List[List[Any]] = []
    open_nodes: List[int] = []  # Tarjan's stack: numbers of nodes whose component is not done
    deepest = 0
    for root in nodes:
        if id(root) in index:
            continue
        work = [(root, 0)]
        while work:
            node, at = work.pop()
            number = index.get(id(node))
            if number is None:
                number = index[id(node)] = len(low)
                low.append(number)
                on_stack.append(True)
                depth_of.append(-1)
                members.append(node)
                open_nodes.append(number)
            kids = node[_KIDS] or ()
            while at < len(kids):
                kid = kids[at]
                kid_number = index.get(id(kid))
                if kid_number is None:
                    break
                if on_stack[kid_number] and kid_number < low[number]:
                    low[number] = kid_number
                at += 1
            if at < len(kids):
                work.append((node, at + 1))
                work.append((kids[at], 0))
                continue
            for kid in kids:  # a kid just finished may have reached further back
                kid_number = index[id(kid)]
                if on_stack[kid_number] and low[kid_number] < low[number]:
                    low[number] = low[kid_number]
            if low[number] != number:
                continue
            # node roots a component: everything numbered from it on, still on the stack
            split = bisect.bisect_left(open_nodes, number)  # numbered in order: sorted
            component = open_nodes[split:]
            del open_nodes[split:]
            inside = set(component)
            below = -1
            frozen = 0
            for n in component:
                on_stack[n] = False
                member = members[n]
                if not member[_FILLED]:
                    frozen += 1
                for kid in member[_KIDS] or ():
                    kid_number = index[id(kid)]
                    if kid_number not in inside and depth_of[kid_number] > below:
                        below = depth_of[kid_number]
            weight = 1 if len(component) == 1 else max(1, frozen)
            depth = max(0, below + weight)
            for n in component:
                depth_of[n] = depth
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
    return deepest


def _memo_index(data: Union[bytes, memoryview], start: int, stop: int, size: int) -> int:
    if size == _LINE:
        return int(data[start:stop - 1])
    return int.from_bytes(data[start:stop], "little")


def check(data: Union[bytes, memoryview], what: str = "the request", refused_by: str = "the server") -> None:
    """Raise ValueError if pickle ``data`` nests deeper than :data:`MAX_NESTING` levels, or
    is no pickle; return if unpickling it cannot overflow the stack. ``what`` and
    ``refused_by`` name the data and its reader in the message."""
    if len(data) > MAX_NESTING and nesting(data) > MAX_NESTING:
        raise ValueError(f"{what} nests deeper than {MAX_NESTING} levels (objects inside "
                         f"objects); {refused_by} refuses it unread")


def loads(data: bytes, what: str = "the request") -> Any:
    """``pickle.loads(data)``, but ``data`` (named ``what`` in the error) nesting deeper than
    :data:`MAX_NESTING` levels is refused with a ValueError before anything in it is built."""
    check(data, what)
    return _loads(data)


def request(data: bytes) -> Any:
    """A request the server read, unpickled: :func:`loads`, and a ValueError too for one
    the unpickler fails on, so the server answers either with one error reply and the
    connection stays in step."""
    check(data)  # not loads(): a nesting refusal must keep its own message, not be reworded below
    try:
        return _loads(data)
    except Exception as exc:
        raise ValueError(f"the server could not unpickle the request: {type(exc).__name__}: {exc}") from None
