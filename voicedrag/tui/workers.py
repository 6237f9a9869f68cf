"""The heavy work behind the TUI, as plain functions run in Textual thread workers.

Each function reports through `post` (a thread-safe message poster) and
checks `cancelled()` between stages, so the UI thread never waits on torch.
torch, the engine, the command parser and the speech model are imported
here, inside the functions, so that the app is on screen before any of them
has loaded. Nothing here raises: every failure becomes a message with one
sentence for the user.
"""
from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from textual.message import Message

from voicedrag.tui.messages import (
    CommandFailed, CommandParsed, ControlRequested, DragFailed, DragFinished, DragPlanned, DragStep,
    KeypointsFound, ModelFailed, ModelLoaded, Notice, PlannedDrag, SeedReady, Transcribed, VoiceFailed,
    VoiceLevel, VoiceState,
)

Post = Callable[[Message], object]
Cancelled = Callable[[], bool]
XY = tuple[float, float]
Rect = tuple[int, int, int, int]

NO_DETECTOR = ("no keypoint detector is installed, so named edits such as 'open the mouth' cannot be planned; "
               "use an explicit drag such as 'drag 30,40 to 50,60' or place points on the image.")


@dataclass
class Backend:
    """Loaded models, shared by the workers. Each field is written by one worker kind at a time."""

    generator: Any = None
    parser: Any = None
    transcriber: Any = None
    recorder: Any = None  # the MicrophoneRecorder while recording
    drag: Any = None  # the running engine.DragSession, for Esc
    psi: float = 0.7
    threads: int | None = None
    detector_missing: str | None = None  # why keypoints cannot be found, once a search has failed
    paraphrase: bool = True  # let the parser fall back on its sentence model for free phrasings

    def get_parser(self) -> Any:
        if self.parser is None:
            from voicedrag.commands import CommandParser, default_parser

            self.parser = default_parser() if self.paraphrase else CommandParser(use_embeddings=False)
        return self.parser


@dataclass
class DragRequest:
    label: str
    ws: np.ndarray  # [1, num_ws, w_dim] float32: the latent the drag starts from
    image: np.ndarray
    max_steps: int
    preview_seconds: float
    mask: list[Rect] | None = None  # region that may move; None = the rules' (or the whole image)
    pairs: list[tuple[XY, XY]] = field(default_factory=list)  # hand-placed pairs; empty = parse `label`
    keypoints: dict[str, Any] | None = None  # cached for this image, or None to detect
    entry_id: int = 0


def _describe(err: BaseException, doing: str) -> str:
    from engine.errors import VoicedragError

    if isinstance(err, VoicedragError):
        return str(err)
    last = traceback.extract_tb(err.__traceback__)[-1:] if err.__traceback__ else []
    where = f" at {last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno}" if last else ""
    return f"{doing} failed ({type(err).__name__}: {err}{where}); this is a bug, please report it."


def render(generator: Any, ws: np.ndarray) -> np.ndarray:
    import torch

    from engine.drag import to_uint8

    with torch.no_grad():
        w = torch.from_numpy(np.ascontiguousarray(ws)).to(generator.device)
        out = generator.synthesis(w, noise_mode="const")
    return to_uint8(out.image)


def seed_latent(generator: Any, seed: int, psi: float) -> tuple[np.ndarray, np.ndarray]:
    ws = generator.ws_from_seed(seed, psi).detach().cpu().numpy().astype(np.float32)
    return ws, render(generator, ws)


def load_model(backend: Backend, model: str, device: str | None, seed: int, post: Post) -> None:
    started = time.perf_counter()
    try:
        import torch

        # One core is left to the UI thread (and the rest of the machine): with every core
        # busy, torch's thread pool spins and the drag slows down many times over.
        torch.set_num_threads(backend.threads or max(1, (os.cpu_count() or 2) - 1))
        from engine.loading import load_generator

        G = load_generator(model, device)
        backend.generator = G
        ws, image = seed_latent(G, seed, backend.psi)
    except Exception as err:  # noqa: BLE001 - any failure becomes one sentence on screen
        post(ModelFailed(_describe(err, "loading the model")))
        return
    name = "embedded face model" if model == "embedded" else model.rsplit("/", 1)[-1]
    post(ModelLoaded(G, seed, ws, image, name, str(G.device), time.perf_counter() - started))
    warm_up()


def warm_up() -> None:
    """Pay torch's one-time costs now rather than on the first command: the first optimizer
    built in a process imports several seconds' worth of torch modules."""
    try:
        import torch

        torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1e-3).step()
        import voicedrag.rules  # noqa: F401 - the planner, needed by the first command
    except Exception:  # noqa: BLE001 - a failed warm-up only costs time later
        pass


def new_seed(backend: Backend, seed: int, post: Post) -> None:
    try:
        ws, image = seed_latent(backend.generator, seed, backend.psi)
    except Exception as err:  # noqa: BLE001
        post(Notice(_describe(err, "rendering the seed"), "error"))
        return
    post(SeedReady(seed, ws, image))


def load_parser(backend: Backend, preload_paraphrase: bool, post: Post) -> None:
    """Build the command parser (and, optionally, its sentence model) before the first command needs it."""
    try:
        parser = backend.get_parser()
        if preload_paraphrase and backend.paraphrase and not parser.load() and parser.embedding_error:
            post(Notice(f"paraphrases are off: {parser.embedding_error}; exact commands still work.",
                        "warning"))
    except Exception as err:  # noqa: BLE001
        post(Notice(_describe(err, "loading the command parser"), "error"))


_DETECTOR: Any = None
_DETECTOR_LOCK = threading.Lock()


def _detector() -> Any:
    """The embedded keypoint detector, loaded once (a VoicedragError says what is missing)."""
    global _DETECTOR
    with _DETECTOR_LOCK:
        if _DETECTOR is None:
            from keypoints.detector import EmbeddedDetector

            _DETECTOR = EmbeddedDetector.load()
        return _DETECTOR


def find_keypoints(image: np.ndarray) -> tuple[dict[str, Any], str | None]:
    """{name: Point} from the embedded detector, or ({}, why not)."""
    from engine.errors import VoicedragError

    try:
        detector = _detector()
    except ModuleNotFoundError as err:
        if err.name in ("keypoints.detector", "keypoints"):
            return {}, NO_DETECTOR
        return {}, f"the keypoint detector needs {err.name}, which is not installed; use explicit drags meanwhile."
    except ImportError as err:
        return {}, f"the keypoint detector could not be loaded ({err}); use explicit drags meanwhile."
    except VoicedragError as err:
        return {}, f"{str(err).rstrip('.')}; meanwhile use explicit drags such as 'drag 30,40 to 50,60'."
    try:
        return dict(detector.detect(image)), None
    except Exception as err:  # noqa: BLE001
        return {}, _describe(err, "finding keypoints")


def detect_keypoints(entry_id: int, image: np.ndarray, post: Post) -> None:
    kp, notice = find_keypoints(image)
    post(KeypointsFound(entry_id, kp, notice))


def run_command(backend: Backend, req: DragRequest, post: Post, cancelled: Cancelled,
                on_session: Callable[[Any], None]) -> None:
    """Parse, find keypoints, plan and drag; or drag hand-placed pairs when `req.pairs` is set."""
    try:
        _run_command(backend, req, post, cancelled, on_session)
    except Exception as err:  # noqa: BLE001 - a worker must not take the app down
        post(DragFailed(_describe(err, "the edit")))
    finally:
        backend.drag = None


def _run_command(backend: Backend, req: DragRequest, post: Post, cancelled: Cancelled,
                 on_session: Callable[[Any], None]) -> None:
    from engine.types import DragPair, Point

    edits_json: list[dict[str, object]] = []
    warnings: list[str] = []
    names: list[str] = []
    mask = req.mask
    if req.pairs:
        pairs = [DragPair(Point(*a), Point(*b)) for a, b in req.pairs]
        names = [f"point {i + 1}" for i in range(len(pairs))]
    else:
        result = backend.get_parser().parse(req.label)
        post(CommandParsed(req.label, result))
        if result.control:
            post(ControlRequested(result.control, req.label))
            return
        if result.error:
            post(CommandFailed(req.label, result.error, result.suggestions))
            return
        if cancelled():
            post(CommandFailed(req.label, "stopped before the drag began."))
            return
        edits_json = [e.to_json() for e in result.edits]
        warnings.extend(result.warnings)
        from voicedrag.pipeline import CommandError, NothingToMoveError, needs_keypoints, plan_command

        # Found here rather than by plan_command's detector: the app caches them per image and shows
        # them, and a missing detector is a notice, not a failure (explicit drags still work).
        keypoints = req.keypoints
        if keypoints is None and needs_keypoints(result.edits):
            keypoints, notice = find_keypoints(req.image)
            backend.detector_missing = notice
            post(KeypointsFound(req.entry_id, keypoints, notice))
        try:
            planned = plan_command(result, req.image, None, keypoints=keypoints or {})
        except NothingToMoveError:
            post(CommandFailed(req.label, "nothing needs to move for this command; try a larger amount, "
                               "such as 'open the mouth wide'."))
            return
        except CommandError as err:
            # Without a detector the planner's "no keypoint found" is a symptom; say the cause.
            missing = backend.detector_missing if not keypoints else None
            post(CommandFailed(req.label, missing or str(err)))
            return
        warnings.extend(planned.plan.warnings)
        pairs, names = planned.pairs, list(planned.plan.names)
        if mask is None:
            mask = planned.plan.mask
    post(DragPlanned(PlannedDrag(
        label=req.label, handles=[(p.handle.x, p.handle.y) for p in pairs],
        targets=[(p.target.x, p.target.y) for p in pairs], names=names, mask=mask, warnings=warnings,
        edits=edits_json,
    )))
    drag(backend, req, pairs, mask, edits_json, warnings, post, cancelled, on_session)


def drag(backend: Backend, req: DragRequest, pairs: list[Any], mask: list[Rect] | None,
         edits_json: list[dict[str, object]], warnings: list[str], post: Post, cancelled: Cancelled,
         on_session: Callable[[Any], None]) -> None:
    import torch

    from engine.drag import DragConfig, DragSession
    from voicedrag.rules import mask_array
    from voicedrag.session import Entry

    G = backend.generator
    h, w = req.image.shape[:2]
    config = DragConfig.for_generator(G, max_steps=req.max_steps, preview_every=0, preview_seconds=req.preview_seconds)
    ws = torch.from_numpy(np.ascontiguousarray(req.ws)).to(G.device)
    try:
        session = DragSession(G, ws, pairs, mask=mask_array(mask, (w, h)), config=config)
    except ValueError as err:
        post(DragFailed(f"{err}; place the points inside the image."))
        return
    backend.drag = session
    on_session(session)
    started = time.perf_counter()
    for result in session.steps():
        if cancelled():
            session.cancel()
        done = result.step + 1
        rate = done / max(time.perf_counter() - started, 1e-9)
        post(DragStep(result.step, req.max_steps, [(p.x, p.y) for p in result.points], result.mean_distance,
                      rate, result.image))
    final = session.result()
    entry = Entry(
        label=req.label, kind="drag", ws=final.ws.cpu().numpy().astype(np.float32), image=final.image,
        pairs=list(pairs), final_points=final.points, mask=mask, steps=final.steps, converged=final.converged,
        cancelled=final.cancelled, mean_distance=final.mean_distance, seconds=final.seconds,
        frames=final.frames, edits=edits_json, warnings=warnings,
    )
    post(DragFinished(entry))


def voice(backend: Backend, post: Post, cancelled: Cancelled) -> None:
    """Record one command from the microphone, transcribe it and post the text."""
    try:
        _voice(backend, post, cancelled)
    except Exception as err:  # noqa: BLE001
        post(VoiceFailed(_describe(err, "listening")))
    finally:
        backend.recorder = None
        post(VoiceState("idle"))


def _voice(backend: Backend, post: Post, cancelled: Cancelled) -> None:
    from voicedrag.audio import MicrophoneRecorder, NoMicrophoneError, microphone_status

    ok, message = microphone_status()
    if not ok:
        post(VoiceFailed(message))
        return
    if backend.transcriber is None:
        post(VoiceState("loading"))
        from voicedrag.speech import Transcriber

        backend.transcriber = Transcriber()
    if cancelled():
        return
    recorder = MicrophoneRecorder(on_level=lambda level, _db: post(VoiceLevel(level)))
    try:
        recorder.start()
    except NoMicrophoneError as err:
        post(VoiceFailed(str(err)))
        return
    backend.recorder = recorder
    post(VoiceState("recording"))
    recording = recorder.wait()
    backend.recorder = None
    if cancelled():
        return
    if not recording.speech:
        post(VoiceFailed("no speech was heard; speak after pressing the key, or type the command."))
        return
    post(VoiceState("transcribing"))
    transcript = backend.transcriber.transcribe(recording.samples)
    if not transcript.text.strip():
        post(VoiceFailed("nothing could be understood; speak closer to the microphone or type the command."))
        return
    post(Transcribed(transcript.text.strip(), transcript.elapsed))
