"""What a command means, before any image is involved: the edit intent."""

from __future__ import annotations

from dataclasses import dataclass

from engine.types import Point


@dataclass(frozen=True)
class Verb:
    """One action of the command language and every word that says it."""

    action: str
    words: str  # the canonical word first, then its forms and synonyms
    default_part: str | None = None  # the part meant when a command names none ("smile", "turn left")
    prompt: bool = True  # a word the speech recogniser is primed with


@dataclass(frozen=True)
class Control:
    """A control word: about the session, not the face."""

    word: str
    synonyms: str  # further single words that mean it
    phrase: str  # a canonical phrasing, for the sentence model
    keys: str = ""  # extra spellings the TUI's command bar takes ("?" for help)


# The one table of verbs: the lexicon, the parser's correction targets, the speech prompt and the
# rules' list of actions are all derived from it.
VERB_TABLE: tuple[Verb, ...] = (
    Verb("open", "open opens opened opening"),
    Verb("close", "close closes closed closing shut shuts"),
    Verb("raise", "raise raises raised lift lifts lifted elevate"),
    Verb("lower", "lower lowers lowered drop drops dropped"),
    Verb("move", "move moves moved moving shift shifts shifted push pushed pull pulled bring put slide nudge take"),
    Verb("turn", "turn turns turned turning rotate rotates rotated look looks glance swivel", default_part="head"),
    Verb("tilt", "tilt tilts tilted tilting incline", default_part="head"),
    Verb("widen", "widen widens widened broaden spread"),
    Verb("narrow", "narrow narrows thin tighten"),
    Verb("lengthen", "lengthen lengthens elongate extend"),
    Verb("shorten", "shorten shortens"),
    Verb("enlarge", "enlarge enlarges grow grows expand magnify increase"),
    Verb("shrink", "shrink shrinks shrunk reduce decrease"),
    Verb("smile", "smile smiles smiling grin grins grinning beam", default_part="mouth"),
    Verb("frown", "frown frowns frowning scowl scowls sulk pout", default_part="mouth"),
    Verb("drag", "drag drags dragged dragging"),
)

# The one table of control words.
CONTROL_TABLE: tuple[Control, ...] = (
    Control("undo", "undo's revert", "undo the last edit"),
    Control("redo", "again", "redo the edit"),
    Control("reset", "restart restore", "reset the image to the original"),
    Control("save", "export store", "save the picture"),
    Control("stop", "cancel halt abort enough", "stop the drag"),
    Control("help", "commands", "show help", keys="?"),
)

ACTIONS: tuple[str, ...] = tuple(v.action for v in VERB_TABLE)
CONTROLS: tuple[str, ...] = tuple(c.word for c in CONTROL_TABLE)
# Every word of a verb -> its action; every word of a control -> the control.
VERB_WORDS: dict[str, str] = {w: v.action for v in VERB_TABLE for w in v.words.split()}
CONTROL_WORDS: dict[str, str] = {w: c.word for c in CONTROL_TABLE for w in (c.word, *c.synonyms.split())}
DEFAULT_PART: dict[str, str] = {v.action: v.default_part for v in VERB_TABLE if v.default_part}
CONTROL_PHRASES: dict[str, str] = {c.word: c.phrase for c in CONTROL_TABLE}
# The command language's core words for a speech recogniser's prompt (the rules add their parts).
PROMPT_VERBS: tuple[str, ...] = tuple(v.action for v in VERB_TABLE if v.prompt)

SIDES: tuple[str, ...] = ("left", "right")
DIRECTIONS: tuple[str, ...] = ("up", "down", "left", "right")

# Unit vectors in image coordinates (y grows downwards).
DIRECTION_VECTORS: dict[str, tuple[float, float]] = {
    "up": (0.0, -1.0),
    "down": (0.0, 1.0),
    "left": (-1.0, 0.0),
    "right": (1.0, 0.0),
}


@dataclass
class EditIntent:
    """One edit. `part` is None only for explicit point drags (`handle` set).

    `amount` multiplies the rule's default displacement; `pixels`, when the
    command named a distance, replaces it. `side` and "left"/"right"
    directions are the viewer's.
    """

    action: str
    part: str | None = None
    side: str | None = None
    direction: str | None = None
    amount: float = 1.0
    pixels: float | None = None
    handle: Point | None = None
    target: Point | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "action": self.action,
            "part": self.part,
            "side": self.side,
            "direction": self.direction,
            "amount": round(float(self.amount), 4),
            "pixels": None if self.pixels is None else float(self.pixels),
            "handle": None if self.handle is None else self.handle.as_list(),
            "target": None if self.target is None else self.target.as_list(),
        }

    def phrase(self) -> str:
        """A plain English rendering, used in suggestions and warnings."""
        if self.handle is not None:
            h = f"{self.handle.x:g},{self.handle.y:g}"
            if self.target is not None:
                return f"drag {h} to {self.target.x:g},{self.target.y:g}"
            return f"move the point at {h} {self.direction or ''}".strip()
        if self.action in ("smile", "frown") and self.part in (None, "mouth"):
            return self.action
        part = self.part or "?"
        if self.side is not None and part.endswith("s"):
            part = f"{self.side} {part[:-1]}"
        words = [self.action, "the", part]
        if self.direction is not None:
            words += ["to the", self.direction] if self.direction in ("left", "right") else [self.direction]
        return " ".join(words)


# Shorter name used across the app.
Edit = EditIntent
