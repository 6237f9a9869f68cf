"""One edit end to end, for every front end and every model.

An `Editor` owns the edits on one model kit (`voicedrag.kit`): `run` takes what the user gave
(an `EditRequest`: typed text, audio, explicit pairs, the image it applies to) and yields the
edit as typed events (`voicedrag.events`): heard, parsed, keypoints found, planned, the drag's
steps, and finished (the history entry, with its verdict) or refused (one sentence). Keypoints
are found once per image (cached by the history entry's stable id); one cancel handle stops an
edit before its drag or during it. `voicedrag edit`, `drag` and `demo` and the TUI only consume
the stream, so every policy and sentence lives here once.

    editor = Editor(load_kit("embedded"))
    ws, image = editor.seed(0)
    for event in editor.run(EditRequest(ImageState(ws, image), text="open the mouth")):
        print(event)
"""

from __future__ import annotations

import threading
import time
from collections import abc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.errors import UserError
from engine.types import DEFAULT_PSI, DragPair, Point
from voicedrag.events import (
    Control,
    DragOptions,
    EditEvent,
    EditRequest,
    Finished,
    Heard,
    ImageState,
    Inverting,
    KeypointsFound,
    Mask,
    Parsed,
    PhotoOpened,
    Planned,
    Refused,
    Step,
)
from voicedrag.kit import (  # noqa: F401 - the kit's names, where callers have always found them
    DETECTORS,
    NO_DETECTOR,
    KitSpec,
    ModelKit,
    kit_for_generator,
    load_kit,
    load_template_for,
)
from voicedrag.planning.pipeline import (
    CommandError,
    needs_keypoints,
    plan_command,
    refusal,
)

if TYPE_CHECKING:
    import torch

    from engine.drag import DragResult, DragSession, StepResult
    from engine.invert import InvertConfig
    from engine.stylegan2 import Generator
    from voicedrag.language.commands import CommandParser, ParseResult
    from voicedrag.photoedit import CancelHandle, PhotoState
    from voicedrag.speech.listen import Listener
    from voicedrag.speech.transcribe import Transcriber


@dataclass
class Keypoints:
    points: dict[str, Point]
    notice: str | None = None  # why none were found (no detector, a broken one), else None


STOPPED = "stopped before the drag began."


def outside_mask(pairs: tuple[DragPair, ...] | list[DragPair], mask: Mask | None) -> str | None:
    """Why a drag cannot run with this mask (a handle outside it: the mask term holds everything
    outside still, so that handle cannot move), in one sentence; None when every handle is inside."""
    if mask is None:
        return None
    outside = [
        p.handle for p in pairs if not any(x0 <= p.handle.x < x1 and y0 <= p.handle.y < y1 for x0, y0, x1, y1 in mask)
    ]
    if not outside:
        return None
    where = ", ".join(f"{p.x:g},{p.y:g}" for p in outside)
    handle = "the handle at" if len(outside) == 1 else "the handles at"
    return (
        f"{handle} {where} lies outside the mask, the region that may move, so it cannot move; "
        "widen the mask to take it in, or remove the mask."
    )


# The detector's own error on this world's faces is 0.3-0.4 px: a word edit goes on only where a
# named keypoint lies more than this beyond the stop distance from its target.
CHECK_SLACK_PX = 0.5


class Editor:
    """Parse, keypoints, plan and drag on one model kit. Thread-safe for one edit at a time."""

    def __init__(self, kit: ModelKit, parser: CommandParser | None = None, paraphrase: bool = True) -> None:
        self.kit = kit
        self.paraphrase = paraphrase
        self._parser = parser
        self._listener: Listener | None = None
        self._photo: CancelHandle | None = None  # the running photo inversion's cancel handle
        self._cache: dict[int, dict[str, Point]] = {}
        self._cache_lock = threading.Lock()
        self._cancel = threading.Event()
        self._session: DragSession | None = None
        self._last: DragSession | None = None

    # ------------------------------------------------------------ the stream

    def run(self, request: EditRequest) -> Iterator[EditEvent]:
        """One edit as events: [Heard] [Parsed] then Control, or [KeypointsFound] Planned Step*
        Finished, or Refused at the first stage that cannot go on. Never raises for what the user
        gave; a cancel (`cancel`) before the drag ends it as Refused, during it as Finished."""
        text = request.text
        if request.audio is not None:
            heard = self.listen(request.audio, request.state.size)
            yield heard
            text = heard.text
            if not text.strip():
                yield Refused("no speech was heard; record the command again, closer to the microphone, or type it.")
                return
        if request.pairs:
            pairs = tuple(request.pairs)
            planned = Planned(
                label=request.label or _pairs_label(pairs),
                pairs=pairs,
                names=tuple(f"point {i + 1}" for i in range(len(pairs))),
                mask=request.mask,
                warnings=(),
            )
        else:
            result = self.parse(text or "")
            yield Parsed(result)
            if result.control is not None and request.controls:
                yield Control(result.control, text or "")
                return
            made = yield from self._plan(result, request, text or "")
            if made is None:
                return
            planned = made
        why = outside_mask(planned.pairs, planned.mask)
        if why is not None:
            yield Refused(why)
            return
        if self.cancelled:
            yield Refused(STOPPED)
            return
        yield planned
        yield from self._drag(request, planned)

    def _plan(
        self, result: ParseResult, request: EditRequest, text: str
    ) -> abc.Generator[EditEvent, None, Planned | None]:
        """Keypoints (found once per entry, reported before the plan so that labels show what the
        plan was made from) and the plan; returns the Planned event, or None after a Refused."""
        why = refusal(result)
        if why is not None:
            yield Refused(why, tuple(result.suggestions))
            return None
        if self.cancelled:  # stopped before a search: no keypoints are looked for
            yield Refused(STOPPED)
            return None
        state = request.state
        keypoints: dict[str, Point] = {}
        if needs_keypoints(result.edits):
            cached = (
                state.keypoints
                if state.keypoints is not None
                else (None if state.entry_id is None else self.cached_keypoints(state.entry_id))
            )
            found = Keypoints(cached) if cached is not None else self.keypoints(state.entry_id, state.image, state.ws)
            if cached is None:
                yield KeypointsFound(state.entry_id, dict(found.points), found.notice)
            if not found.points and found.notice:
                # Without a detector the planner's "no such keypoint" is a symptom; say the cause.
                yield Refused(found.notice)
                return None
            keypoints = found.points
        try:
            planned = plan_command(result, state.size, keypoints, rules=self.kit.rules)
        except CommandError as err:
            yield Refused(str(err))
            return None
        plan = planned.plan
        mask = request.mask if request.mask is not None else (None if plan.mask is None else tuple(plan.mask))
        return Planned(
            label=request.label or text,
            pairs=tuple(planned.pairs),
            names=tuple(plan.names),
            mask=mask,
            warnings=tuple(planned.warnings),
            edits=tuple(e.to_json() for e in result.edits),
            plan=plan,
        )

    def _drag(self, request: EditRequest, planned: Planned) -> Iterator[EditEvent]:
        from voicedrag.planning.rules import mask_array
        from voicedrag.session import Entry

        opts, state = request.drag, request.state
        mask = mask_array(None if planned.mask is None else list(planned.mask), state.size)
        generator = None if state.photo is None else state.photo.generator
        ws: torch.Tensor | np.ndarray = state.ws
        pairs = list(planned.pairs)
        rounds: list[DragResult] = []
        started = reported = time.perf_counter()
        done = 0
        while True:
            try:
                steps = self.drag(
                    ws,
                    pairs,
                    mask,
                    opts.max_steps - done,
                    preview_every=opts.preview_every,
                    preview_seconds=opts.preview_seconds,
                    lr=opts.lr,
                    space=opts.space,
                    generator=generator,
                    preview_size=opts.preview_size,
                )
            except ValueError as err:  # a point outside the image
                yield Refused(f"{err}; place the points inside the image.")
                return
            for r in steps:
                now = time.perf_counter()
                # A new frame is always reported; the last step's state arrives with Finished.
                if r.image is None and now - reported < opts.report_seconds:
                    continue
                reported = now
                yield Step(
                    done + r.step,
                    opts.max_steps,
                    tuple(r.points),
                    r.mean_distance,
                    (done + r.step + 1) / max(now - started, 1e-9),
                    None if r.image is None else _full_size(r.image, state.size),
                )
            rounds.append(self.result())
            done += rounds[-1].steps
            again = self._checked_pairs(planned, rounds[-1], len(rounds), opts)
            if again is None:
                break
            ws, pairs = rounds[-1].ws, again
        final = _joined(rounds)
        photo_image = None
        if state.photo is not None:
            from keypoints.align import paste_back

            # The edit, warped back into the photo as it stands; every pixel outside the blend
            # region stays the photo's own.
            base = state.photo_image if state.photo_image is not None else state.photo.photo.rgb
            photo_image, _ = paste_back(base, final.image, state.image, state.photo.alignment, mask)
        yield Finished(
            Entry(
                label=planned.label,
                kind="drag",
                ws=final.ws.detach().cpu().numpy().astype(np.float32),
                image=final.image,
                pairs=list(planned.pairs),
                final_points=list(final.points),
                mask=None if planned.mask is None else list(planned.mask),
                steps=final.steps,
                converged=final.converged,
                verdict=final.verdict,
                cancelled=final.cancelled,
                mean_distance=final.mean_distance,
                seconds=final.seconds,
                frames=list(final.frames),
                edits=list(planned.edits),
                warnings=list(planned.warnings),
                photo=state.photo,
                photo_image=photo_image,
            )
        )

    def _checked_pairs(
        self, planned: Planned, last: DragResult, rounds: int, opts: DragOptions
    ) -> list[DragPair] | None:
        """Pairs for one more round of a word edit, or None when it is done.

        Tracking follows the generator's features, and on a photo's tuned generator (or a part
        whose edge fades as it moves) they can reach the target while the part drawn stops short:
        the drag converged, the mouth opened half. A word edit names keypoints, so the detector
        checks the result: where a named keypoint lies farther than the stop distance from its
        target, the drag goes on from where the detector sees it (the same targets, mask and step
        budget), up to `DragOptions.check_rounds` more rounds. Explicit points have nothing to
        check against."""
        if planned.plan is None or rounds > opts.check_rounds or last.cancelled or self.cancelled:
            return None
        if last.steps >= opts.max_steps or not last.converged:
            return None
        found = self.keypoints(None, last.image, last.ws).points
        if not found or any(name not in found for name in planned.names):
            return None
        pairs = [DragPair(found[name], pair.target) for name, pair in zip(planned.names, planned.pairs, strict=True)]
        from engine.drag import DragConfig

        stop = DragConfig.for_generator(self.kit.generator).stop_px(len(pairs))
        if max(p.handle.distance(p.target) for p in pairs) <= stop + CHECK_SLACK_PX:
            return None
        return pairs

    # ------------------------------------------------------------ photos

    def open_photo(
        self, path: str | Path, config: InvertConfig | None = None, use_cache: bool = True, report_seconds: float = 0.0
    ) -> Iterator[EditEvent]:
        """A user's photo into the model: Inverting per step of its inversion (none when it is
        cached), then PhotoOpened; or Refused (not an image, no face, a face too small, stopped)."""
        from engine.invert import InvertStep
        from voicedrag.photoedit import CancelHandle, PhotoState, open_photo

        handle = CancelHandle()
        self._photo = handle
        total = None
        reported = 0.0
        try:
            for item in open_photo(self.kit, path, config, use_cache=use_cache, handle=handle):
                if self.cancelled:
                    handle.cancel()
                if isinstance(item, PhotoState):
                    yield PhotoOpened(item)
                    return
                assert isinstance(item, InvertStep)
                if total is None and handle.inversion is not None:
                    c = handle.inversion.config
                    total = c.w_steps + c.wplus_steps + (c.tune_steps if c.tune else 0)
                now = time.perf_counter()
                if item.image is None and now - reported < report_seconds:
                    continue
                reported = now
                yield Inverting(
                    item.phase,
                    handle.inversion.step_count if handle.inversion else 0,
                    total or 0,
                    item.psnr,
                    item.image,
                )
        except UserError as err:
            yield Refused(str(err))
        finally:
            self._photo = None

    def photo_state(self, photo: PhotoState) -> ImageState:
        """The image state of an opened photo: its inversion, its own keypoints, the photo itself."""
        return ImageState(photo.ws, photo.image, keypoints=photo.keypoints, photo=photo, photo_image=photo.photo.rgb)

    # ------------------------------------------------------------ words

    @property
    def parser(self) -> CommandParser:
        if self._parser is None:
            self._parser = self.kit.parser(self.paraphrase)
        return self._parser

    def parse(self, text: str) -> ParseResult:
        return self.parser.parse(text)

    def listener(self, transcriber: Transcriber | None = None) -> Listener:
        """Speech to this model's commands: Whisper primed with its vocabulary (loaded on first
        use, or the one given) and its parser's grammar."""
        from voicedrag.speech.listen import Listener

        if self._listener is None or (transcriber is not None and self._listener.transcriber is not transcriber):
            self._listener = Listener(self.parser, transcriber or self.kit.transcriber())
        return self._listener

    @property
    def listener_loaded(self) -> bool:
        return self._listener is not None

    def listen(self, samples: np.ndarray, size: tuple[int, int] | None = None) -> Heard:
        """Spoken audio as the text to parse: Whisper's free transcript, or, where this model's
        parser cannot read it as heard, the command of its grammar the audio makes likeliest.
        Spoken points are read as pixels of an image of `size` (width, height), when given."""
        return self.listener().listen(samples, size)

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

    def use_keypoints(self, entry_id: int, points: dict[str, Point]) -> None:
        """Keypoints found elsewhere for an entry's image (a photo's own, mapped into its crop): used
        instead of a search."""
        with self._cache_lock:
            self._cache[entry_id] = dict(points)

    def keypoints(
        self, entry_id: int | None, image: np.ndarray, ws: torch.Tensor | np.ndarray | None = None
    ) -> Keypoints:
        """The named keypoints of `image` (drawn from the latent `ws`, which a template needs); with the id
        of its history entry, found once per entry."""
        cached = None if entry_id is None else self.cached_keypoints(entry_id)
        if cached is not None:
            return Keypoints(cached)
        notice = None
        if not self.kit.has_detector and self.kit.template is not None:
            if ws is None:
                return Keypoints(
                    {},
                    "keypoints from a template need the image's latent; "
                    "use explicit drags such as 'drag 30,40 to 50,60'.",
                )
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
        photo = self._photo
        if photo is not None:
            photo.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def drag(
        self,
        ws: torch.Tensor | np.ndarray,
        pairs: list[DragPair],
        mask: np.ndarray | None,
        max_steps: int,
        preview_every: int = 0,
        preview_seconds: float | None = None,
        lr: float | None = None,
        space: str | None = None,
        generator: Generator | None = None,
        preview_size: int | None = None,
    ) -> Iterator[StepResult]:
        """Start a drag with the model's own settings (overridden by the arguments that are not None)
        and return its steps; `result()` then holds the outcome. Raises ValueError at once for points
        outside the image. `generator` draws the latent where it is not the model's own (a photo's
        tuned copy)."""
        import torch

        from engine.drag import DragConfig, DragSession

        G = generator if generator is not None else self.kit.generator
        config = DragConfig.for_generator(
            G,
            max_steps=max_steps,
            lr=lr,
            space=space,
            preview_every=preview_every,
            preview_seconds=preview_seconds,
            preview_size=preview_size,
        )
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


def _pairs_label(pairs: tuple[DragPair, ...]) -> str:
    return "drag " + "; ".join(f"{p.handle.x:g},{p.handle.y:g} to {p.target.x:g},{p.target.y:g}" for p in pairs)


def _joined(rounds: list[DragResult]) -> DragResult:
    """One drag's result from its rounds: the last one's state, every round's steps, time and frames."""
    from dataclasses import replace

    last = rounds[-1]
    if len(rounds) == 1:
        return last
    return replace(
        last,
        steps=sum(r.steps for r in rounds),
        seconds=sum(r.seconds for r in rounds),
        frames=[f for r in rounds for f in r.frames],
        start_distance=rounds[0].start_distance,
    )


def _full_size(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A preview frame at the image's size (w, h): a smaller one (DragOptions.preview_size) is
    scaled up, so that points and overlays keep the image's coordinates."""
    h, w = frame.shape[:2]
    if (w, h) == size:
        return frame
    from PIL import Image

    return np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BILINEAR))
