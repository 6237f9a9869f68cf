"""Read official NVlabs StyleGAN checkpoint pickles without running anything stored in them.

NVlabs snapshots (stylegan2-ada-pytorch, stylegan3, and the files DragGAN downloads) are pickles
whose every network is a call to `torch_utils.persistence._reconstruct_persistent_obj(meta)`, with
the network's Python source text embedded in `meta`. The official loader executes that source, so
a hostile file could run anything. Here a whitelisting unpickler turns each persistent object into a
plain `_Record` (class name + `__dict__`), parses tensor storages itself, refuses every other global,
and the caller gets the class name, constructor arguments and state dict it needs to rebuild the
network with the project's own code.
"""
from __future__ import annotations

import collections
import functools
import io
import math
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from types import FunctionType
from typing import Any, Callable

import numpy as np
import torch

from engine.errors import CheckpointError



@dataclass
class PickledNetwork:
    class_name: str  # e.g. "Generator"
    family: str  # "stylegan2" | "stylegan3" | "unknown", judged from the state dict's names
    init_args: tuple
    init_kwargs: dict
    state_dict: dict[str, torch.Tensor]  # torch state_dict order, official names


class _Record:
    """Stand-in for a pickled network object: its class name and its `__dict__`, never its code."""

    def __init__(self, class_name: str = "", state: Any = None) -> None:
        self.class_name = class_name
        self.state = state

    def __setstate__(self, state: Any) -> None:  # plain torch modules arrive via NEWOBJ + BUILD
        self.state = state


class _EasyDict(dict):
    """Capture of dnnlib.EasyDict; converted to a plain dict before it leaves this module."""


_STORAGE_DTYPES: dict[str, torch.dtype] = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool, "UntypedStorage": torch.uint8,
}
_TORCH_DTYPES = {str(d).removeprefix("torch."): d for d in set(_STORAGE_DTYPES.values())}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


class _Refused(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


@dataclass
class _StorageRef:
    dtype: torch.dtype
    key: str
    numel: int
    view: tuple | None  # (base key, offset, size) in very old files


class _StorageHeaderUnpickler(pickle.Unpickler):
    """The small pickles inside a legacy storage blob: only storage classes and persistent ids."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        raise _Refused(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> _StorageRef:
        kind, dtype, key, _location, numel, view = pid
        if kind != "storage" or not isinstance(dtype, torch.dtype):
            raise ValueError(f"unexpected storage id {pid!r}")
        return _StorageRef(dtype, str(key), int(numel), view)


def _load_storage(blob: bytes) -> torch.Tensor:
    """Parse one storage saved in torch's legacy format; returns it as a flat tensor."""
    f = io.BytesIO(blob)
    header = _StorageHeaderUnpickler(f)
    if header.load() != _LEGACY_MAGIC or header.load() != _LEGACY_PROTOCOL:
        raise ValueError("bad storage magic number")
    if not header.load().get("little_endian", False):
        raise ValueError("big-endian storages are not supported")
    root = header.load()
    keys = header.load()
    if not isinstance(root, _StorageRef):
        raise ValueError("storage blob does not hold a storage")
    view = memoryview(blob)
    size = torch.empty((), dtype=root.dtype).element_size()
    data: dict[str, torch.Tensor] = {}
    pos = f.tell()
    for key in keys:  # per key: int64 element count, then the raw little-endian elements
        (count,) = struct.unpack_from("<q", blob, pos)
        start, pos = pos + 8, pos + 8 + count * size
        if count < 0 or pos > len(blob):
            raise ValueError("storage data is truncated")
        chunk = bytearray(view[start:pos])  # writable copy, so frombuffer needs no further copy
        data[key] = torch.frombuffer(chunk, dtype=root.dtype) if count else torch.empty(0, dtype=root.dtype)
    if root.view is None:
        return data[root.key]
    base_key, offset, numel = root.view
    return data[base_key][offset:offset + numel]


def _reconstruct_persistent_obj(meta: dict) -> _Record:
    # meta["module_src"] is the embedded source text; it is deliberately dropped, never executed.
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise ValueError("unsupported persistent object")
    return _Record(str(meta["class_name"]), meta["state"])


def _rebuild_tensor_v2(storage: torch.Tensor, offset: int, size: tuple, stride: tuple,
                       requires_grad: bool = False, hooks: Any = None, metadata: Any = None) -> torch.Tensor:
    if not isinstance(storage, torch.Tensor):
        raise ValueError("tensor without a storage")
    return storage.as_strided(tuple(size), tuple(stride), int(offset))


def _rebuild_parameter(data: torch.Tensor, requires_grad: bool = False, hooks: Any = None,
                       state: Any = None) -> torch.Tensor:
    # A state dict holds plain tensors; parameter flags and hooks do not matter for reading.
    return data


class _TensorType:
    """Stands for torch.Tensor, so that a stream cannot set attributes on the real class."""

    __slots__ = ()


def _rebuild_from_type_v2(func: Callable, new_type: Any, args: tuple, state: Any) -> Any:
    inner = getattr(func, "func", None)
    if not isinstance(new_type, _TensorType) or inner not in (_rebuild_tensor_v2, _rebuild_parameter):
        raise ValueError("unsupported tensor subclass")
    return func(*args)


def _latin1(text: str, encoding: str = "latin1") -> bytes:
    # Protocol-2 pickles spell bytes as _codecs.encode(str, 'latin1'); nothing else is allowed.
    if encoding not in ("latin1", "latin-1"):
        raise ValueError("unsupported encoding")
    return text.encode("latin1")


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
        if not isinstance(dtype, _DTypeSpec) or not isinstance(raw, bytes) or not isinstance(shape, tuple) \
                or not all(isinstance(n, int) and 0 <= n < 2**31 for n in shape) or len(shape) > 32:
            raise ValueError("malformed numpy array")
        count = math.prod(shape)
        if count * dtype.dtype.itemsize != len(raw):
            raise ValueError("numpy array data does not match its shape")
        flat = np.frombuffer(raw, dtype=dtype.dtype, count=count)
        self.array = flat.reshape(shape[::-1]).T.copy() if fortran else flat.reshape(shape).copy()


_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("dnnlib", "EasyDict"): _EasyDict,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "dict"): dict,
    ("builtins", "list"): list, ("builtins", "tuple"): tuple, ("builtins", "bytearray"): bytearray,
    ("builtins", "complex"): complex, ("_codecs", "encode"): _latin1,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Tensor"): _TensorType(),
    ("torch.storage", "_load_from_bytes"): _load_storage,
    ("numpy", "dtype"): _DTypeSpec,
    ("numpy", "ndarray"): _ArraySpec,
    **{(m, n): f for m in ("numpy.core.multiarray", "numpy._core.multiarray")
       for n, f in (("scalar", _numpy_scalar), ("_reconstruct", _ArraySpec))},
    **{("torch", n): d for n, d in {**_STORAGE_DTYPES, **_TORCH_DTYPES}.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "__builtin__":  # protocol-2 spelling; an overriding find_class sees it unmapped
            module = "builtins"
        # BUILD may setattr on whatever this returns, so Python-level objects are handed out as
        # fresh wrappers; the built-in types and functions in the table reject attribute writes.
        if (module, name) in _ALLOWED:
            obj = _ALLOWED[(module, name)]
            if isinstance(obj, FunctionType):
                return functools.partial(obj)
            if obj is _EasyDict:
                return type(obj.__name__, (obj,), {})
            if obj in (_DTypeSpec, _ArraySpec):  # slots kept: BUILD can only go through __setstate__
                return type(obj.__name__, (obj,), {"__slots__": ()})
            return obj
        if module.startswith("torch.nn.modules.") and name.isidentifier() and name[:1].isupper():
            # A stock torch module (e.g. ModuleList) inside a network: keep only its state.
            return type(name, (_Record,), {"class_name": name, "state": None})
        raise _Refused(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids do not occur in NVlabs pickles")


def _plain(value: Any) -> Any:
    """EasyDicts, OrderedDicts and numpy values -> plain dicts, lists and Python scalars."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if isinstance(value, _ArraySpec):
        return value.array.tolist() if isinstance(value.array, np.ndarray) else None
    if isinstance(value, _DTypeSpec):
        return value.dtype.str
    return value


def _state_dict(record: _Record) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}

    def walk(rec: _Record, prefix: str) -> None:
        state = rec.state if isinstance(rec.state, dict) else {}
        skip = state.get("_non_persistent_buffers_set") or set()
        for name, t in (state.get("_parameters") or {}).items():
            if t is not None:
                out[prefix + name] = t
        for name, t in (state.get("_buffers") or {}).items():
            if t is not None and name not in skip:
                out[prefix + name] = t
        for name, child in (state.get("_modules") or {}).items():
            if isinstance(child, _Record):
                walk(child, f"{prefix}{name}.")

    walk(record, "")
    return out


def _family(state_dict: dict[str, torch.Tensor]) -> str:
    if "synthesis.input.affine.weight" in state_dict:
        return "stylegan3"
    if "synthesis.b4.const" in state_dict:
        return "stylegan2"
    return "unknown"


def read_nvlabs_pickle(path: str | Path, key: str = "G_ema") -> PickledNetwork:
    """Read network `key` of an NVlabs snapshot pickle, executing nothing stored in the file."""
    path = Path(path)
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise CheckpointError(f"Checkpoint {path} {what}; check the path or download the file again.")
    try:
        with path.open("rb") as f:
            head = f.read(2)
            if len(head) < 2 or head[0] != 0x80:
                raise CheckpointError(
                    f"{path} is not a pickle (empty, or starts with {head!r}); "
                    "give an official NVlabs StyleGAN .pkl or a .safetensors generator.")
            f.seek(0)
            top = _RestrictedUnpickler(f).load()
    except CheckpointError:
        raise
    except _Refused as err:
        raise CheckpointError(
            f"{path} is not a plain StyleGAN checkpoint: the pickle asked for `{err.name}`, "
            "which was refused, and nothing in it was run; use a checkpoint from the official releases.") from None
    except Exception as err:  # truncated streams, corrupt storages, bad opcodes: all mean a damaged file
        raise CheckpointError(
            f"{path} is truncated or corrupt ({type(err).__name__}: {err}); download it again.") from None
    if not isinstance(top, dict):
        raise CheckpointError(f"{path} holds a {type(top).__name__}, not an NVlabs snapshot dict; "
                              "give an official NVlabs StyleGAN .pkl.")
    net = top.get(key)
    if not isinstance(net, _Record) or not isinstance(net.state, dict):
        names = ", ".join(repr(k) for k, v in top.items() if isinstance(v, _Record)) or "none"
        raise CheckpointError(f"{path} has no network {key!r} (its networks: {names}); choose one of those.")
    state_dict = _state_dict(net)
    init_args, init_kwargs = net.state.get("_init_args", ()), net.state.get("_init_kwargs", {})
    if not isinstance(init_args, (tuple, list)) or not isinstance(init_kwargs, dict):
        raise CheckpointError(f"{path} stores its network's arguments as a {type(init_kwargs).__name__}, not "
                              "keywords; the file is damaged or not an NVlabs StyleGAN checkpoint.")
    return PickledNetwork(
        class_name=net.class_name,
        family=_family(state_dict),
        init_args=_plain(tuple(init_args)),
        init_kwargs=_plain(dict(init_kwargs)),
        state_dict=state_dict,
    )
