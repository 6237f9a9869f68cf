"""The heavy work behind the TUI, as plain functions run in Textual thread workers.

Every edit goes through the model kit's `voicedrag.editor.Editor`, as `voicedrag edit` does, so
the TUI plans the same pairs and says the same sentences. Each function reports through `post` (a
thread-safe message poster); the editor's one cancel handle (`Editor.cancel`, Esc) stops an edit
before its drag or during it. torch, the engine, the command parser and the speech model are
imported inside the functions, so that the app is on screen before any of them has loaded.
Nothing here raises: every failure becomes a message with one sentence for the user.

Everything that runs torch runs on one long-lived thread (`on_torch_thread`), whichever Textual
worker asked for it. Textual's thread workers come from a pool of several threads, and each
thread that starts a parallel region gets a thread team of its own from OpenMP; once more
threads are managed than there are cores, libgomp stops spinning between regions and every small
op pays a sleep and a wake-up (on 2 cores a drag ran at half the speed of `voicedrag edit`).
"""
from __future__ import annotations

import functools
import queue
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from textual.message import Message

from engine.types import DEFAULT_PSI
from voicedrag.tui.messages import (
    CommandFailed,
    CommandParsed,
    ControlRequested,
    DragFailed,
    DragFinished,
    DragPlanned,
    DragStep,
    KeypointsFound,
    ModelFailed,
    ModelLoaded,
    Notice,
    PlannedDrag,
    PointTaught,
    SeedReady,
    Transcribed,
    VoiceFailed,
    VoiceLevel,
    VoiceState,
)

if TYPE_CHECKING:
    from voicedrag.editor import Editor

Post = Callable[[Message], object]
Cancelled = Callable[[], bool]
XY = tuple[float, float]
Rect = tuple[int, int, int, int]
T = TypeVar("T")


class TorchThread:
    """One daemon thread that runs the calls given to it, in order; the caller waits for each.

    A daemon, so that quitting during a drag does not wait for it (the editor's cancel handle
    stops a drag; a process that exits needs no clean-up from it)."""

    def __init__(self, name: str = "voicedrag-torch") -> None:
        self.name = name
        self._calls: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def call(self, fn: Callable[[], T]) -> T:
        if threading.current_thread() is self._thread:  # a call from a call: run it in place
            return fn()
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
                self._thread.start()
        future: Future[T] = Future()
        self._calls.put((future, fn))
        return future.result()

    def _serve(self) -> None:
        while True:
            future, fn = self._calls.get()
            try:
                future.set_result(fn())
            except BaseException as err:  # noqa: BLE001 - handed to the caller, which re-raises it
                future.set_exception(err)


TORCH = TorchThread()


def on_torch_thread(fn: Callable[..., T]) -> Callable[..., T]:
    """Run `fn` on the TUI's one torch thread (TORCH); the calling worker thread waits for it."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> T:
        return TORCH.call(functools.partial(fn, *args, **kwargs))

    return run


@dataclass
class Backend:
    """The loaded model kit's editor and the speech models, shared by the workers."""

    editor: Editor | None = None
    transcriber: Any = None
    recorder: Any = None  # the MicrophoneRecorder while recording
    psi: float = DEFAULT_PSI
    threads: int | None = None
    paraphrase: bool = True  # let the parser fall back on its sentence model for free phrasings

    @property
    def generator(self) -> Any:
        return None if self.editor is None else self.editor.kit.generator


@dataclass
class DragRequest:
    label: str
    ws: np.ndarray  # [1, num_ws, w_dim] float32: the latent the drag starts from
    image: np.ndarray
    max_steps: int
    preview_seconds: float
    mask: list[Rect] | None = None  # region that may move; None = the rules' (or the whole image)
    pairs: list[tuple[XY, XY]] = field(default_factory=list)  # hand-placed pairs; empty = parse `label`
    entry_id: int = 0
    report_seconds: float = 0.1  # steps without a new frame are reported at most this often


def _describe(err: BaseException, doing: str) -> str:
    from engine.errors import UserError

    if isinstance(err, UserError):
        return str(err)
    last = traceback.extract_tb(err.__traceback__)[-1:] if err.__traceback__ else []
    where = f" at {last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno}" if last else ""
    return f"{doing} failed ({type(err).__name__}: {err}{where}); this is a bug, please report it."


@on_torch_thread
def load_model(backend: Backend, model: str, device: str | None, seed: int, post: Post,
               template: str | None = None) -> None:
    started = time.perf_counter()
    try:
        import torch

        # The TUI sets torch's thread count once, here, when asked to; library code never changes
        # it. By default torch's own choice, as in `voicedrag edit`: with every torch call on one
        # thread (TORCH), the UI's few repaints a second cost the drag little.
        if backend.threads:
            torch.set_num_threads(backend.threads)
        from voicedrag.editor import Editor, load_kit

        kit = load_kit(model, device, template=template)
        editor = Editor(kit, paraphrase=backend.paraphrase)
        ws, image = editor.seed(seed, backend.psi)
        backend.editor = editor
    except Exception as err:  # noqa: BLE001 - any failure becomes one sentence on screen
        post(ModelFailed(_describe(err, "loading the model")))
        return
    post(ModelLoaded(kit.generator, seed, ws, image, kit.title, str(kit.generator.device),
                     time.perf_counter() - started))
    if kit.limits:
        post(Notice(kit.limits, "warning"))
    warm_up()


def warm_up() -> None:
    """Pay torch's one-time costs now rather than on the first command: the first optimizer
    built in a process imports several seconds' worth of torch modules."""
    try:
        import torch

        torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1e-3).step()
        import voicedrag.planning.rules  # noqa: F401 - the planner, needed by the first command
    except Exception:  # noqa: BLE001 - a failed warm-up only costs time later
        pass


@on_torch_thread
def new_seed(backend: Backend, seed: int, post: Post) -> None:
    try:
        assert backend.editor is not None
        ws, image = backend.editor.seed(seed, backend.psi)
    except Exception as err:  # noqa: BLE001
        post(Notice(_describe(err, "rendering the seed"), "error"))
        return
    post(SeedReady(seed, ws, image))


@on_torch_thread
def teach_point(backend: Backend, ws: np.ndarray, name: str, xy: tuple[float, float], path: Path,
                post: Post) -> None:
    """Add a named point of this latent to the kit's keypoint template and save the template."""
    try:
        import torch

        from engine.types import Point
        from keypoints.template import teach

        assert backend.editor is not None
        kit = backend.editor.kit
        old = kit.template
        taught = teach(kit.generator, torch.from_numpy(np.ascontiguousarray(ws)), {name: Point(*xy)},
                       blocks=old.blocks if old is not None else None)
        template = taught if old is None else old.merged(taught)
        path.parent.mkdir(parents=True, exist_ok=True)
        template.save(path)
        kit.template = template
        backend.editor.forget()  # keypoints found before this point was taught are stale
    except Exception as err:  # noqa: BLE001
        post(Notice(_describe(err, f"teaching {name}"), "error"))
        return
    post(PointTaught(name, xy, len(template.names), str(path)))


@on_torch_thread
def load_parser(backend: Backend, preload_paraphrase: bool, post: Post) -> None:
    """Build the command parser (and, optionally, its sentence model) before the first command needs it."""
    try:
        assert backend.editor is not None
        parser = backend.editor.parser
        if preload_paraphrase and backend.paraphrase and not parser.load() and parser.embedding_error:
            post(Notice(f"paraphrases are off: {parser.embedding_error}; exact commands still work.",
                        "warning"))
    except Exception as err:  # noqa: BLE001
        post(Notice(_describe(err, "loading the command parser"), "error"))


@on_torch_thread
def detect_keypoints(backend: Backend, entry_id: int, image: np.ndarray, post: Post,
                     ws: np.ndarray | None = None) -> None:
    """Find the keypoints of a history entry's image (for the labels) and post them."""
    try:
        assert backend.editor is not None
        found = backend.editor.keypoints(entry_id, image, ws)
    except Exception as err:  # noqa: BLE001
        post(KeypointsFound(entry_id, {}, _describe(err, "finding keypoints")))
        return
    post(KeypointsFound(entry_id, found.points, found.notice))


@on_torch_thread
def run_command(backend: Backend, req: DragRequest, post: Post) -> None:
    """Parse, find keypoints, plan and drag; or drag hand-placed pairs when `req.pairs` is set."""
    try:
        _run_command(backend, req, post)
    except Exception as err:  # noqa: BLE001 - a worker must not take the app down
        post(DragFailed(_describe(err, "the edit")))


def _run_command(backend: Backend, req: DragRequest, post: Post) -> None:
    from engine.types import DragPair, Point
    from voicedrag.planning.pipeline import CommandError, needs_keypoints

    editor = backend.editor
    assert editor is not None, "a command ran before the model was loaded"
    edits_json: list[dict[str, object]] = []
    warnings: list[str] = []
    names: list[str] = []
    mask = req.mask
    if req.pairs:
        pairs = [DragPair(Point(*a), Point(*b)) for a, b in req.pairs]
        names = [f"point {i + 1}" for i in range(len(pairs))]
    else:
        result = editor.parse(req.label)
        post(CommandParsed(req.label, result))
        if result.control:
            post(ControlRequested(result.control, req.label))
            return
        if result.error:
            post(CommandFailed(req.label, result.error, result.suggestions))
            return
        if editor.cancelled:
            post(CommandFailed(req.label, "stopped before the drag began."))
            return
        edits_json = [e.to_json() for e in result.edits]
        if needs_keypoints(result.edits) and editor.cached_keypoints(req.entry_id) is None:
            # Reported before the plan, so that the labels show what the plan was made from.
            found = editor.keypoints(req.entry_id, req.image, req.ws)
            post(KeypointsFound(req.entry_id, found.points, found.notice))
        try:
            planned = editor.plan(result, req.image, req.entry_id, req.ws)
        except CommandError as err:
            post(CommandFailed(req.label, str(err)))
            return
        warnings = planned.warnings
        pairs, names = planned.pairs, list(planned.plan.names)
        if mask is None:
            mask = planned.plan.mask
    outside = [p for p in pairs if mask and not any(x0 <= p.handle.x < x1 and y0 <= p.handle.y < y1
                                                    for x0, y0, x1, y1 in mask)]
    if outside:
        # The mask term holds everything outside the region still: such a handle cannot move.
        where = ", ".join(f"{p.handle.x:g},{p.handle.y:g}" for p in outside)
        warnings = [*warnings, f"the handle at {where} lies outside the region that may move, so it will "
                               "not move; draw the mask around it or type 'mask off'"]
    post(DragPlanned(PlannedDrag(
        label=req.label, handles=[(p.handle.x, p.handle.y) for p in pairs],
        targets=[(p.target.x, p.target.y) for p in pairs], names=names, mask=mask, warnings=warnings,
        edits=edits_json,
    )))
    drag(editor, req, pairs, mask, edits_json, warnings, post)


def drag(editor: Editor, req: DragRequest, pairs: list[Any], mask: list[Rect] | None,
         edits_json: list[dict[str, object]], warnings: list[str], post: Post) -> None:
    from voicedrag.planning.rules import mask_array
    from voicedrag.session import Entry

    h, w = req.image.shape[:2]
    try:
        steps = editor.drag(req.ws, pairs, mask_array(mask, (w, h)), req.max_steps,
                            preview_seconds=req.preview_seconds)
    except ValueError as err:
        post(DragFailed(f"{err}; place the points inside the image."))
        return
    started = posted = time.perf_counter()
    for result in steps:
        now = time.perf_counter()
        # The screen shows a few states a second, so steps between them are not sent: every message
        # costs the UI thread time under the interpreter lock that this loop needs. A new frame
        # is always sent; the last step's state arrives with DragFinished.
        if result.image is None and now - posted < req.report_seconds:
            continue
        posted = now
        rate = (result.step + 1) / max(now - started, 1e-9)
        post(DragStep(result.step, req.max_steps, [(p.x, p.y) for p in result.points], result.mean_distance,
                      rate, result.image))
    final = editor.result()
    entry = Entry(
        label=req.label, kind="drag", ws=final.ws.cpu().numpy().astype(np.float32), image=final.image,
        pairs=list(pairs), final_points=final.points, mask=mask, steps=final.steps, converged=final.converged,
        verdict=final.verdict,
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


def _load_transcriber(backend: Backend) -> Any:
    # Primed with the model kit's vocabulary, exactly as `voicedrag transcribe` and `edit --audio` are.
    if backend.editor is not None:
        return backend.editor.kit.transcriber()
    from voicedrag.speech.transcribe import Transcriber

    return Transcriber()


def _voice(backend: Backend, post: Post, cancelled: Cancelled) -> None:
    from voicedrag.speech.audio import (
        MicrophoneRecorder,
        NoMicrophoneError,
        microphone_status,
    )

    ok, message = microphone_status()
    if not ok:
        post(VoiceFailed(message))
        return
    if backend.transcriber is None:
        post(VoiceState("loading"))
        backend.transcriber = TORCH.call(functools.partial(_load_transcriber, backend))
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
    editor, transcriber = backend.editor, backend.transcriber
    if editor is not None:  # the model's grammar helps where the free transcript fails
        transcript, choice = TORCH.call(functools.partial(editor.hear, transcriber, recording.samples))
        text = choice.text
        if choice.source == "grammar":
            post(Notice(f"heard {choice.free_text or 'too little'!r}; read as {text!r}.", "information"))
    else:
        transcript = TORCH.call(functools.partial(transcriber.transcribe, recording.samples))
        text = transcript.text
    if not text.strip():
        post(VoiceFailed("nothing could be understood; speak closer to the microphone or type the command."))
        return
    post(Transcribed(text.strip(), transcript.elapsed))
