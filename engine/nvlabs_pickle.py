"""Read official NVlabs StyleGAN checkpoint pickles without running anything stored in them.

NVlabs snapshots (stylegan2-ada-pytorch, stylegan3, and the files DragGAN downloads) are pickles
whose every network is a call to `torch_utils.persistence._reconstruct_persistent_obj(meta)`, with
the network's Python source text stored in `meta`. The official loader executes that source, so
a hostile file could run anything. Here a whitelisting unpickler turns each persistent object into a
plain `_Record` (class name + `__dict__`), parses tensor storages itself, refuses every other global,
and the caller gets the class name, constructor arguments and state dict it needs to rebuild the
network with the project's own code.

Running nothing is not enough: a file can also make a reader work without end (a memo index that
sizes the memo, values nested a million deep, a list of lists shared through the memo that expands
to 2**40 items). So the stream's opcodes are checked before anything is built, every call a stream
may make is bounded, and every field read afterwards is checked for its type and size: a hostile
file is refused in one sentence, within about a second and a hundred megabytes
(tests/test_hostile_checkpoints.py measures each kind of hostile file).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import gc
import io
import math
import os
import pickle
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from engine.errors import CheckpointError

# Bounds on what one file may make the reader do. The fixture snapshots (G, D and G_ema of 64 and
# 128 px generators) hold 20-26 thousand opcodes and nest values 20-24 deep; a full-size snapshot
# grows with its number of layers, not its nesting, so these leave a wide margin while keeping the
# worst case of any file (half a million empty sets, 216 bytes each) near 100 MB and a second.
MAX_OPCODES = 500_000
MAX_DEPTH = 100  # nesting of values in the stream
MAX_ELEMENTS = 200_000  # items copied by the stream's set()/frozenset()/OrderedDict() calls, values read
MAX_NUMBER_KEYS = 10_000  # dict keys and set items that are not strings (official pickles: none)
MAX_ARG_DEPTH = 32  # nesting of a network's init arguments (official ones: 3)
MAX_MODULE_DEPTH = 32  # submodule nesting (official networks: 5)
MAX_MODULES = 20_000  # submodules visited (official networks: a few hundred)
MAX_TENSORS = 20_000  # state dict entries (official networks: a few hundred)
MAX_TENSOR_ELEMENTS = 1 << 29  # numbers in all the state dict's tensors (FFHQ 1024 generator: 30 million)
MAX_TEXT = 4096  # characters of a string among the init arguments
MAX_NAME = 256  # characters of a module, parameter or buffer name
MAX_LINE = 1 << 16  # bytes of a text argument (protocol-0 opcodes, global names)
MAX_DIGITS = 100  # digits of an integer written as text (protocol-0 INT and LONG)
MAX_LONG_BYTES = 1024  # bytes of one integer (official pickles hold none above 8)
MAX_HEADER_OPCODES = 10_000  # each small pickle at the head of a legacy tensor storage
MAX_STORAGES = 5_000  # tensor storages parsed (the fixture snapshots: 180-234)


@dataclass
class PickledNetwork:
    class_name: str  # e.g. "Generator"
    family: str  # "stylegan2" | "stylegan3" | "unknown", judged from the state dict's names
    init_args: tuple
    init_kwargs: dict
    state_dict: dict[str, torch.Tensor]  # torch state_dict order, official names


class _Unusable(Exception):
    """A file this reader will not build. `reason` completes "the file is not usable: it ...";
    `damaged` says the file looks cut short or garbled rather than crafted."""

    def __init__(self, reason: str, damaged: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.damaged = damaged


class _Refused(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class _Sealed(type):
    """Metaclass of every class a stream can name. BUILD may setattr on whatever a global resolves
    to; on these it is refused, so a stream cannot patch a method (say `__del__`, which would run
    after the reader has returned) even on its own copy of a class."""

    def __setattr__(cls, name: str, value: Any) -> None:
        raise _Unusable("it tries to change a class it names")

    def __delattr__(cls, name: str) -> None:
        raise _Unusable("it tries to change a class it names")


class _Call:
    """A function a stream may call (REDUCE, INST, OBJ), and nothing else: it has no state a
    BUILD could set and is no type that NEWOBJ could instantiate."""

    __slots__ = ("target",)
    target: Callable[..., Any]

    def __init__(self, target: Callable[..., Any]) -> None:
        object.__setattr__(self, "target", target)

    def __call__(self, *args: Any) -> Any:
        return self.target(*args)

    def __setattr__(self, name: str, value: Any) -> None:
        raise _Unusable("it tries to change a function it names")

    def __delattr__(self, name: str) -> None:
        raise _Unusable("it tries to change a function it names")


class _Record:
    """Stand-in for a pickled network object: its class name and its `__dict__`, never its code."""

    def __init__(self, class_name: str = "", state: Any = None) -> None:
        self.class_name = class_name
        self.state = state

    def __setstate__(self, state: Any) -> None:  # plain torch modules arrive via NEWOBJ + BUILD
        self.state = state


class _EasyDict(dict):
    """Capture of dnnlib.EasyDict; converted to a plain dict before it leaves this module."""

    def __init__(self, *args: Any) -> None:
        # Pickles make EasyDicts with NEWOBJ, which calls no __init__, and fill them item by item;
        # a call with arguments would copy them unbudgeted.
        if args:
            raise _Unusable("it calls EasyDict with arguments, which NVlabs pickles never do")
        super().__init__()


@dataclass
class _Budget:
    """What one load may still make; spent as the stream's calls copy items and as values are read."""

    elements: int = MAX_ELEMENTS
    # Ints, floats and tuples hash the same on every run, so a file can give a dict thousands of
    # keys of one hash, and each insertion then compares with all the keys before it.
    number_keys: int = MAX_NUMBER_KEYS
    # Bytes the stream's calls may copy (storages, numpy data, encoded strings). A call's argument
    # can come from the memo any number of times for three bytes each, so a megabyte of data
    # copied once per call would be a gigabyte for a kilobyte of file; an official file's calls copy
    # each of its bytes at most twice (a protocol-2 storage is decoded, then parsed).
    copies: int = 1 << 20
    storages: int = MAX_STORAGES
    parsed: dict[int, tuple[object, torch.Tensor]] = field(default_factory=dict)  # id(blob) -> (blob, tensor)

    def spend_copies(self, n: int) -> None:
        self.copies -= n
        if self.copies < 0:
            raise _Unusable("its values copy more data than the file holds")

    def spend(self, n: int) -> None:
        self.elements -= n
        if self.elements < 0:
            raise _Unusable(f"it makes more than {MAX_ELEMENTS:,} values")

    def spend_keys(self, n: int) -> None:
        self.number_keys -= n
        if self.number_keys < 0:
            raise _Unusable(f"it has more than {MAX_NUMBER_KEYS:,} dict keys or set items that are not names")


_STORAGE_DTYPES: dict[str, torch.dtype] = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
    "UntypedStorage": torch.uint8,
}
_TORCH_DTYPES = {str(d).removeprefix("torch."): d for d in set(_STORAGE_DTYPES.values())}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


# --- the opcode check ---------------------------------------------------------------------------
#
# pickle's own reader builds whatever a stream says: a claimed length is read (or allocated) before
# it is found missing, a memo index sizes the memo, and nesting has no end (hashing a tuple nested a
# million deep, as a dict key, overflows the C stack). So each stream is first walked here, opcode by
# opcode, building nothing: lengths are checked against the file, memo indices against the opcodes
# before them, global names against the table of allowed ones, and the nesting of the values is
# followed on a stack of depths. A tuple's depth is exact (it cannot change once built, and no
# allowed call returns one); a list's or dict's can grow through the memo unseen, which is why the
# values are bounded again when they are read. A string counts as depth -1, so that the keys that
# are not strings can be counted too (a string's hash is salted per process; a number's is not).

# Argument layouts: what follows the opcode byte.
_NONE, _FIXED, _LEN1, _LEN4S, _LEN4U, _LEN8, _LINE, _LINES2 = range(8)
# What an opcode does to the stack of depths.
(
    _LEAF,
    _TEXT,
    _EMPTY,
    _MARK,
    _POP,
    _POP_MARK,
    _DUP,
    _COLLECT,
    _TUPLE_N,
    _APPEND,
    _SETITEM,
    _APPENDS,
    _BUILD,
    _REDUCE,
    _NEWOBJ_EX,
    _STACK_GLOBAL,
    _GET,
    _PUT,
    _MEMOIZE,
    _PROTO,
    _FRAME,
    _STOP,
    _GLOBAL,
    _INST,
    _PERSID,
    _BINPERSID,
    _REFUSE,
) = range(27)
_PAIRS, _ALL = 1, 2  # for _COLLECT and _APPENDS: which of the values are keys (dicts) or items (sets)

# opcode -> (layout, size of a fixed argument | length of a TUPLE_N | which values are keys, effect)
_OPCODES: dict[bytes, tuple[int, int, int]] = {
    b"I": (_LINE, 0, _LEAF),
    b"J": (_FIXED, 4, _LEAF),
    b"K": (_FIXED, 1, _LEAF),
    b"M": (_FIXED, 2, _LEAF),
    b"L": (_LINE, 0, _LEAF),
    b"\x8a": (_LEN1, 0, _LEAF),
    b"\x8b": (_LEN4S, 0, _LEAF),
    b"S": (_LINE, 0, _TEXT),
    b"T": (_LEN4S, 0, _TEXT),
    b"U": (_LEN1, 0, _TEXT),
    b"B": (_LEN4U, 0, _LEAF),
    b"C": (_LEN1, 0, _LEAF),
    b"\x8e": (_LEN8, 0, _LEAF),
    b"\x96": (_LEN8, 0, _LEAF),
    b"\x97": (_NONE, 0, _REFUSE),
    b"\x98": (_NONE, 0, _REFUSE),  # NEXT_BUFFER, READONLY_BUFFER
    b"N": (_NONE, 0, _LEAF),
    b"\x88": (_NONE, 0, _LEAF),
    b"\x89": (_NONE, 0, _LEAF),
    b"V": (_LINE, 0, _TEXT),
    b"\x8c": (_LEN1, 0, _TEXT),
    b"X": (_LEN4U, 0, _TEXT),
    b"\x8d": (_LEN8, 0, _TEXT),
    b"F": (_LINE, 0, _LEAF),
    b"G": (_FIXED, 8, _LEAF),
    b"]": (_NONE, 0, _EMPTY),
    b"a": (_NONE, 0, _APPEND),
    b"e": (_NONE, 0, _APPENDS),
    b"l": (_NONE, 0, _COLLECT),
    b")": (_NONE, 0, _EMPTY),
    b"t": (_NONE, 0, _COLLECT),
    b"\x85": (_NONE, 1, _TUPLE_N),
    b"\x86": (_NONE, 2, _TUPLE_N),
    b"\x87": (_NONE, 3, _TUPLE_N),
    b"}": (_NONE, 0, _EMPTY),
    b"d": (_NONE, _PAIRS, _COLLECT),
    b"s": (_NONE, 0, _SETITEM),
    b"u": (_NONE, _PAIRS, _APPENDS),
    b"\x8f": (_NONE, 0, _EMPTY),
    b"\x90": (_NONE, _ALL, _APPENDS),
    b"\x91": (_NONE, _ALL, _COLLECT),
    b"0": (_NONE, 0, _POP),
    b"2": (_NONE, 0, _DUP),
    b"(": (_NONE, 0, _MARK),
    b"1": (_NONE, 0, _POP_MARK),
    b"g": (_LINE, 0, _GET),
    b"h": (_FIXED, 1, _GET),
    b"j": (_FIXED, 4, _GET),
    b"p": (_LINE, 0, _PUT),
    b"q": (_FIXED, 1, _PUT),
    b"r": (_FIXED, 4, _PUT),
    b"\x94": (_NONE, 0, _MEMOIZE),
    b"\x82": (_FIXED, 1, _REFUSE),
    b"\x83": (_FIXED, 2, _REFUSE),
    b"\x84": (_FIXED, 4, _REFUSE),  # EXT1, 2, 4
    b"c": (_LINES2, 0, _GLOBAL),
    b"\x93": (_NONE, 0, _STACK_GLOBAL),
    b"R": (_NONE, 0, _REDUCE),
    b"b": (_NONE, 0, _BUILD),
    b"i": (_LINES2, 0, _INST),
    b"o": (_NONE, 0, _COLLECT),
    b"\x81": (_NONE, 0, _REDUCE),
    b"\x92": (_NONE, 0, _NEWOBJ_EX),
    b"\x80": (_FIXED, 1, _PROTO),
    b".": (_NONE, 0, _STOP),
    b"\x95": (_FIXED, 8, _FRAME),
    b"P": (_LINE, 0, _PERSID),
    b"Q": (_NONE, 0, _BINPERSID),
}
_TABLE: list[tuple[int, int, int] | None] = [_OPCODES.get(bytes([c])) for c in range(256)]
_LENGTH_BYTES = {_LEN1: 1, _LEN4S: 4, _LEN4U: 4, _LEN8: 8}
_REFUSED_OPCODES = {
    0x97: "out-of-band buffers (pickle protocol 5)",
    0x98: "out-of-band buffers (pickle protocol 5)",
    0x82: "pickle extension codes",
    0x83: "pickle extension codes",
    0x84: "pickle extension codes",
}
_BLOCK = 1 << 20


def _check_opcodes(
    f: BinaryIO,
    end: int,
    budget: _Budget,
    max_opcodes: int,
    names: Callable[[str, str], bool],
    persistent_ids: bool = False,
) -> None:
    """Walk one pickle from `f`'s position to its STOP (file offset `end` is the most there is),
    building nothing; `names(module, name)` says which globals are allowed, and keys that are not
    strings are charged to `budget`. Raises _Unusable or _Refused; leaves `f` just past the STOP."""
    base = f.tell()  # file offset of buf[0]
    buf, pos = b"", 0

    def more(buf: bytes, pos: int, n: int) -> tuple[bytes, int]:
        # buf[pos:] plus the next block of the file, holding at least n bytes.
        nonlocal base
        have, left = len(buf) - pos, end - base - len(buf)
        if have + left < n:
            raise _Unusable("it ends in the middle of an opcode", damaged=True)
        base += pos
        buf = buf[pos:] + f.read(max(n - have, min(_BLOCK, left)))
        if len(buf) < n:  # the file shrank while being read
            raise _Unusable("it ends in the middle of an opcode", damaged=True)
        return buf, 0

    stack: list[int] = []  # the nesting depth of each value the stream would have on its stack
    marks: list[int] = []  # stack heights at each MARK
    memo: dict[int, int] = {}
    ops = 0
    try:
        while True:
            if pos >= len(buf):
                buf, pos = more(buf, pos, 1)
            code = buf[pos]
            pos += 1
            ops += 1
            if ops > max_opcodes:
                raise _Unusable(f"it holds more than {max_opcodes:,} pickle opcodes, far more than any network")
            entry = _TABLE[code]
            if entry is None:
                raise _Unusable(f"it holds the byte {code:#04x} where a pickle opcode belongs", damaged=True)
            layout, size, effect = entry
            arg: Any = None
            if layout == _FIXED:
                if pos + size > len(buf):
                    buf, pos = more(buf, pos, size)
                arg = int.from_bytes(buf[pos : pos + size], "little")
                pos += size
            elif layout == _LINE or layout == _LINES2:
                lines = []
                for _ in range(2 if layout == _LINES2 else 1):
                    nl = buf.find(b"\n", pos, pos + MAX_LINE + 1)
                    while nl < 0:
                        if len(buf) - pos > MAX_LINE:
                            raise _Unusable(f"it holds a text argument longer than {MAX_LINE:,} bytes")
                        buf, pos = more(buf, pos, len(buf) - pos + 1)
                        nl = buf.find(b"\n", pos, pos + MAX_LINE + 1)
                    lines.append(buf[pos:nl])
                    pos = nl + 1
                if (code == 0x49 or code == 0x4C) and len(lines[0]) > MAX_DIGITS:  # INT, LONG
                    raise _Unusable(f"it holds an integer of {len(lines[0]):,} digits")
                arg = lines
            elif layout != _NONE:
                width = _LENGTH_BYTES[layout]
                if pos + width > len(buf):
                    buf, pos = more(buf, pos, width)
                n = int.from_bytes(buf[pos : pos + width], "little", signed=layout == _LEN4S)
                pos += width
                if n < 0:
                    raise _Unusable("it holds a value of negative length", damaged=True)
                if code == 0x8B and n > MAX_LONG_BYTES:  # LONG4
                    raise _Unusable(f"it holds an integer of {n:,} bytes")
                if pos + n <= len(buf):
                    pos += n
                else:  # skipped, never read: a tensor storage can be hundreds of megabytes
                    target = base + pos + n
                    if target > end:
                        raise _Unusable(
                            f"a value in it claims {n:,} bytes where {end - base - pos:,} are left", damaged=True
                        )
                    f.seek(target)
                    base, buf, pos = target, b"", 0

            if effect == _LEAF:
                stack.append(0)
            elif effect == _TEXT:
                stack.append(-1)
            elif effect == _GET:
                index = arg if layout == _FIXED else _line_int(arg[0])
                if index not in memo:
                    raise _Unusable("it refers to a memo entry it never stored", damaged=True)
                stack.append(memo[index])
            elif effect == _PUT:
                index = arg if layout == _FIXED else _line_int(arg[0])
                if index > ops:  # pickle sizes its memo by the largest index, so it may not run ahead
                    raise _Unusable(f"it stores a value at memo index {index:,}, past any it could have made")
                memo[index] = stack[-1]
            elif effect == _MEMOIZE:
                memo[len(memo)] = stack[-1]
            elif effect == _EMPTY:
                stack.append(1)
            elif effect == _MARK:
                marks.append(len(stack))
            elif effect == _REDUCE:  # REDUCE, NEWOBJ: what a call returns nests no deeper than its arguments
                args = stack.pop()
                stack[-1] = args
            elif effect == _TUPLE_N:
                if len(stack) < size:
                    raise IndexError
                depth = 1 + max(stack[-size:])
                del stack[-size:]
                stack.append(depth)
            elif effect == _COLLECT or effect == _APPENDS:  # a container of the values above the MARK
                mark = marks.pop()
                depth = 1 + max(stack[mark:], default=0)
                if size:
                    keys = stack[mark::2] if size == _PAIRS else stack[mark:]
                    budget.spend_keys(len(keys) - keys.count(-1))
                del stack[mark:]
                if effect == _COLLECT:
                    stack.append(depth)
                else:
                    stack[-1] = max(stack[-1], depth)
            elif effect == _APPEND or effect == _BUILD:
                value = stack.pop()
                stack[-1] = max(stack[-1], value + 1)
            elif effect == _SETITEM:
                value, key = stack.pop(), stack.pop()
                if key != -1:
                    budget.spend_keys(1)
                stack[-1] = max(stack[-1], value + 1, key + 1)
            elif effect == _POP:
                if len(stack) > (marks[-1] if marks else 0):
                    stack.pop()
                else:
                    marks.pop()
            elif effect == _POP_MARK:
                del stack[marks.pop() :]
            elif effect == _DUP:
                stack.append(stack[-1])
            elif effect == _NEWOBJ_EX:
                kwargs, args = stack.pop(), stack.pop()
                stack[-1] = max(args, kwargs)
            elif effect == _GLOBAL or effect == _INST:
                try:
                    module, name = arg[0].decode("utf-8"), arg[1].decode("utf-8")
                except UnicodeDecodeError:
                    raise _Unusable("it names a global in text that is not UTF-8", damaged=True) from None
                if not names(module, name):
                    raise _Refused(f"{module}.{name}")
                if effect == _GLOBAL:
                    stack.append(0)
                else:
                    del stack[marks.pop() :]
                    stack.append(1)
            elif effect == _STACK_GLOBAL:  # the names are values on the stack: find_class checks them
                stack.pop()
                stack[-1] = 0
            elif effect == _PROTO:
                if arg > pickle.HIGHEST_PROTOCOL:
                    raise _Unusable(f"it is written in pickle protocol {arg}, which does not exist", damaged=True)
            elif effect == _FRAME:
                if arg > end - base - pos:
                    raise _Unusable(
                        f"a frame in it claims {arg:,} bytes where {end - base - pos:,} are left", damaged=True
                    )
            elif effect == _STOP:
                f.seek(base + pos)
                return
            elif effect == _PERSID or effect == _BINPERSID:
                if not persistent_ids:
                    raise _Unusable(
                        "it refers to objects outside itself (persistent ids), which NVlabs pickles never do"
                    )
                if effect == _BINPERSID:
                    stack.pop()
                stack.append(0)
            else:  # _REFUSE
                raise _Unusable(f"it uses {_REFUSED_OPCODES[code]}, which NVlabs pickles never do")
            if stack and stack[-1] > MAX_DEPTH:
                raise _Unusable(f"it nests values more than {MAX_DEPTH} deep, far deeper than any network")
    except IndexError:  # a pop from an empty stack or of a MARK that was never set
        raise _Unusable("its opcodes do not fit together", damaged=True) from None


def _line_int(text: bytes) -> int:
    try:
        return int(text)
    except ValueError:
        raise _Unusable("it holds a memo index that is not a number", damaged=True) from None


# --- what a stream may call ---------------------------------------------------------------------


class _StorageHeaderUnpickler(pickle.Unpickler):
    """The small pickles inside a legacy storage blob: only storage classes and persistent ids."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        raise _Refused(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> _StorageRef:
        # ("storage", storage type, key, location, element count, view or None)
        if not (
            isinstance(pid, tuple)
            and len(pid) == 6
            and pid[0] == "storage"
            and isinstance(pid[1], torch.dtype)
            and _short_text(pid[2])
            and _count(pid[4])
        ):
            raise _Unusable("a tensor storage in it has a malformed header", damaged=True)
        view = pid[5]
        if view is not None and not (
            isinstance(view, tuple) and len(view) == 3 and _short_text(view[0]) and _count(view[1]) and _count(view[2])
        ):
            raise _Unusable("a tensor storage in it has a malformed view", damaged=True)
        return _StorageRef(pid[1], pid[2], pid[4], view)


def _short_text(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= MAX_TEXT


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclass
class _StorageRef:
    dtype: torch.dtype
    key: str
    numel: int
    view: tuple | None  # (base key, offset, size) in very old files


def _storage_header_names(module: str, name: str) -> bool:
    return module == "torch" and name in _STORAGE_DTYPES


def _load_storage(blob: Any, budget: _Budget) -> torch.Tensor:
    """Parse one storage saved in torch's legacy format; returns it as a flat tensor. The same
    blob (a memo reference) is parsed once."""
    if not isinstance(blob, (bytes, bytearray)):
        raise _Unusable("a tensor storage in it is not bytes", damaged=True)
    seen = budget.parsed.get(id(blob))
    if seen is not None and seen[0] is blob:
        return seen[1]
    budget.storages -= 1
    if budget.storages < 0:
        raise _Unusable(f"it holds more than {MAX_STORAGES:,} tensor storages, far more than any network")
    budget.spend_copies(len(blob))
    storage = _parse_storage(blob)
    budget.parsed[id(blob)] = (blob, storage)  # the blob is kept, so that its id is not reused
    return storage


def _parse_storage(blob: bytes | bytearray) -> torch.Tensor:
    f = io.BytesIO(blob)
    for _ in range(5):  # magic number, protocol, system info, the storage, its keys
        _check_opcodes(f, len(blob), _Budget(), MAX_HEADER_OPCODES, _storage_header_names, persistent_ids=True)
    f.seek(0)
    header = _StorageHeaderUnpickler(f)
    magic, protocol, info = header.load(), header.load(), header.load()
    if (
        type(magic) is not int
        or magic != _LEGACY_MAGIC
        or type(protocol) is not int
        or protocol != _LEGACY_PROTOCOL
        or not isinstance(info, dict)
    ):
        raise _Unusable("a tensor storage in it has a bad magic number", damaged=True)
    if info.get("little_endian") is not True:
        raise _Unusable("a tensor storage in it is big-endian, which is not supported")
    root = header.load()
    keys = header.load()
    if not isinstance(root, _StorageRef) or not isinstance(keys, list) or not all(_short_text(k) for k in keys):
        raise _Unusable("a tensor storage in it does not hold a storage", damaged=True)
    view = memoryview(blob)
    size = torch.empty((), dtype=root.dtype).element_size()
    data: dict[str, torch.Tensor] = {}
    pos = f.tell()
    for key in keys:  # per key: int64 element count, then the raw little-endian elements
        if pos + 8 > len(blob):
            raise _Unusable("a tensor storage in it is truncated", damaged=True)
        (count,) = struct.unpack_from("<q", blob, pos)
        start, pos = pos + 8, pos + 8 + count * size
        if count < 0 or pos > len(blob):
            raise _Unusable("a tensor storage in it is truncated", damaged=True)
        chunk = bytearray(view[start:pos])  # writable copy, so frombuffer needs no further copy
        data[key] = torch.frombuffer(chunk, dtype=root.dtype) if count else torch.empty(0, dtype=root.dtype)
    if root.view is None:
        if root.key not in data:
            raise _Unusable("a tensor storage in it lacks its own data", damaged=True)
        return data[root.key]
    base_key, offset, numel = root.view
    if base_key not in data or offset + numel > data[base_key].numel():
        raise _Unusable("a tensor storage in it is a view past its data", damaged=True)
    return data[base_key][offset : offset + numel]


def _reconstruct_persistent_obj(meta: Any) -> _Record:
    # meta["module_src"] is the stored source text; it is deliberately dropped, never executed.
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise _Unusable("a network in it is not a persistent class object")
    name = meta.get("class_name")
    if not (isinstance(name, str) and name.isidentifier() and len(name) <= 100):
        raise _Unusable("a network in it has no class name")
    return _Record(name, meta.get("state"))


def _int_tuple(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) <= 16 and all(_count(v) for v in value)


def _rebuild_tensor_v2(
    storage: Any,
    offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any = False,
    hooks: Any = None,
    metadata: Any = None,
) -> torch.Tensor:
    if not isinstance(storage, torch.Tensor):
        raise _Unusable("a tensor in it has no storage", damaged=True)
    if not (_count(offset) and _int_tuple(size) and _int_tuple(stride) and len(size) == len(stride)):
        raise _Unusable("a tensor in it has a malformed shape", damaged=True)
    # A zero stride repeats one element: a 4-byte storage could stand for a tensor of 2**60
    # elements, which the first operation on it would allocate. State dicts hold no such tensors.
    if math.prod(size) > storage.numel():
        raise _Unusable("a tensor in it has more elements than its storage")
    if math.prod(size) and offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) >= storage.numel():
        raise _Unusable("a tensor in it reaches past its storage", damaged=True)
    return storage.as_strided(size, stride, offset)


def _rebuild_parameter(data: Any, requires_grad: Any = False, hooks: Any = None, state: Any = None) -> torch.Tensor:
    # A state dict holds plain tensors; parameter flags and hooks do not matter for reading.
    if not isinstance(data, torch.Tensor):
        raise _Unusable("a parameter in it holds no tensor", damaged=True)
    return data


class _TensorType:
    """Stands for torch.Tensor, so that a stream cannot set attributes on the real class."""

    __slots__ = ()


_REBUILD_TENSOR = _Call(_rebuild_tensor_v2)
_REBUILD_PARAMETER = _Call(_rebuild_parameter)


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any) -> Any:
    if (
        not isinstance(new_type, _TensorType)
        or func not in (_REBUILD_TENSOR, _REBUILD_PARAMETER)
        or not isinstance(args, tuple)
    ):
        raise _Unusable("it holds an unsupported tensor subclass")
    return func(*args)


def _latin1(text: Any, encoding: Any = "latin1", *, budget: _Budget) -> bytes:
    # Protocol-2 pickles spell bytes as _codecs.encode(str, 'latin1'); nothing else is allowed.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Unusable("it encodes bytes in an unsupported way", damaged=True)
    budget.spend_copies(len(text))
    return text.encode("latin1")


def _bytearray(data: Any = b"", encoding: Any = None, *, budget: _Budget) -> bytearray:
    # As protocols 2-4 write one: from bytes, or from a str and 'latin-1'. Never from a number,
    # which bytearray() would take as a size to allocate and fill.
    if isinstance(data, bytes) and encoding is None:
        budget.spend_copies(len(data))
        return bytearray(data)
    return bytearray(_latin1(data, encoding, budget=budget))


def _copying(make: Callable[[Any], Any], budget: _Budget) -> _Call:
    """set(), frozenset(), OrderedDict() for a stream: each copies its argument, so each is charged
    for its items (a stream could otherwise copy one long list a million times), and for the keys
    among them that are not strings."""

    def call(items: Any = ()) -> Any:
        if not isinstance(items, (list, tuple, dict, set, frozenset)):
            raise _Unusable("it builds a collection from something that is not one", damaged=True)
        budget.spend(len(items))
        if make is collections.OrderedDict and not isinstance(items, dict):
            keys = [pair[0] if isinstance(pair, (tuple, list)) and pair else pair for pair in items]
        else:
            keys = list(items)
        budget.spend_keys(sum(not isinstance(k, str) for k in keys))
        return make(items)

    return _Call(call)


# numpy values are rebuilt from checked, plain descriptions, never by numpy's own pickle hooks:
# np.dtype's __setstate__ takes field offsets on trust (a structured dtype whose field lies past
# the end of its item reads out of bounds), and so does the scalar reconstructor with its bytes.
# Only plain numeric dtypes (no fields, no subarrays, no objects) are accepted.
_NUMPY_KINDS = set("biuf c".replace(" ", "")) | {"?"}


class _DTypeSpec:
    """Stands for numpy.dtype(name, align, copy) until its BUILD state is checked."""

    __slots__ = ("dtype",)

    def __init__(self, name: Any, align: Any = False, copy: Any = False) -> None:
        if not isinstance(name, str) or len(name) > 8:
            raise ValueError("unsupported numpy dtype")
        dtype = np.dtype(name)  # a short type code ('f4', 'i8', 'b1'): no fields can come from it
        if dtype.kind not in _NUMPY_KINDS or dtype.fields is not None or dtype.subdtype is not None:
            raise ValueError(f"unsupported numpy dtype {name!r}")
        self.dtype = dtype

    def __setstate__(self, state: Any) -> None:
        # (version, byte order, subarray, names, fields, item size, alignment, flags[, metadata])
        if not isinstance(state, tuple) or len(state) < 8:
            raise ValueError("unsupported numpy dtype state")
        _version, order, subarray, names, fields, elsize, _alignment, _flags = state[:8]
        if subarray is not None or names is not None or fields is not None:
            raise ValueError("structured numpy dtypes are not supported")
        if elsize not in (-1, self.dtype.itemsize) or order not in ("<", ">", "|", "="):
            raise ValueError("inconsistent numpy dtype state")
        if order in "<>":
            self.dtype = self.dtype.newbyteorder(order)


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    if not isinstance(dtype, _DTypeSpec) or not isinstance(data, bytes) or len(data) != dtype.dtype.itemsize:
        raise ValueError("malformed numpy scalar")
    return np.frombuffer(data, dtype=dtype.dtype)[0].item()


class _ArraySpec:
    """Stands for numpy's _reconstruct(ndarray, shape, typecode) until its BUILD state is checked."""

    __slots__ = ("array",)

    def __init__(self, cls: Any = None, shape: Any = None, typecode: Any = None) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        # (version, shape, dtype, is_fortran, raw bytes)
        if not isinstance(state, tuple) or len(state) != 5:
            raise ValueError("unsupported numpy array state")
        _version, shape, dtype, fortran, raw = state
        if (
            not isinstance(dtype, _DTypeSpec)
            or not isinstance(raw, bytes)
            or not isinstance(shape, tuple)
            or not all(_count(n) and n < 2**31 for n in shape)
            or len(shape) > 32
        ):
            raise ValueError("malformed numpy array")
        count = math.prod(shape)
        if count * dtype.dtype.itemsize != len(raw):
            raise ValueError("numpy array data does not match its shape")
        budget = getattr(type(self), "budget", None)  # set on each load's own copy of the class
        if isinstance(budget, _Budget):
            budget.spend_copies(len(raw))
        flat = np.frombuffer(raw, dtype=dtype.dtype, count=count)
        self.array = flat.reshape(shape[::-1]).T.copy() if fortran else flat.reshape(shape).copy()


# Classes a stream may name, sealed (see _Sealed). They keep their slots, so that BUILD on an
# instance can only go through the checked __setstate__.
_StreamEasyDict = _Sealed("EasyDict", (_EasyDict,), {})
_StreamDType = _Sealed("dtype", (_DTypeSpec,), {"__slots__": ()})

_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _Call(_reconstruct_persistent_obj),
    ("dnnlib.util", "EasyDict"): _StreamEasyDict,
    ("dnnlib", "EasyDict"): _StreamEasyDict,
    ("builtins", "complex"): complex,
    ("torch._utils", "_rebuild_tensor_v2"): _REBUILD_TENSOR,
    ("torch._utils", "_rebuild_parameter"): _REBUILD_PARAMETER,
    ("torch._utils", "_rebuild_parameter_with_state"): _REBUILD_PARAMETER,
    ("torch._tensor", "_rebuild_from_type_v2"): _Call(_rebuild_from_type_v2),
    ("torch", "Tensor"): _TensorType(),
    ("numpy", "dtype"): _StreamDType,
    **{(m, "scalar"): _Call(_numpy_scalar) for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{("torch", n): d for n, d in {**_STORAGE_DTYPES, **_TORCH_DTYPES}.items()},
}


def _budgeted(budget: _Budget) -> dict[tuple[str, str], Any]:
    """The allowed names whose calls copy data, bound to one load's budget."""
    array = _Sealed("ndarray", (_ArraySpec,), {"__slots__": (), "budget": budget})
    return {
        ("builtins", "set"): _copying(set, budget),
        ("builtins", "frozenset"): _copying(frozenset, budget),
        ("collections", "OrderedDict"): _copying(collections.OrderedDict, budget),
        ("_codecs", "encode"): _Call(functools.partial(_latin1, budget=budget)),
        ("builtins", "bytearray"): _Call(functools.partial(_bytearray, budget=budget)),
        ("torch.storage", "_load_from_bytes"): _Call(functools.partial(_load_storage, budget=budget)),
        ("numpy", "ndarray"): array,
        **{(m, "_reconstruct"): array for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    }


_BUDGETED_NAMES = frozenset(_budgeted(_Budget()))


def _is_torch_module(module: str, name: str) -> bool:
    return module.startswith("torch.nn.modules.") and name.isidentifier() and name[:1].isupper() and len(name) <= 100


def _allowed(module: str, name: str) -> bool:
    if module == "__builtin__":  # protocol-2 spelling; an overriding find_class sees it unmapped
        module = "builtins"
    return (module, name) in _ALLOWED or (module, name) in _BUDGETED_NAMES or _is_torch_module(module, name)


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, budget: _Budget) -> None:
        super().__init__(file)
        self._budgeted = _budgeted(budget)
        self._modules: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "__builtin__":
            module = "builtins"
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if (module, name) in self._budgeted:
            return self._budgeted[(module, name)]
        if _is_torch_module(module, name):
            # A stock torch module (e.g. ModuleList) inside a network: keep only its state. One
            # class per name and load, so that a stream naming it again makes nothing new.
            if name not in self._modules:
                self._modules[name] = _Sealed(name, (_Record,), {"class_name": name, "state": None})
            return self._modules[name]
        raise _Refused(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise _Unusable("it refers to objects outside itself (persistent ids), which NVlabs pickles never do")


# --- reading the networks out -------------------------------------------------------------------


def _type_name(value: Any) -> str:
    return type(value).__name__[:40]


def _plain(value: Any, budget: _Budget, depth: int = 0) -> Any:
    """EasyDicts, OrderedDicts and numpy values -> plain dicts, lists and Python scalars; anything
    else a network's arguments cannot be (objects, tensors, other keys than names) is refused."""
    budget.spend(1)
    if depth > MAX_ARG_DEPTH:
        raise _Unusable(f"its network's arguments nest more than {MAX_ARG_DEPTH} deep")
    if isinstance(value, dict):
        for key in value:
            if not _short_text(key):
                raise _Unusable(f"its network's arguments use a {_type_name(key)} as a keyword, not a name")
        return {k: _plain(v, budget, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_plain(v, budget, depth + 1) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, (np.generic, np.ndarray)):
        value = value.tolist()
    if isinstance(value, _ArraySpec):
        array = getattr(value, "array", None)
        if not isinstance(array, np.ndarray):
            raise _Unusable("a numpy array among its network's arguments has no data", damaged=True)
        # tolist() makes one list per row of every dimension but the last, even of empty rows.
        budget.spend(array.size + sum(math.prod(array.shape[:k]) for k in range(1, array.ndim)))
        return array.tolist()
    if isinstance(value, _DTypeSpec):
        return value.dtype.str if hasattr(value, "dtype") else None
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, int):
        if not -(2**63) <= value < 2**64:
            raise _Unusable("its network's arguments hold a number too large for any setting")
        return value
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise _Unusable(f"its network's arguments hold a text of {len(value):,} characters")
        return value
    raise _Unusable(f"its network's arguments hold a {_type_name(value)}, not a plain value")


def _name(value: Any) -> bool:
    # torch refuses empty names and names with dots for modules, parameters and buffers.
    return isinstance(value, str) and 0 < len(value) <= MAX_NAME and "." not in value


def _state_dict(record: _Record, budget: _Budget) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    visited = elements = 0

    def group(state: dict, key: str) -> dict:
        value = state.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(_name(k) for k in value):
            raise _Unusable(f"a module's {key} in it is not a table of names")
        budget.spend(len(value))  # a module shared through the memo is walked once per place it is in
        return value

    def walk(rec: _Record, prefix: str, depth: int) -> None:
        nonlocal visited, elements
        visited += 1
        if depth > MAX_MODULE_DEPTH:
            raise _Unusable(f"its modules nest more than {MAX_MODULE_DEPTH} deep (or inside themselves)")
        if visited > MAX_MODULES:
            raise _Unusable(f"its network has more than {MAX_MODULES:,} modules")
        state = rec.state if isinstance(rec.state, dict) else {}
        skip = state.get("_non_persistent_buffers_set") or set()
        if not isinstance(skip, (set, frozenset)) or not all(isinstance(k, str) for k in skip):
            raise _Unusable("a module's non-persistent buffers in it are not a set of names")
        tensors = [(name, t, True) for name, t in group(state, "_parameters").items()]
        tensors += [(name, t, name not in skip) for name, t in group(state, "_buffers").items()]
        for name, t, persistent in tensors:
            if t is None or not persistent:
                continue
            if not isinstance(t, torch.Tensor):
                raise _Unusable(f"a module in it holds a {_type_name(t)} where a tensor belongs")
            # One tensor can be named any number of times, and every name is checked and loaded.
            elements += t.numel()
            if len(out) >= MAX_TENSORS or elements > MAX_TENSOR_ELEMENTS:
                raise _Unusable(
                    f"its network holds more than {MAX_TENSORS:,} tensors or "
                    f"{MAX_TENSOR_ELEMENTS:,} numbers, more than any generator"
                )
            out[prefix + name] = t
        for name, child in group(state, "_modules").items():
            if isinstance(child, _Record):
                walk(child, f"{prefix}{name}.", depth + 1)

    walk(record, "", 0)
    return out


def _family(state_dict: dict[str, torch.Tensor]) -> str:
    if "synthesis.input.affine.weight" in state_dict:
        return "stylegan3"
    if "synthesis.b4.const" in state_dict:
        return "stylegan2"
    return "unknown"


def _shown(text: str, limit: int = 80) -> str:
    """A name from a file as it may appear in a one-line message."""
    text = text if text.isprintable() else ascii(text)[1:-1]
    return text if len(text) <= limit else text[:limit] + "..."


def _describe(err: BaseException) -> str:
    """What went wrong, in a few words: a foreign exception's text only when it is plain text,
    never a repr of the file's values (which could be a gigabyte long, or take hours to make)."""
    if isinstance(err, _Unusable):
        return err.reason
    args = err.args
    if len(args) == 1 and isinstance(args[0], str):
        first = args[0].strip().splitlines()[0] if args[0].strip() else ""
        return f"{type(err).__name__}: {_shown(first.rstrip('.'), 120)}" if first else type(err).__name__
    return type(err).__name__


@contextlib.contextmanager
def _collection_paused() -> Iterator[None]:
    """No garbage collection while a stream is built and read: half a million containers (which a file within
    the bounds may hold) would start a collection every 700 and take ten times as long, and nothing
    built while loading is garbage before the load ends."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_nvlabs_pickle(path: str | Path, key: str = "G_ema") -> PickledNetwork:
    """Read network `key` of an NVlabs snapshot pickle, executing nothing stored in the file."""
    path = Path(path)
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise CheckpointError(f"Checkpoint {path} {what}; check the path or download the file again.")
    try:
        with _collection_paused():
            with path.open("rb") as f:
                head = f.read(2)
                if len(head) < 2 or head[0] != 0x80:
                    raise CheckpointError(
                        f"{path} is not a pickle (empty, or starts with {head!r}); "
                        "give an official NVlabs StyleGAN .pkl or a .safetensors generator."
                    )
                f.seek(0)
                size = os.fstat(f.fileno()).st_size
                budget = _Budget(copies=3 * size + (1 << 20))
                _check_opcodes(f, size, budget, MAX_OPCODES, _allowed)
                f.seek(0)
                top = _RestrictedUnpickler(f, budget).load()
            if not isinstance(top, dict):
                raise CheckpointError(
                    f"{path} holds a {_type_name(top)}, not an NVlabs snapshot dict; "
                    "give an official NVlabs StyleGAN .pkl."
                )
            net = top.get(key)
            if not isinstance(net, _Record) or not isinstance(net.state, dict):
                found = [repr(_shown(k, 40)) for k, v in top.items() if isinstance(v, _Record) and isinstance(k, str)]
                names = ", ".join(found[:8]) + (", ..." if len(found) > 8 else "") or "none"
                raise CheckpointError(f"{path} has no network {key!r} (its networks: {names}); choose one of those.")
            if not (isinstance(net.class_name, str) and net.class_name.isidentifier() and len(net.class_name) <= 100):
                raise _Unusable(f"its network {key!r} has no class name")
            state_dict = _state_dict(net, budget)
            init_args, init_kwargs = net.state.get("_init_args", ()), net.state.get("_init_kwargs", {})
            if not isinstance(init_args, (tuple, list)) or not isinstance(init_kwargs, dict):
                raise CheckpointError(
                    f"{path} stores its network's arguments as a {_type_name(init_kwargs)}, not "
                    "keywords; the file is damaged or not an NVlabs StyleGAN checkpoint."
                )
            return PickledNetwork(
                class_name=net.class_name,
                family=_family(state_dict),
                init_args=_plain(tuple(init_args), budget),
                init_kwargs=_plain(dict(init_kwargs), budget),
                state_dict=state_dict,
            )
    except CheckpointError:
        raise
    except _Refused as err:
        raise CheckpointError(
            f"{path} is not a plain StyleGAN checkpoint: the pickle asked for `{_shown(err.name)}`, "
            "which was refused, and nothing in it was run; use a checkpoint from the official releases."
        ) from None
    except _Unusable as err:
        if err.damaged:
            raise CheckpointError(f"{path} is truncated or corrupt ({err.reason}); download it again.") from None
        raise CheckpointError(
            f"{path} is not a usable checkpoint: {err.reason}; use a checkpoint from the official releases."
        ) from None
    except Exception as err:  # truncated streams, corrupt storages, bad opcodes: all mean a damaged file
        raise CheckpointError(f"{path} is truncated or corrupt ({_describe(err)}); download it again.") from None
