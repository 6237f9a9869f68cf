"""A generator with what words need on it: its keypoint detector, rules and vocabulary.

A `ModelKit` bundles a generator with the keypoint detector that names its parts, the rules that
turn words into moves, and the vocabulary its speech recogniser is primed with. The model's JSON
config names its rules and detector (`"kit": {"rules": "face", "detector": "faceworld"}`). A model
without a detector can be given a keypoint template (`voicedrag keypoints teach`; the config's
`"template"`, or `--template`): its named points are then found on each latent by the generator's
own features. An official checkpoint names neither, so only explicit points work until a template
is given, which `ModelKit.limits` says.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import UserError
from voicedrag.errors import VoicedragError
from voicedrag.models import EMBEDDED

if TYPE_CHECKING:
    from engine.stylegan2 import Generator
    from keypoints.detector import Detector
    from keypoints.template import KeypointTemplate
    from voicedrag.language.commands import CommandParser
    from voicedrag.planning.rules import Rules
    from voicedrag.speech.transcribe import Transcriber

# Detectors a model's config may name. "faceworld" is the shipped heatmap network of the
# procedural face world (the embedded model's faces); "face" finds the landmarks of real faces
# (photographs, FFHQ), `keypoints.facemesh`.
DETECTORS: tuple[str, ...] = ("faceworld", "face")

NO_DETECTOR = (
    "this model names no keypoint detector, so words such as 'open the mouth' cannot be placed on it; "
    "use explicit points such as 'drag 30,40 to 50,60'."
)


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
            raise VoicedragError(
                f"'kit' in {config.name} must be an object such as "
                '{"rules": "face", "detector": "faceworld"}; fix the model config.'
            )
        detector = kit.get("detector")
        if detector is not None and detector not in DETECTORS:
            raise VoicedragError(
                f"{config.name} names the keypoint detector {detector!r}, which voicedrag does not "
                f"have; use one of {', '.join(DETECTORS)} or remove it."
            )
        rules = kit.get("rules")
        if rules is not None and not isinstance(rules, str):
            raise VoicedragError(
                f"'rules' in {config.name} must be a rules name such as \"face\" or a .toml "
                "file beside the model; fix the model config."
            )
        if rules is not None and rules.endswith(".toml") and not Path(rules).is_absolute():
            rules = str(path.parent / rules)
        # Named rules that do not exist are refused with the model, not at the first typed command.
        from voicedrag.planning.rules import rules_file, shipped_rules

        if rules is not None and rules_file(rules) is None:
            raise VoicedragError(
                f"{config.name} names the rules {rules!r}, which voicedrag cannot find; "
                f"use one of {', '.join(shipped_rules())} or a .toml file beside the model."
            )
        template = kit.get("template")
        if template is not None:
            if not isinstance(template, str):
                raise VoicedragError(
                    f"'template' in {config.name} must be the name of a template JSON file; fix the model config."
                )
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
        return "embedded face model" if self.name == EMBEDDED else self.name.rsplit("/", 1)[-1]

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


def load_kit(
    model: str | Path, device: str | None = None, template: str | Path | None = None, download: bool = False
) -> ModelKit:
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
