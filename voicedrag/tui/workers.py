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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from textual.message import Message

from engine.types import DEFAULT_PSI
from voicedrag.events import EditRequest, KeypointsFound, Refused
from voicedrag.tui.messages import (
    EditUpdate,
    ModelFailed,
    ModelLoaded,
    Notice,
    PointTaught,
    SeedReady,
    Transcribed,
    VoiceFailed,
    VoiceLevel,
    VoiceState,
)

if TYPE_CHECKING:
    from voicedrag.editor import Editor
    from voicedrag.journal import Restored

Post = Callable[[Message], object]
Cancelled = Callable[[], bool]
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
    recorder: Any = None  # the MicrophoneRecorder while recording
    psi: float = DEFAULT_PSI
    threads: int | None = None
    paraphrase: bool = True  # let the parser fall back on its sentence model for free phrasings

    @property
    def generator(self) -> Any:
        return None if self.editor is None else self.editor.kit.generator


def describe(err: BaseException, doing: str) -> str:
    """An exception as one sentence: a user's error as it is, anything else as a bug to report."""
    from engine.errors import UserError

    if isinstance(err, UserError):
        return str(err)
    last = traceback.extract_tb(err.__traceback__)[-1:] if err.__traceback__ else []
    where = f" at {last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno}" if last else ""
    return f"{doing} failed ({type(err).__name__}: {err}{where}); this is a bug, please report it."


@on_torch_thread
def load_model(
    backend: Backend,
    model: str,
    device: str | None,
    seed: int,
    post: Post,
    template: str | None = None,
    resume: str | None = None,
) -> None:
    """Load the model kit and draw the first image: the seed's, or (`resume`, a journal.json) the
    session of a journal with every image drawn again from its latent."""
    started = time.perf_counter()
    restored = None
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
        if resume is not None:
            restored = restore_journal(editor, resume)
            current = restored.session.current
            seed, ws, image = restored.session.seed, current.ws, current.image
        else:
            ws, image = editor.seed(seed, backend.psi)
        backend.editor = editor
    except Exception as err:  # noqa: BLE001 - any failure becomes one sentence on screen
        post(ModelFailed(describe(err, "resuming the session" if resume is not None else "loading the model")))
        return
    post(ModelLoaded(seed, ws, image, kit.title, str(kit.generator.device), time.perf_counter() - started, restored))
    if kit.limits:
        post(Notice(kit.limits, "warning"))
    warm_up()


def restore_journal(editor: Editor, path: str) -> Restored:
    """A journal's session on this editor's model: each image drawn from its latent as it was
    drawn the first time (a seed's by the generator's render, a drag's by the drag session's)."""
    import torch

    from engine.drag import DragConfig
    from engine.ops import to_uint8
    from voicedrag.journal import JournalError, read_journal, restore

    journaled = read_journal(path)
    G = editor.kit.generator
    shape = journaled.entries[0].ws.shape
    if shape[1:] != (G.num_ws, G.cfg.w_dim):
        raise JournalError(
            f"the latents of the session in {journaled.folder} are {shape[1]}x{shape[2]}, and the "
            f"model's are {G.num_ws}x{G.cfg.w_dim}: it is not the model the session was made with; "
            "start a new session without --resume."
        )
    config = DragConfig.for_generator(G)

    def render_drag(ws: np.ndarray) -> np.ndarray:
        # As engine.drag.DragSession.render draws a drag's result.
        with torch.no_grad():
            out = G.synthesis(
                torch.from_numpy(np.ascontiguousarray(ws)).to(G.device),
                noise_mode=config.noise_mode,
                fused=config.fused_modconv,
            )
        assert out.image is not None
        return to_uint8(out.image)

    return restore(journaled, editor.render, render_drag, model_name=editor.kit.title)


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
        post(Notice(describe(err, "rendering the seed"), "error"))
        return
    post(SeedReady(seed, ws, image))


@on_torch_thread
def teach_point(backend: Backend, ws: np.ndarray, name: str, xy: tuple[float, float], path: Path, post: Post) -> None:
    """Add a named point of this latent to the kit's keypoint template and save the template."""
    try:
        import torch

        from engine.types import Point
        from keypoints.template import teach

        assert backend.editor is not None
        kit = backend.editor.kit
        old = kit.template
        taught = teach(
            kit.generator,
            torch.from_numpy(np.ascontiguousarray(ws)),
            {name: Point(*xy)},
            blocks=old.blocks if old is not None else None,
        )
        template = taught if old is None else old.merged(taught)
        path.parent.mkdir(parents=True, exist_ok=True)
        template.save(path)
        kit.template = template
        backend.editor.forget()  # keypoints found before this point was taught are stale
    except Exception as err:  # noqa: BLE001
        post(Notice(describe(err, f"teaching {name}"), "error"))
        return
    post(PointTaught(name, xy, len(template.names), str(path)))


@on_torch_thread
def load_parser(backend: Backend, preload_paraphrase: bool, post: Post) -> None:
    """Build the command parser (and, optionally, its sentence model) before the first command needs it."""
    try:
        assert backend.editor is not None
        parser = backend.editor.parser
        if preload_paraphrase and backend.paraphrase and not parser.load() and parser.embedding_error:
            post(Notice(f"paraphrases are off: {parser.embedding_error}; exact commands still work.", "warning"))
    except Exception as err:  # noqa: BLE001
        post(Notice(describe(err, "loading the command parser"), "error"))


@on_torch_thread
def detect_keypoints(backend: Backend, entry_id: int, image: np.ndarray, ws: np.ndarray, post: Post) -> None:
    """Find the keypoints of a history entry's image (for the labels) and post them."""
    try:
        assert backend.editor is not None
        found = backend.editor.keypoints(entry_id, image, ws)
    except Exception as err:  # noqa: BLE001
        post(EditUpdate(KeypointsFound(entry_id, {}, describe(err, "finding keypoints"))))
        return
    post(EditUpdate(KeypointsFound(entry_id, found.points, found.notice)))


@on_torch_thread
def open_photo(backend: Backend, path: str, post: Post) -> None:
    """Frame and invert a photo; its events, each posted as one message (Esc stops the inversion)."""
    try:
        assert backend.editor is not None, "a photo was opened before the model was loaded"
        for event in backend.editor.open_photo(path, report_seconds=0.2):
            post(EditUpdate(event))
    except Exception as err:  # noqa: BLE001 - a worker must not take the app down
        post(EditUpdate(Refused(describe(err, "opening the photo"))))


@on_torch_thread
def run_edit(backend: Backend, request: EditRequest, post: Post) -> None:
    """One edit's events, each posted as one message; a failure ends the stream as Refused."""
    try:
        assert backend.editor is not None, "a command ran before the model was loaded"
        for event in backend.editor.run(request):
            post(EditUpdate(event))
    except Exception as err:  # noqa: BLE001 - a worker must not take the app down
        post(EditUpdate(Refused(describe(err, "the edit"))))


def voice(backend: Backend, post: Post, cancelled: Cancelled, size: tuple[int, int] | None = None) -> None:
    """Record one command from the microphone, transcribe it (spoken points as pixels of an image
    of `size`, the one shown) and post the text."""
    try:
        _voice(backend, post, cancelled, size)
    except Exception as err:  # noqa: BLE001
        post(VoiceFailed(describe(err, "listening")))
    finally:
        backend.recorder = None
        post(VoiceState("idle"))


def _voice(backend: Backend, post: Post, cancelled: Cancelled, size: tuple[int, int] | None) -> None:
    from voicedrag.speech.audio import (
        MicrophoneRecorder,
        NoMicrophoneError,
        microphone_status,
    )

    ok, message = microphone_status()
    if not ok:
        post(VoiceFailed(message))
        return
    editor = backend.editor
    if editor is None:
        post(VoiceFailed("the model is still loading; speak again when the image is shown."))
        return
    if editor.listener_loaded is False:
        post(VoiceState("loading"))
        # Whisper primed with the model kit's vocabulary, exactly as `edit --audio` hears.
        TORCH.call(editor.listener)
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
    heard = TORCH.call(functools.partial(editor.listen, recording.samples, size))
    if heard.note:
        post(Notice(heard.note, "information"))
    if not heard.text:
        post(VoiceFailed("nothing could be understood; speak closer to the microphone or type the command."))
        return
    post(Transcribed(heard.text, heard.seconds))
