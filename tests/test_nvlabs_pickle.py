"""engine.nvlabs_pickle: official snapshot pickles load exactly, and nothing hostile ever runs."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.errors import CheckpointError
from engine.nvlabs_pickle import read_nvlabs_pickle

FIXTURES = Path(os.environ.get("VOICEDRAG_FIXTURES", Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"))
NAMES = ["sg2_64_flat", "sg2_128_ada", "sg3_t_64", "sg3_r_64"]
FAMILY = {"sg2_64_flat": "stylegan2", "sg2_128_ada": "stylegan2", "sg3_t_64": "stylegan3", "sg3_r_64": "stylegan3"}
needs_fixtures = pytest.mark.skipif(not (FIXTURES / "G_ema_state_dict_keys.txt").is_file(),
                                    reason=f"fixture pickles not found in {FIXTURES} (set VOICEDRAG_FIXTURES)")


def _expected() -> dict[str, dict]:
    """Parse G_ema_state_dict_keys.txt: per pickle, its header fields and ordered (kind, name, shape, dtype)."""
    out: dict[str, dict] = {}
    current: dict = {}
    for line in (FIXTURES / "G_ema_state_dict_keys.txt").read_text().splitlines():
        if line.startswith("## ") and ".pkl" in line:
            name = line.split()[1].removesuffix(".pkl")
            current = out[name] = {
                "class_name": line.split("class ")[1].split(",")[0],
                "init_kwargs": json.loads(line.split("init_kwargs=", 1)[1]),
                "entries": [],
            }
        elif line and not line.startswith("#"):
            kind, key, shape, dtype, _cls = line.split("\t")
            current["entries"].append((kind, key, tuple(json.loads(shape)), dtype))
    return out


def _assert_plain(value: object) -> None:
    """Only exact built-in types: no EasyDict, OrderedDict or numpy scalar may leak out."""
    assert type(value) in (dict, list, tuple, str, int, float, bool, type(None)), type(value)
    if isinstance(value, dict):
        for v in value.values():
            _assert_plain(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _assert_plain(v)


@needs_fixtures
@pytest.mark.parametrize("name", NAMES)
def test_fixture_g_ema_matches_listing(name: str) -> None:
    expected = _expected()[name]
    net = read_nvlabs_pickle(FIXTURES / f"{name}.pkl")
    assert net.class_name == expected["class_name"] == "Generator"
    assert net.family == FAMILY[name]
    assert net.init_args == ()
    assert net.init_kwargs == expected["init_kwargs"]
    _assert_plain(net.init_kwargs)
    got = [(k, tuple(t.shape), str(t.dtype).removeprefix("torch.")) for k, t in net.state_dict.items()]
    assert got == [(k, s, d) for _kind, k, s, d in expected["entries"]]
    ref = np.load(FIXTURES / f"{name}_ref.npz")
    np.testing.assert_array_equal(net.state_dict["mapping.w_avg"].numpy(), ref["w_avg"])


@needs_fixtures
@pytest.mark.parametrize("name", ["sg2_128_ada", "sg3_t_64"])
def test_training_copy_g_differs_in_biases(name: str) -> None:
    ema = read_nvlabs_pickle(FIXTURES / f"{name}.pkl").state_dict
    g = read_nvlabs_pickle(FIXTURES / f"{name}.pkl", key="G").state_dict
    assert list(g) == list(ema)
    biases = [k for k in ema if k.endswith("bias")]
    assert biases and all(not torch.equal(g[k], ema[k]) for k in biases)
    weights = [k for k in ema if k.endswith(".weight") and k != "synthesis.input.affine.weight"]
    assert weights and all(torch.equal(g[k], ema[k]) for k in weights)  # shared via pickle memo


@needs_fixtures
def test_discriminator_and_wrong_key() -> None:
    d = read_nvlabs_pickle(FIXTURES / "sg2_64_flat.pkl", key="D")
    assert d.class_name == "Discriminator" and d.family == "unknown" and d.state_dict
    with pytest.raises(CheckpointError, match=r"has no network 'G_emma'.*'G', 'D', 'G_ema'"):
        read_nvlabs_pickle(FIXTURES / "sg2_64_flat.pkl", key="G_emma")
    with pytest.raises(CheckpointError, match="no network 'augment_pipe'"):  # present but None
        read_nvlabs_pickle(FIXTURES / "sg2_64_flat.pkl", key="augment_pipe")


# --- synthetic snapshots written with torch's own tensor pickling ---------------------------------

def _fake_reconstruct(meta: dict) -> None:
    raise AssertionError("never called while writing")


class _PersistentPickler(pickle.Pickler):
    """Writes modules the way NVlabs' persistence machinery does: a call with a meta dict."""

    def reducer_override(self, obj: object) -> object:
        if isinstance(obj, torch.nn.Module) and not isinstance(obj, torch.nn.ModuleList):
            meta = dict(type="class", version=6, module_src="raise SystemExit('source must not run')\n",
                        class_name=type(obj).__name__, state=dict(obj.__dict__))
            return _fake_reconstruct, (meta,)
        return NotImplemented


def _write_snapshot(path: Path, snapshot: object, monkeypatch: pytest.MonkeyPatch, protocol: int = 4) -> None:
    monkeypatch.setitem(sys.modules, "torch_utils", types.ModuleType("torch_utils"))
    fake = types.ModuleType("torch_utils.persistence")
    fake._reconstruct_persistent_obj = _fake_reconstruct
    monkeypatch.setattr(_fake_reconstruct, "__module__", "torch_utils.persistence")
    monkeypatch.setattr(_fake_reconstruct, "__qualname__", "_reconstruct_persistent_obj")
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", fake)
    with path.open("wb") as f:
        _PersistentPickler(f, protocol=protocol).dump(snapshot)


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(3, 4)
        self.blocks = torch.nn.ModuleList([torch.nn.Conv2d(4, 2, 1), torch.nn.Identity(), torch.nn.Linear(2, 2)])
        self.register_buffer("halfbuf", torch.randn(5).half())
        self.register_buffer("scratch", torch.zeros(2), persistent=False)
        self.register_buffer("viewbuf", self.fc.weight.data[1:3, ::2])  # shares the weight's storage
        self.register_buffer("absent", None)
        self.scale = np.float64(0.5)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_synthetic_snapshot_matches_module_state_dict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      protocol: int) -> None:
    torch.manual_seed(0)
    net = _Net()
    kwargs = {"res": np.int64(64), "filt": [1, 3, 3, 1], "inner": {"beta": np.float32(0.5)}}
    net._init_args, net._init_kwargs = (7,), kwargs
    path = tmp_path / "snap.pkl"
    _write_snapshot(path, {"G_ema": net, "D": None}, monkeypatch, protocol)
    got = read_nvlabs_pickle(path)
    want = net.state_dict()
    assert list(got.state_dict) == list(want) and "scratch" not in got.state_dict
    for k, t in want.items():
        assert got.state_dict[k].dtype == t.dtype and torch.equal(got.state_dict[k], t), k
    assert got.class_name == "_Net" and got.family == "unknown"
    assert got.init_args == (7,)
    assert got.init_kwargs == {"res": 64, "filt": [1, 3, 3, 1], "inner": {"beta": 0.5}}
    _assert_plain(got.init_kwargs)


# --- hostile and broken files ---------------------------------------------------------------------

class _Evil:
    def __init__(self, func: object, args: tuple) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple:
        return self.func, self.args


def _refused(path: Path, global_name: str) -> None:
    with pytest.raises(CheckpointError) as info:
        read_nvlabs_pickle(path)
    msg = str(info.value)
    assert f"`{global_name}`" in msg and "refused" in msg and "nothing in it was run" in msg


def test_os_system_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _Evil(os.system, (f"touch {marker}",))}, protocol=4))
    _refused(path, f"{os.system.__module__}.system")
    # Hand-written stream: protocol 2 header, GLOBAL 'os system', one string argument, REDUCE.
    cmd = f"touch {marker}".encode()
    path.write_bytes(b"\x80\x02cos\nsystem\nX" + len(cmd).to_bytes(4, "little") + cmd + b"\x85R.")
    _refused(path, "os.system")
    assert not marker.exists()


@pytest.mark.parametrize("func, args, name", [
    (eval, ("__import__('os').system('touch MARKER')",), "builtins.eval"),
    (subprocess.Popen, (["touch", "MARKER"],), "subprocess.Popen"),
    (getattr, (1, "real"), "builtins.getattr"),
])
def test_dangerous_globals_are_refused(tmp_path: Path, func: object, args: tuple, name: str) -> None:
    marker = tmp_path / "pwned"
    args = tuple(str(a).replace("MARKER", str(marker)) if isinstance(a, str) else
                 [str(x).replace("MARKER", str(marker)) for x in a] if isinstance(a, list) else a for a in args)
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G": None, "G_ema": _Evil(func, args)}, protocol=3))
    _refused(path, name)
    assert not marker.exists()


def test_hostile_storage_blob_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    blob = pickle.dumps(_Evil(os.system, (f"touch {marker}",)), protocol=2)
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _Evil(torch.storage._load_from_bytes, (blob,))}, protocol=4))
    _refused(path, f"{os.system.__module__}.system")
    assert not marker.exists()


def test_stream_cannot_patch_the_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.nvlabs_pickle as reader
    # BUILD with slot state setattr()s on the object below it: here the EasyDict class and a helper.
    def setattr_op(name: bytes, value_op: bytes) -> bytes:  # (None, {name: value}) BUILD, then POP
        return b"N}X" + len(name).to_bytes(4, "little") + name + value_op + b"s\x86b0"

    attack = (b"\x80\x02cdnnlib.util\nEasyDict\n" + setattr_op(b"__setitem__", b"N")
              + b"ctorch._utils\n_rebuild_tensor_v2\n" + setattr_op(b"__defaults__", b")")
              + b"}X\x05\x00\x00\x00G_emaNs.")
    path = tmp_path / "patch.pkl"
    path.write_bytes(attack)
    with pytest.raises(CheckpointError):  # either refused as corrupt, or read with no G_ema in it
        read_nvlabs_pickle(path)
    assert reader._EasyDict.__setitem__ is dict.__setitem__
    assert reader._rebuild_tensor_v2.__defaults__ == (False, None, None)
    path = tmp_path / "snap.pkl"
    _write_snapshot(path, {"G_ema": torch.nn.Linear(2, 2)}, monkeypatch)
    assert list(read_nvlabs_pickle(path).state_dict) == ["weight", "bias"]


@needs_fixtures
def test_truncated_fixture_is_a_clear_error(tmp_path: Path) -> None:
    data = (FIXTURES / "sg2_128_ada.pkl").read_bytes()
    path = tmp_path / "half.pkl"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt.*download it again"):
        read_nvlabs_pickle(path)


def test_corrupt_storage_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "snap.pkl"
    _write_snapshot(path, {"G_ema": torch.nn.Linear(64, 64)}, monkeypatch)
    data = bytearray(path.read_bytes())
    i = data.index(b"\x19.\x80\x02M\xe9\x03")  # inside the first storage's magic number
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        read_nvlabs_pickle(path)


@pytest.mark.parametrize("content, pattern", [
    (np.random.default_rng(0).bytes(4096), "is not a pickle"),
    (b"\x80\x04" + np.random.default_rng(1).bytes(4096), "truncated or corrupt"),
    (b"", "is not a pickle"),
    (b"PK\x03\x04" + bytes(100), "is not a pickle"),
    (pickle.dumps([1, 2, 3]), "not an NVlabs snapshot dict"),
])
def test_junk_files_are_clear_errors(tmp_path: Path, content: bytes, pattern: str) -> None:
    path = tmp_path / "junk.pkl"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=pattern):
        read_nvlabs_pickle(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        read_nvlabs_pickle(tmp_path / "nope.pkl")
    with pytest.raises(CheckpointError, match="is not a file"):
        read_nvlabs_pickle(tmp_path)


def test_plain_torch_module_at_top_level(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps({"G_ema": net}, protocol=4))
    got = read_nvlabs_pickle(path)
    assert got.class_name == "Sequential" and got.init_kwargs == {} and got.init_args == ()
    assert list(got.state_dict) == list(net.state_dict())
    assert all(torch.equal(got.state_dict[k], v) for k, v in net.state_dict().items())


class _Reduce:
    def __init__(self, func: object, args: tuple, state: object = None) -> None:
        self.func, self.args, self.state = func, args, state

    def __reduce__(self) -> tuple:
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


@pytest.mark.parametrize("name, state", [
    # A structured dtype whose one field lies a megabyte past the end of its 4-byte item: numpy's
    # own __setstate__ takes it, and reading the scalar then reads out of bounds.
    ("V4", (3, "|", None, ("a",), {"a": (np.dtype("f8"), 10**6)}, 4, 1, 16)),
    ("f8", (3, "<", None, ("a",), {"a": (np.dtype("f8"), 10**6)}, 8, 1, 16)),
    ("f8", (3, "<", (np.dtype("f8"), (10**6,)), None, None, 8, 1, 0)),  # a subarray
    ("f8", (3, "<", None, None, None, 10**6, 1, 0)),  # an item size that is not the type's
    ("O", (3, "|", None, None, None, -1, -1, 63)),  # objects
])
def test_crafted_numpy_dtype_and_scalar_states_are_refused(tmp_path: Path, name: str, state: tuple) -> None:
    from numpy._core import multiarray

    dtype = _Reduce(np.dtype, (name, False, True), state)
    scalar = _Reduce(multiarray.scalar, (dtype, b"\x00" * 8))
    path = tmp_path / "dtype.pkl"
    path.write_bytes(pickle.dumps({"G_ema": {"x": scalar}}, protocol=2))
    # Refused while reading (a readable stream gets "has no network 'G_ema'" instead).
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        read_nvlabs_pickle(path)


def test_numpy_arrays_and_scalars_are_rebuilt_from_checked_states(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    net = torch.nn.Linear(2, 2)
    c_order = np.arange(6, dtype=np.int32).reshape(2, 3)
    kwargs = {"c": c_order, "f": np.asfortranarray(c_order.astype(np.float64)),
              "be": np.arange(3, dtype=">i4"), "s": np.float16(1.5), "b": np.bool_(True)}
    net._init_args, net._init_kwargs = (), kwargs
    path = tmp_path / "snap.pkl"
    _write_snapshot(path, {"G_ema": net}, monkeypatch, 2)
    got = read_nvlabs_pickle(path).init_kwargs
    assert got == {"c": [[0, 1, 2], [3, 4, 5]], "f": [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], "be": [0, 1, 2],
                   "s": 1.5, "b": True}
    # An array whose data is shorter than its shape says is refused, not read past its end.
    state = (1, (1000,), _Reduce(np.dtype, ("f8", False, True), (3, "<", None, None, None, -1, -1, 0)), False, b"\0" * 8)
    from numpy._core import multiarray

    array = _Reduce(multiarray._reconstruct, (np.ndarray, (0,), b"b"), state)
    path.write_bytes(pickle.dumps({"G_ema": {"x": array}}, protocol=2))
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        read_nvlabs_pickle(path)
