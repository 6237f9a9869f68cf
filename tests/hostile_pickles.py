"""Hostile checkpoint pickles, written opcode by opcode.

Each is a file that a careless reader of NVlabs pickles would run code from, hang on, overflow its
stack on or exhaust memory with; most cannot be made with `pickle.dumps` at all (a million nested
tuples, a length claim past the end of the file, a memo index of 2**32). `hostile_checkpoints()`
lists them with the layer expected to refuse each: the pickle reader itself, or the generator
loader after the reader has returned plain values (arguments of the wrong type, say). They are
used by tests/test_hostile_checkpoints.py and by the "checkpoint bombs" category of
benchmarks/robustness.py.

Only protocol opcodes are written here (see `pickletools`); nothing is imported but the standard
library, so the bytes are the same wherever they are made.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

# --- an assembler of pickle opcodes --------------------------------------------------------------

PROTO2, PROTO4, PROTO5 = b"\x80\x02", b"\x80\x04", b"\x80\x05"
STOP, NONE, TRUE, FALSE, MARK = b".", b"N", b"\x88", b"\x89", b"("
EMPTY_LIST, EMPTY_DICT, EMPTY_TUPLE, EMPTY_SET = b"]", b"}", b")", b"\x8f"
APPEND, SETITEM, SETITEMS, BUILD, REDUCE, POP, TUPLE1 = b"a", b"s", b"u", b"b", b"R", b"0", b"\x85"


def text(s: str) -> bytes:
    data = s.encode("utf-8")
    return b"X" + struct.pack("<I", len(data)) + data


def raw(data: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(data)) + data


def num(n: int) -> bytes:
    if 0 <= n < 256:
        return b"K" + bytes([n])
    if -(2**31) <= n < 2**31:
        return b"J" + struct.pack("<i", n)
    data = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data if len(data) < 256 else b"\x8b" + struct.pack("<i", len(data)) + data


def real(x: float) -> bytes:
    return b"G" + struct.pack(">d", x)


def glob(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def put(index: int) -> bytes:
    return b"r" + struct.pack("<I", index)


def get(index: int) -> bytes:
    return b"j" + struct.pack("<I", index)


def tup(*items: bytes) -> bytes:
    return MARK + b"".join(items) + b"t"


def lst(*items: bytes) -> bytes:
    return EMPTY_LIST + (MARK + b"".join(items) + b"e" if items else b"")


def dct(*pairs: tuple[bytes, bytes]) -> bytes:
    return EMPTY_DICT + (MARK + b"".join(k + v for k, v in pairs) + SETITEMS if pairs else b"")


def call(func: bytes, *args: bytes) -> bytes:
    return func + tup(*args) + REDUCE


def value(v: object) -> bytes:
    """Plain Python values (dicts, lists, tuples, strings, numbers) as opcodes."""
    if v is None:
        return NONE
    if isinstance(v, bool):
        return TRUE if v else FALSE
    if isinstance(v, int):
        return num(v)
    if isinstance(v, float):
        return real(v)
    if isinstance(v, str):
        return text(v)
    if isinstance(v, dict):
        return dct(*[(value(k), value(x)) for k, x in v.items()])
    if isinstance(v, list):
        return lst(*[value(x) for x in v])
    if isinstance(v, tuple):
        return tup(*[value(x) for x in v])
    raise TypeError(type(v))


def storage_blob(count: int, data: bytes | None = None, numel: int | None = None) -> bytes:
    """A float32 storage in torch's legacy format, as `torch.storage._load_from_bytes` takes it:
    five small pickles (magic number, protocol, system info, the storage as a persistent id, its
    keys), then per key an int64 element count and the raw elements."""
    info = value({"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 8}})
    root = tup(text("storage"), glob("torch", "FloatStorage"), text("0"), text("cpu"),
               num(count if numel is None else numel), NONE) + b"Q"
    head = b"".join(PROTO2 + part + STOP for part in (num(0x1950A86A20F9469CFC6C), num(1001), info, root,
                                                      value(["0"])))
    return head + struct.pack("<q", count) + (bytes(4 * count) if data is None else data)


def tensor(shape: tuple[int, ...], stride: tuple[int, ...] | None = None, storage: bytes | None = None) -> bytes:
    """torch._utils._rebuild_tensor_v2(storage, 0, shape, stride, False, OrderedDict()), zeros."""
    if stride is None:
        acc, strides = 1, []
        for n in reversed(shape):
            strides.append(acc)
            acc *= n
        stride = tuple(reversed(strides))
    count = 1
    for n in shape:
        count *= n
    blob = storage if storage is not None else storage_blob(count)
    return call(glob("torch._utils", "_rebuild_tensor_v2"), call(glob("torch.storage", "_load_from_bytes"), raw(blob)),
                num(0), value(shape), value(stride), FALSE, call(glob("collections", "OrderedDict")))


def record(class_name: bytes, state: bytes) -> bytes:
    """One network module as NVlabs' persistence machinery pickles it: a call with a meta dict."""
    meta = dct((text("type"), text("class")), (text("version"), num(6)),
               (text("module_src"), text("raise SystemExit('the embedded source must not run')\n")),
               (text("class_name"), class_name), (text("state"), state))
    return call(glob("torch_utils.persistence", "_reconstruct_persistent_obj"), meta)


def module_state(modules: bytes = EMPTY_DICT, params: bytes = EMPTY_DICT, **extra: bytes) -> bytes:
    pairs = [(text("_parameters"), params), (text("_buffers"), EMPTY_DICT), (text("_modules"), modules),
             (text("training"), FALSE)]
    return dct(*pairs, *[(text(k), v) for k, v in extra.items()])


GOOD_KWARGS = {"z_dim": 32, "c_dim": 0, "w_dim": 64, "img_resolution": 32, "img_channels": 3,
               "mapping_kwargs": {"num_layers": 2}, "synthesis_kwargs": {"channel_base": 256, "channel_max": 32}}


def generator(kwargs: bytes | None = None, args: bytes = EMPTY_TUPLE, stylegan3: bool = False,
              const: bytes | None = None, class_name: bytes | None = None) -> bytes:
    """A generator record whose one tensor makes it read as StyleGAN2 (synthesis.b4.const) or
    StyleGAN3 (synthesis.input.affine.weight), so that its arguments are what a loader must judge."""
    if stylegan3:
        weight = dct((text("weight"), const or tensor((4, 8))))
        affine = record(text("FullyConnectedLayer"), module_state(params=weight))
        layer = record(text("SynthesisInput"), module_state(modules=dct((text("affine"), affine))))
        synthesis = module_state(modules=dct((text("input"), layer)))
    else:
        block = record(text("SynthesisBlock"), module_state(params=dct((text("const"), const or tensor((4, 4, 4))))))
        synthesis = module_state(modules=dct((text("b4"), block)))
    state = module_state(modules=dct((text("synthesis"), record(text("SynthesisNetwork"), synthesis))),
                         _init_args=args, _init_kwargs=value(GOOD_KWARGS) if kwargs is None else kwargs)
    return record(class_name or text("Generator"), state)


def snapshot(net: bytes, proto: bytes = PROTO2) -> bytes:
    return proto + dct((text("G_ema"), net)) + STOP


def kwargs_with(**values: bytes) -> bytes:
    """GOOD_KWARGS with some values replaced by raw opcodes."""
    pairs = [(text(k), values.pop(k) if k in values else value(v)) for k, v in GOOD_KWARGS.items()]
    return dct(*pairs, *[(text(k), v) for k, v in values.items()])


# --- the hostile files ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Hostile:
    name: str
    data: bytes
    refused_by: str  # "reader": read_nvlabs_pickle raises; "loader": it returns, load_generator raises


def _laughs(levels: int, item: bytes = EMPTY_LIST, pair: bool = False) -> bytes:
    """x0 = item; x(i+1) = [x(i), x(i)] (or {"a": x(i), "b": x(i)}), each shared through the memo:
    a few hundred bytes that stand for 2**levels values."""
    out = item + put(0) + POP
    for i in range(levels):
        if pair:
            out += dct((text("a"), get(i)), (text("b"), get(i))) + put(i + 1) + POP
        else:
            out += lst(get(i), get(i)) + put(i + 1) + POP
    return out + get(levels)


def _nested_dicts(n: int) -> bytes:
    # {"a": {"a": {...}}}, n deep, without recursion: n empty dicts with their keys, then n SETITEMs.
    return EMPTY_DICT + (text("a") + EMPTY_DICT) * n + SETITEM * n


def _chained_lists(n: int, first: int = 10) -> bytes:
    # n lists, each stored in the memo while still empty and only then appended to the one before:
    # a chain n deep that the opcode stream never shows as nesting.
    out = b"".join(EMPTY_LIST + put(first + i) + POP for i in range(n))
    out += b"".join(get(first + i) + get(first + i + 1) + APPEND + POP for i in range(n - 1))
    return out + get(first)


def _nested_records(n: int) -> bytes:
    # Module inside module, n deep, written as n openings and n closings.
    opening = (glob("torch_utils.persistence", "_reconstruct_persistent_obj") + MARK + EMPTY_DICT + MARK
               + text("type") + text("class") + text("class_name") + text("Block") + text("state")
               + EMPTY_DICT + MARK + text("_parameters") + EMPTY_DICT + text("_modules") + EMPTY_DICT + text("m"))
    closing = SETITEM + SETITEMS + SETITEMS + b"t" + REDUCE
    inner = record(text("Block"), module_state())
    return opening * n + inner + closing * n


def _chained_records(n: int) -> bytes:
    # n modules whose `_modules` dicts are filled through the memo after all exist: nesting n deep
    # that the opcode stream never shows.
    out = [record(text("Block"), dct((text("_modules"), EMPTY_DICT + put(1 + 2 * i)))) + put(2 + 2 * i) + POP
           for i in range(n)]
    out += [get(1 + 2 * i) + text("m") + get(2 + 2 * (i + 1)) + SETITEM + POP for i in range(n - 1)]
    return b"".join(out) + get(2)


def _self_containing() -> bytes:
    # A module whose `_modules` holds the module itself.
    mods = EMPTY_DICT + put(1)
    rec = record(text("Generator"), dct((text("_modules"), mods), (text("_init_kwargs"), value(GOOD_KWARGS))))
    return rec + put(2) + get(1) + text("self") + get(2) + SETITEM + POP


def _shared_records(levels: int) -> bytes:
    # Module i holds module i-1 twice: 2**levels modules to walk, a few kilobytes to write.
    out = record(text("Leaf"), module_state(params=dct((text("w"), tensor((2,)))))) + put(0) + POP
    for i in range(levels):
        pair = module_state(modules=dct((text("a"), get(i)), (text("b"), get(i))))
        out += record(text("Generator"), pair) + put(i + 1) + POP
    return out + get(levels)


def _numpy_array(shape: tuple[int, ...], data: bytes = b"") -> bytes:
    dtype = call(glob("numpy", "dtype"), text("f8"), FALSE, TRUE) + tup(
        num(3), text("<"), NONE, NONE, NONE, num(-1), num(-1), num(0)) + BUILD
    return (call(glob("numpy.core.multiarray", "_reconstruct"), glob("numpy", "ndarray"), tup(num(0)),
                 b"C\x01b") + tup(num(1), value(shape), dtype, FALSE, raw(data)) + BUILD)


def _forbidden_call(module: str, name: str, *args: bytes) -> bytes:
    return snapshot(call(glob(module, name), *args))


def hostile_checkpoints() -> list[Hostile]:
    """Every kind of hostile checkpoint, small enough to write in a moment (the largest is a few MB)."""
    cases: list[Hostile] = []

    def add(name: str, data: bytes, refused_by: str = "reader") -> None:
        cases.append(Hostile(name, data, refused_by))

    # Arguments of the wrong type or shape, which the loader must judge.
    add("init kwargs a list of pairs", snapshot(generator(value([["z_dim", 32], ["w_dim", 64]]))))
    add("init args a list of lists", snapshot(generator(args=value([[1, 2], [3]]))), "loader")
    add("a parameter given as a list", snapshot(generator(kwargs_with(z_dim=value([32, 32])))), "loader")
    add("mapping_kwargs a list of pairs", snapshot(generator(kwargs_with(mapping_kwargs=value([["num_layers", 2]])))),
        "loader")
    add("synthesis_kwargs a string", snapshot(generator(kwargs_with(synthesis_kwargs=text("abc")))), "loader")
    add("StyleGAN3 parameter given as a list", snapshot(generator(kwargs_with(z_dim=value([32])), stylegan3=True)),
        "loader")
    add("StyleGAN3 mapping_kwargs a list",
        snapshot(generator(kwargs_with(mapping_kwargs=value([1, 2])), stylegan3=True)), "loader")
    add("non-string keys in init kwargs", snapshot(generator(dct((num(1), num(2)), (value((1, 2)), num(3))))))
    add("non-string keys in synthesis_kwargs", snapshot(generator(kwargs_with(synthesis_kwargs=dct((num(7), num(1)))))))
    add("StyleGAN3 non-string keys", snapshot(generator(dct((num(1), num(2))), stylegan3=True)))
    add("a keyword a megabyte long", snapshot(generator(kwargs_with(**{"x" * 1_000_000: num(1)}))))
    add("a number of 200 bytes", snapshot(generator(kwargs_with(z_dim=num(1 << 1590)))))
    add("a class name a megabyte long", snapshot(generator(class_name=text("A" * 1_000_000))))
    add("a set among the init kwargs",
        snapshot(generator(kwargs_with(z_dim=call(glob("builtins", "set"), lst(text("a")))))))
    # Nesting.
    add("init kwargs nested 100,000 deep", snapshot(generator(kwargs_with(mapping_kwargs=_nested_dicts(100_000)))))
    add("init kwargs nested 100,000 deep through the memo",
        snapshot(generator(kwargs_with(mapping_kwargs=_chained_lists(100_000)))))
    add("modules nested 20,000 deep", snapshot(_nested_records(20_000)))
    add("modules nested 20,000 deep through the memo", snapshot(_chained_records(20_000)))
    add("a module inside itself", snapshot(_self_containing()))
    add("a tuple nested 1,000,000 deep as a dict key",
        PROTO2 + EMPTY_DICT + EMPTY_TUPLE + TUPLE1 * 1_000_000 + NONE + SETITEM + STOP)
    add("a tuple nested 100,000 deep in a frozenset", PROTO4 + MARK + EMPTY_TUPLE + TUPLE1 * 100_000 + b"\x91" + STOP)
    add("lists nested 1,000,000 deep", PROTO2 + EMPTY_LIST * 1_000_000 + APPEND * 999_999 + STOP)
    # Sharing through the memo (billion laughs) and copying.
    add("billion laughs in init kwargs", snapshot(generator(kwargs_with(mapping_kwargs=_laughs(40)))))
    add("billion laughs 30 deep in init kwargs", snapshot(generator(kwargs_with(mapping_kwargs=_laughs(30)))))
    add("billion laughs of dicts in init kwargs", snapshot(generator(kwargs_with(mapping_kwargs=_laughs(40, EMPTY_DICT,
                                                                                                       pair=True)))))
    add("billion laughs as the class name", snapshot(record(_laughs(40), module_state())))
    add("billion laughs where a tensor belongs", snapshot(record(text("Generator"),
                                                                 module_state(params=dct((text("w"), _laughs(40)))))))
    add("billion laughs as init args", snapshot(generator(args=_laughs(40))))
    add("modules shared 2**18 ways", snapshot(_shared_records(18)))
    add("one tensor named 100,000 times", snapshot(record(text("Generator"), module_state(params=dct(
        (text("w0"), tensor((4, 4, 4)) + put(0)), *[(text(f"w{i}"), get(0)) for i in range(1, 100_000)])))))
    long_list = lst(text("a") + put(0), *[get(0)] * 10_000) + put(1) + POP
    add("frozenset copies of one long list", PROTO2 + long_list + glob("builtins", "frozenset") + put(2) + POP
        + (get(2) + tup(get(1)) + REDUCE + POP) * 1_000 + NONE + STOP)
    add("EasyDict called with a long list", PROTO2 + long_list + glob("dnnlib.util", "EasyDict") + put(2) + POP
        + (get(2) + tup(get(1)) + REDUCE + POP) * 1_000 + NONE + STOP)
    add("100,000 number keys of one hash", PROTO2 + dct(*[(num(k * (2**61 - 1)), NONE) for k in range(1, 100_001)])
        + STOP)
    # Calls whose argument comes from the memo for three bytes each, and copies it every time.
    load = glob("torch.storage", "_load_from_bytes") + put(0) + POP
    add("one storage parsed 100,000 times", PROTO2 + load + tup(raw(storage_blob(4))) + put(1) + POP
        + (get(0) + get(1) + REDUCE + POP) * 100_000 + NONE + STOP)
    add("25,000 storages", PROTO2 + load + (get(0) + tup(raw(storage_blob(1))) + REDUCE + POP) * 25_000 + NONE + STOP)
    encode = glob("_codecs", "encode") + put(0) + POP + text("x" * 1_000_000) + put(1) + POP
    add("a megabyte encoded 1,000 times", PROTO2 + encode
        + (get(0) + MARK + get(1) + text("latin1") + b"t" + REDUCE + POP) * 1_000 + NONE + STOP)
    array = (glob("numpy.core.multiarray", "_reconstruct") + put(0) + POP + raw(bytes(1 << 20)) + put(1) + POP
             + call(glob("numpy", "dtype"), text("f8"), FALSE, TRUE) + tup(
                 num(3), text("<"), NONE, NONE, NONE, num(-1), num(-1), num(0)) + BUILD + put(2) + POP)
    add("a megabyte of numpy data copied 1,000 times", PROTO2 + array + (
        get(0) + tup(glob("numpy", "ndarray"), tup(num(0)), b"C\x01b") + REDUCE
        + tup(num(1), tup(num(1 << 17)), get(2), FALSE, get(1)) + BUILD + POP) * 1_000 + NONE + STOP)
    add("half a million empty sets", PROTO4 + EMPTY_SET * 499_000 + STOP)
    add("more than half a million opcodes", PROTO2 + NONE * 600_000 + STOP)
    # Length claims past the end of the file, and integers of any size.
    add("BINUNICODE claiming 4 GB", PROTO2 + b"X" + struct.pack("<I", 2**32 - 1) + b"abc")
    add("BINUNICODE8 claiming 2**62 bytes", PROTO4 + b"\x8d" + struct.pack("<Q", 2**62) + b"abc")
    add("BINBYTES8 claiming 2**62 bytes", PROTO4 + b"\x8e" + struct.pack("<Q", 2**62) + b"abc")
    add("BYTEARRAY8 claiming 2**40 bytes", PROTO5 + b"\x96" + struct.pack("<Q", 2**40) + b"abc")
    add("LONG4 claiming 2 GB", PROTO2 + b"\x8b" + struct.pack("<i", 2**31 - 1) + b"abc")
    add("a LONG4 of 1 MB", PROTO2 + b"\x8b" + struct.pack("<i", 1 << 20) + b"\x01" * (1 << 20) + STOP)
    add("a LONG of 5,000 digits", PROTO2 + b"L" + b"9" * 5000 + b"L\n" + STOP)
    add("FRAME claiming 2**62 bytes", PROTO4 + b"\x95" + struct.pack("<Q", 2**62) + EMPTY_DICT + STOP)
    add("SHORT_BINUNICODE past the end", PROTO2 + b"\x8c\xff" + b"ab")
    add("a global name 10 MB long", PROTO2 + b"c" + b"a" * 10_000_000)
    add("bytearray of 4 GB", snapshot(call(glob("__builtin__", "bytearray"), num(2**32))))
    # The memo.
    add("a memo index of 2**32 - 1", PROTO2 + NONE + put(2**32 - 1) + STOP)
    add("a text memo index of 2**40", PROTO2 + NONE + b"p1099511627776\n" + STOP)
    add("a memo entry never stored", PROTO2 + get(7) + STOP)
    # What NVlabs pickles never hold.
    add("NEXT_BUFFER (protocol 5 out-of-band data)", PROTO5 + b"\x97" + STOP)
    add("READONLY_BUFFER (protocol 5)", PROTO5 + b"\x96" + struct.pack("<Q", 3) + b"abc" + b"\x98" + STOP)
    add("a persistent id (PERSID)", PROTO2 + EMPTY_DICT + text("G_ema") + b"P/etc/passwd\n" + SETITEM + STOP)
    pid = tup(text("storage"), glob("torch", "FloatStorage"), text("0"), text("cpu"), num(10**9), NONE)
    add("a persistent id tuple (BINPERSID)", PROTO2 + EMPTY_DICT + text("G_ema") + pid + b"Q" + SETITEM + STOP)
    add("an extension code (EXT4)", PROTO2 + b"\x84" + struct.pack("<i", 12345) + STOP)
    add("pickle protocol 6", b"\x80\x06" + NONE + STOP)
    add("an unknown opcode", PROTO2 + b"\xff" + STOP)
    add("an empty stack", PROTO2 + APPEND + STOP)
    # numpy and torch values that claim more than they hold.
    for what, array in [("shape (2**31 - 1, 0)", _numpy_array((2**31 - 1, 0))),
                        ("shape (10**6, 10**6)", _numpy_array((10**6,) * 2)),
                        ("40 dimensions", _numpy_array((1,) * 40, bytes(8))), ("shape 2**40", _numpy_array((2**40,)))]:
        add(f"numpy array of {what}", snapshot(generator(kwargs_with(mapping_kwargs=array))))
    add("a tensor of 2**40 elements on one number", snapshot(generator(const=tensor((2**40,), (0,), storage_blob(1)))))
    add("a tensor past its storage", snapshot(generator(const=tensor((4, 4, 4), (16, 4, 1), storage_blob(8)))))
    add("a storage claiming 2**60 elements",
        snapshot(generator(const=tensor((4, 4, 4), storage=storage_blob(2**60, b"")))))
    add("a storage header nested 100,000 deep", snapshot(generator(
        const=call(glob("torch.storage", "_load_from_bytes"), raw(PROTO2 + EMPTY_TUPLE + TUPLE1 * 100_000 + STOP)))))
    # Names that would run code, by every opcode that names a global.
    for module, name in [("os", "system"), ("posix", "system"), ("builtins", "eval"), ("builtins", "exec"),
                         ("__builtin__", "eval"), ("builtins", "getattr"), ("builtins", "__import__"),
                         ("builtins", "tuple"), ("copyreg", "_reconstructor"), ("torch", "load"), ("numpy", "load"),
                         ("torch.nn.modules.module", "register_module_forward_hook"), ("subprocess", "Popen")]:
        add(f"GLOBAL {module}.{name}", _forbidden_call(module, name, text("touch PWNED")))
    add("STACK_GLOBAL os.system", PROTO4 + text("os") + text("system") + b"\x93" + tup(text("touch PWNED")) + REDUCE
        + STOP)
    add("STACK_GLOBAL with a newline in its name", PROTO4 + text("os\nsystem") + text("x\ny") + b"\x93" + STOP)
    add("INST os.system", PROTO2 + MARK + text("touch PWNED") + b"ios\nsystem\n" + STOP)
    add("OBJ of subprocess.Popen", PROTO4 + MARK + text("subprocess") + text("Popen") + b"\x93"
        + lst(text("touch"), text("PWNED")) + b"o" + STOP)
    add("EasyDict patched to run __del__", PROTO2 + glob("dnnlib.util", "EasyDict") + tup(
        NONE, dct((text("__del__"), glob("_codecs", "encode")))) + BUILD + STOP)
    add("a tensor function patched through BUILD", PROTO2 + glob("torch._utils", "_rebuild_tensor_v2") + tup(
        NONE, dct((text("target"), glob("_codecs", "encode")))) + BUILD + STOP)
    return cases
