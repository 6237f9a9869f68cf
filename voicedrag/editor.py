"""One edit end to end, for every front end and every model.

A `ModelKit` bundles a generator with what words need on it: the keypoint
detector that names its parts, the rules that turn words into moves, and the
vocabulary its speech recogniser is primed with. The model's JSON config names
its rules and detector (`"kit": {"rules": "face", "detector": "faceworld"}`). A
model without a detector can be given a keypoint template (`voicedrag keypoints
teach`; the config's `"template"`, or `--template`): its named points are then
found on each latent by the generator's own features. An official checkpoint
names neither, so only explicit points work until a template is given, which
`ModelKit.limits` says.

An `Editor` owns one edit: parse, keypoints (cached per image by the entry's
stable id), plan (with the planner's own sentences and warnings), drag (the
engine's steps, behind one cancel handle). `voicedrag edit`, `voicedrag demo`
and the TUI's workers call it; nothing else assembles the pipeline.

    kit = load_kit("embedded")
    editor = Editor(kit)
    planned = editor.plan(editor.parse("open the mouth"), image, entry_id=0)
    for step in editor.drag(ws, planned.pairs, planned.mask, max_steps=300): ...
"""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import UserError
from engine.types import DEFAULT_PSI
from voicedrag.errors import VoicedragError
from voicedrag.planning.pipeline import (
    CommandError,
    PlannedEdit,
    needs_keypoints,
    plan_command,
)

if TYPE_CHECKING:
    import torch

    from engine.drag import DragResult, DragSession, StepResult
    from engine.stylegan2 import Generator
    from engine.types import DragPair, Point
    from keypoints.detector import Detector
    from keypoints.template import KeypointTemplate
    from voicedrag.language.commands import CommandParser, ParseResult
    from voicedrag.planning.rules import Rules
    from voicedrag.speech.grammar import GrammarChoice
    from voicedrag.speech.transcribe import Transcriber, Transcript

# Detectors a model's config may name. "faceworld" is the shipped heatmap network of the
# procedural face world (the embedded model's faces); "face" finds the landmarks of real faces
# (photographs, FFHQ), `keypoints.facemesh`.
DETECTORS: tuple[str, ...] = ("faceworld", "face")

NO_DETECTOR = ("this model names no keypoint detector, so words such as 'open the mouth' cannot be placed on it; "
               "use explicit points such as 'drag 30,40 to 50,60'.")


@dataclass(frozen=True)
class KitSpec:
    """What a model's config says about words on it (the `kit` entry of a voicedrag model's JSON)."""

    rules: str | None = None  # a shipped rules name ("face") or a .toml path beside the model
    detector: str | None = None  # one of DETECTORS
    template: str | None = None  # a keypoint template JSON beside the model (used when there is no detector)

    @classmethod
    def from_model_file(cls, path: Path) -> KitSpec:
        """The kit a model file names; official pickles and configs without a `kit` name none."""
        config = path.with_suffix(".json")
        if path.suffix != ".safetensors" or not config.is_file():
            return cls()
        try:
            kit = json.loads(config.read_text()).get("kit") or {}
        except (ValueError, AttributeError):
            return cls()  # the generator loader already refused a broken config
        if not isinstance(kit, dict):
            raise VoicedragError(f"'kit' in {config.name} must be an object such as "
                                 '{"rules": "face", "detector": "faceworld"}; fix the model config.')
        detector = kit.get("detector")
        if detector is not None and detector not in DETECTORS:
            raise VoicedragError(f"{config.name} names the keypoint detector {detector!r}, which voicedrag does not "
                                 f"have; use one of {', '.join(DETECTORS)} or remove it.")
        rules = kit.get("rules")
        if rules is not None and not isinstance(rules, str):
            raise VoicedragError(f"'rules' in {config.name} must be a rules name such as \"face\" or a .toml "
                                 "file beside the model; fix the model config.")
        if rules is not None and rules.endswith(".toml") and not Path(rules).is_absolute():
            rules = str(path.parent / rules)
        # Named rules that do not exist are refused with the model, not at the first typed command.
        from voicedrag.planning.rules import rules_file, shipped_rules

        if rules is not None and rules_file(rules) is None:
            raise VoicedragError(f"{config.name} names the rules {rules!r}, which voicedrag cannot find; "
                                 f"use one of {', '.join(shipped_rules())} or a .toml file beside the model.")
        template = kit.get("template")
        if template is not None:
            if not isinstance(template, str):
                raise VoicedragError(f"'template' in {config.name} must be the name of a template JSON file; "
                                     "fix the model config.")
            template = str(path.parent / template) if not Path(template).is_absolute() else template
        return cls(rules=rules, detector=detector, template=template)


@dataclass
class ModelKit:
    """A generator with its detector, rules and vocabulary."""

    name: str  # as the user named it: "embedded" or the file given
    generator: Generator
    spec: KitSpec = field(default_factory=KitSpec)
    _rules: Rules | None = field(default=None, repr=False)
    _detector: Detector | None = field(default=None, repr=False)
    _detector_error: str | None = field(default=None, repr=False)
    template: KeypointTemplate | None = None  # found by features where there is no detector
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def title(self) -> str:
        return "embedded face model" if self.name == "embedded" else self.name.rsplit("/", 1)[-1]

    @property
    def size(self) -> tuple[int, int]:
        """(W, H) of the generator's images."""
        return (self.generator.img_resolution, self.generator.img_resolution)

    @property
    def has_detector(self) -> bool:
        return self.spec.detector is not None

    @property
    def has_keypoints(self) -> bool:
        """Whether words can name parts: a detector, or a keypoint template."""
        return self.has_detector or self.template is not None

    @property
    def limits(self) -> str | None:
        """What words cannot do on this model, in one sentence; None when they can do everything."""
        return None if self.has_keypoints else NO_DETECTOR

    @property
    def rules(self) -> Rules:
        """The model's rules; a model that names none speaks the face rules' language (explicit points
        are part of it), and without a detector no part can be placed anyway."""
        from voicedrag.planning.rules import default_rules, load_rules

        with self._lock:
            if self._rules is None:
                self._rules = load_rules(self.spec.rules) if self.spec.rules else default_rules()
            return self._rules

    def detector(self) -> Detector | None:
        """The model's keypoint detector, loaded once; None (see `detector_error`) if it has none."""
        with self._lock:
            if self._detector is None and self._detector_error is None:
                self._detector, self._detector_error = _load_detector(self.spec.detector)
            return self._detector

    @property
    def detector_error(self) -> str | None:
        """Why `detector()` is None, once it has been asked for."""
        return self._detector_error

    def parser(self, paraphrase: bool = True) -> CommandParser:
        """A command parser for the model's rules (the shared default one for the face rules)."""
        from voicedrag.language.commands import CommandParser, default_parser

        if self.spec.rules is None and paraphrase:
            return default_parser()
        return CommandParser(self.rules, use_embeddings=paraphrase)

    def vocabulary(self) -> list[str]:
        """The words a speech recogniser is primed with for this model."""
        from voicedrag.language.commands import vocabulary

        return vocabulary(self.rules)

    def transcriber(self) -> Transcriber:
        """Whisper primed with this model's vocabulary (the same for the CLI and the TUI)."""
        from voicedrag.speech.transcribe import Transcriber

        return Transcriber(prompt_words=self.vocabulary())


def _load_detector(name: str | None) -> tuple[Detector | None, str | None]:
    if name is None:
        return None, NO_DETECTOR
    try:
        if name == "face":
            from keypoints.facemesh import FaceMeshDetector

            return FaceMeshDetector.load(), None
        from keypoints.detector import EmbeddedDetector

        return EmbeddedDetector.load(), None
    except ModuleNotFoundError as err:
        return None, f"the keypoint detector needs {err.name}, which is not installed; use explicit drags meanwhile."
    except UserError as err:
        return None, f"{str(err).rstrip('.')}; meanwhile use explicit drags such as 'drag 30,40 to 50,60'."


def load_kit(model: str | Path, device: str | None = None, template: str | Path | None = None,
             download: bool = False) -> ModelKit:
    """The kit of a model file, of 'embedded' (the shipped face model) or of a registry name
    (`voicedrag models`; downloaded first only when `download`); `template` (or the one the
    model's config names) finds keypoints where the model has no detector."""
    from voicedrag.models import load_model_file, resolve_model_path
    from voicedrag.registry import default_registry, model_path

    registry = default_registry()
    path = model_path(model, download=download, registry=registry)
    generator = load_model_file(path, device=device)
    path = resolve_model_path(path)
    spec = KitSpec.from_model_file(path)
    entry = registry.get(str(model))
    if entry is not None and spec.rules is None and entry.rules is not None:
        spec = replace(spec, rules=entry.rules)
    if entry is not None and spec.detector is None and entry.detector is not None:
        spec = replace(spec, detector=entry.detector)
    kit = ModelKit(name=str(model), generator=generator, spec=spec)
    chosen = template if template is not None else spec.template
    if chosen is not None:
        kit.template = load_template_for(generator, Path(chosen))
        if spec.rules is None and kit.template.rules:
            # The template's names are those of its rules ("animal"); the model names none of its own.
            kit.spec = replace(spec, rules=kit.template.rules)
    return kit


def load_template_for(generator: Generator, path: Path) -> KeypointTemplate:
    """A keypoint template, checked against the generator it will run on."""
    from keypoints.template import KeypointTemplate, check_model

    template = KeypointTemplate.load(path)
    check_model(template, generator)
    return template


def kit_for_generator(generator: Generator, name: str = "model", spec: KitSpec | None = None) -> ModelKit:
    """A kit around a generator already in memory (tests, benchmarks)."""
    return ModelKit(name=name, generator=generator, spec=spec or KitSpec())


@dataclass
class Keypoints:
    points: dict[str, Point]
    notice: str | None = None  # why none were found (no detector, a broken one), else None


class Editor:
    """Parse, keypoints, plan and drag on one model kit. Thread-safe for one edit at a time."""

    def __init__(self, kit: ModelKit, parser: CommandParser | None = None, paraphrase: bool = True) -> None:
        self.kit = kit
        self.paraphrase = paraphrase
        self._parser = parser
        self._spoken_forms: dict[str, str] | None = None  # the grammar's commands as they may be said
        self._cache: dict[int, dict[str, Point]] = {}
        self._cache_lock = threading.Lock()
        self._cancel = threading.Event()
        self._session: DragSession | None = None
        self._last: DragSession | None = None

    # ------------------------------------------------------------ words

    @property
    def parser(self) -> CommandParser:
        if self._parser is None:
            self._parser = self.kit.parser(self.paraphrase)
        return self._parser

    def parse(self, text: str) -> ParseResult:
        return self.parser.parse(text)

    def hear(self, transcriber: Transcriber, samples: Any) -> tuple[Transcript, GrammarChoice]:
        """Spoken audio to the text to parse: Whisper's free transcript, or, where this model's
        parser cannot read it as heard, the command of its grammar the audio makes likeliest."""
        from voicedrag.speech.grammar import command_phrases, parser_reading

        if self._spoken_forms is None:
            self._spoken_forms = command_phrases(self.parser)
        return transcriber.transcribe_command(samples, self._spoken_forms, parser_reading(self.parser))

    # ------------------------------------------------------------ images

    def render(self, ws: torch.Tensor | np.ndarray) -> np.ndarray:
        """[H, W, 3] uint8 image of a latent (a tensor, or the numpy ws a session keeps)."""
        return self.kit.generator.render(ws)

    def seed(self, seed: int, psi: float = DEFAULT_PSI) -> tuple[np.ndarray, np.ndarray]:
        """(ws [1, num_ws, w_dim] float32, image) of a seed."""
        ws = self.kit.generator.ws_from_seed(seed, psi)
        return ws.detach().cpu().numpy().astype(np.float32), self.render(ws)

    # ------------------------------------------------------------ keypoints

    def cached_keypoints(self, entry_id: int) -> dict[str, Point] | None:
        with self._cache_lock:
            found = self._cache.get(entry_id)
            return None if found is None else dict(found)

    def keypoints(self, entry_id: int | None, image: np.ndarray,
                  ws: torch.Tensor | np.ndarray | None = None) -> Keypoints:
        """The named keypoints of `image` (drawn from the latent `ws`, which a template needs); with the id
        of its history entry, found once per entry."""
        cached = None if entry_id is None else self.cached_keypoints(entry_id)
        if cached is not None:
            return Keypoints(cached)
        notice = None
        if not self.kit.has_detector and self.kit.template is not None:
            if ws is None:
                return Keypoints({}, "keypoints from a template need the image's latent; "
                                     "use explicit drags such as 'drag 30,40 to 50,60'.")
            points, notice = self._template_points(ws)
        else:
            detector = self.kit.detector()
            if detector is None:
                return Keypoints({}, self.kit.detector_error)
            try:
                points = dict(detector.detect(image))
            except UserError as err:  # no face in this picture: the user is told, nothing is cached
                return Keypoints({}, str(err))
        if entry_id is not None:
            with self._cache_lock:
                self._cache[entry_id] = points
        return Keypoints(dict(points), notice)

    def _template_points(self, ws: torch.Tensor | np.ndarray) -> tuple[dict[str, Point], str | None]:
        import torch

        from keypoints.template import find

        assert self.kit.template is not None
        w = torch.from_numpy(np.ascontiguousarray(ws)) if isinstance(ws, np.ndarray) else ws
        found = find(self.kit.template, self.kit.generator, w)
        notice = " ".join(found.left_out.values()) or None
        return found.points, notice

    def forget(self, keep: set[int] | None = None) -> None:
        """Drop cached keypoints, except those of the entries in `keep` (history that still exists)."""
        with self._cache_lock:
            self._cache = {k: v for k, v in self._cache.items() if keep is not None and k in keep}

    # ------------------------------------------------------------ plan

    def plan(self, parse: ParseResult, image: np.ndarray, entry_id: int | None = None,
             ws: torch.Tensor | np.ndarray | None = None) -> PlannedEdit:
        """Drag pairs (and the rules' mask) for a parsed command on `image` (of latent `ws`, which a
        keypoint template needs); CommandError says why not."""
        keypoints: dict[str, Point] = {}
        if not parse.error and parse.control is None and needs_keypoints(parse.edits):
            found = self.keypoints(entry_id, image, ws)
            if not found.points and found.notice:
                # Without a detector the planner's "no such keypoint" is a symptom; say the cause.
                raise CommandError(found.notice)
            keypoints = found.points
        return plan_command(parse, image, None, rules=self.kit.rules, keypoints=keypoints)

    # ------------------------------------------------------------ drag

    def begin(self) -> None:
        """A new edit starts: an earlier cancel no longer applies."""
        self._cancel.clear()

    def cancel(self) -> None:
        """Stop the edit: before its drag starts, or the running drag after its current step."""
        self._cancel.set()
        session = self._session
        if session is not None:
            session.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def drag(self, ws: torch.Tensor | np.ndarray, pairs: list[DragPair], mask: np.ndarray | None, max_steps: int,
             preview_every: int = 0, preview_seconds: float | None = None, lr: float | None = None,
             space: str | None = None) -> Iterator[StepResult]:
        """Start a drag with the model's own settings (overridden by the arguments that are not None)
        and return its steps; `result()` then holds the outcome. Raises ValueError at once for points
        outside the image."""
        import torch

        from engine.drag import DragConfig, DragSession

        G = self.kit.generator
        config = DragConfig.for_generator(G, max_steps=max_steps, lr=lr, space=space, preview_every=preview_every,
                                          preview_seconds=preview_seconds)
        w = torch.from_numpy(np.ascontiguousarray(ws)).to(G.device) if isinstance(ws, np.ndarray) else ws
        session = DragSession(G, w, pairs, mask=mask, config=config)
        self._session = self._last = session
        if self.cancelled:
            session.cancel()
        return self._steps(session)

    def _steps(self, session: DragSession) -> Iterator[StepResult]:
        try:
            yield from session.steps()
        finally:
            self._session = None

    def result(self) -> DragResult:
        """The outcome of the last drag."""
        if self._last is None:
            raise RuntimeError("no drag has run yet")
        return self._last.result()
