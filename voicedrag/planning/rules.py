"""Edit rules (one TOML file per model domain) and the planner.

`plan(edits, keypoints, size)` turns edit intents into drag pairs on the named
keypoints of the current image, plus the region that may move. Displacements
in a rules file are multiples of a reference length measured on the image
(for faces, the inter-ocular distance), so a plan scales with the subject.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeGuard

import numpy as np

from engine.types import DragPair, Point
from voicedrag.errors import VoicedragError
from voicedrag.intents import ACTIONS, DIRECTION_VECTORS, DIRECTIONS, EditIntent
from voicedrag_assets import RULES_DIR as _RULES_ASSETS
from voicedrag_assets import asset_path

RULES_DIR = asset_path(_RULES_ASSETS)
DEFAULT_RULES = "face"

# Explicit point moves without a distance ("move the point at 10,20 up") move
# this many reference lengths; without keypoints, this fraction of the image.
POINT_STEP_REFERENCE = 0.25
POINT_STEP_IMAGE = 0.05
# Pairs shorter than this do nothing the tracker could see.
MIN_PAIR_PIXELS = 0.5
# Handles closer than this start on the same or neighbouring pixels, where the tracked
# features are nearly one; handles sent different ways are moved this far apart.
MIN_HANDLE_GAP = 2.0


class RulesError(VoicedragError):
    """A rules file that cannot be read, or an edit its rules cannot plan."""


@dataclass(frozen=True)
class HandleSpec:
    """How one keypoint moves; exactly one of the motion fields is set."""

    point: str
    side: str | None = None
    move: tuple[float, float] | None = None
    along: float | None = None
    rotate: float | None = None
    pivot: str | None = None
    scale: float | None = None
    center: tuple[str, ...] = ()
    toward: str | None = None
    fraction: float | None = None

    def keypoints(self) -> list[str]:
        names = [self.point, *self.center]
        names += [n for n in (self.pivot, self.toward) if n is not None]
        return names


@dataclass(frozen=True)
class Limit:
    """How far a part goes on this model: after a rule's moves, the offset of
    `point` from `origin` along `axis` (a unit vector) stays <= `max`
    reference lengths. A rule whose full move would pass a limit moves only as
    far as the limit allows (an already half-open mouth opens the rest of the
    way), so that it never asks the generator for a face it cannot draw."""

    point: str
    origin: str
    axis: tuple[float, float]
    max: float

    def value(self, positions: dict[str, Point], ref: float) -> float:
        p, o = positions[self.point], positions[self.origin]
        return ((p.x - o.x) * self.axis[0] + (p.y - o.y) * self.axis[1]) / ref


@dataclass(frozen=True)
class Rule:
    action: str
    part: str
    handles: tuple[HandleSpec, ...]
    directions: tuple[str, ...] = ()
    mask: tuple[tuple[str, ...], ...] = ()
    verbs: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()
    default_direction: str | None = None  # the direction when a command names none ("tilt the head")
    limits: tuple[Limit, ...] = ()


@dataclass(frozen=True)
class PartSpec:
    name: str
    words: tuple[str, ...]
    sided: bool = False


@dataclass
class Rules:
    name: str
    description: str
    keypoints: tuple[str, ...]
    reference: tuple[str, str]
    mask_margin: float
    parts: dict[str, PartSpec]
    rules: list[Rule]
    path: Path | None = None

    def part_words(self) -> dict[str, str]:
        """Every word that names a part -> the part's canonical name."""
        out: dict[str, str] = {}
        for spec in self.parts.values():
            out[spec.name] = spec.name
            for word in spec.words:
                out[word] = spec.name
        return out

    def actions_for(self, part: str) -> list[str]:
        return [r.action for r in self.rules if r.part == part]

    def find(self, action: str, part: str) -> Rule | None:
        for rule in self.rules:
            if rule.action == action and rule.part == part:
                return rule
        return None

    def resolve(self, action: str, part: str, direction: str | None) -> tuple[Rule, str | None] | None:
        """The rule an action word means on a part, and the direction it implies.

        Falls back from a part-specific verb ("drop the jaw" opens the mouth)
        and from raise/lower to moving up/down, so the grammar can stay generic.
        """
        rule = self.find(action, part)
        if rule is not None:
            return rule, direction
        for rule in self.rules:
            if rule.part == part and action in rule.verbs:
                return rule, direction
        implied = {"raise": "up", "lower": "down"}.get(action)
        if implied is not None and direction in (None, implied):
            move = self.find("move", part)
            if move is not None:
                return move, implied
        return None

    def describe_part(self, part: str) -> str:
        """Plain words for what a part can do, for error messages."""
        return _join_or(self.actions_for(part))

    def unknown_part_message(self, word: str) -> str:
        return f"this model has no {word}; it knows: {', '.join(self.parts)}."

    def words(self) -> list[str]:
        """Words of these rules: part names and their synonyms, and part-specific verbs."""
        seen: dict[str, None] = {}
        for spec in self.parts.values():
            for w in (spec.name, *spec.words):
                seen[w] = None
        for rule in self.rules:
            for w in rule.verbs:
                seen[w] = None
        return list(seen)


def _join_or(items: list[str]) -> str:
    if not items:
        return "nothing"
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " or " + items[-1]


def _str_tuple(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise RulesError(f"{where} must be a string or a list of strings; fix the rules file.")


def _float(value: object, where: str) -> float:
    if not _is_number(value):
        raise RulesError(f"{where} must be a finite number; fix the rules file.")
    return float(value)


# ---------------------------------------------------------------- the file's schema
#
# Every key a rules file may hold, and the type of its value, checked with the key's path before any
# value is used: a file edited by hand (a number where a rule's table belongs, a word where a list
# is meant) gets one sentence naming the key, never a traceback. Which values are allowed (known
# actions, parts and keypoints; exactly one motion per handle) is checked where they are read.

_TOP_KEYS = ("name", "description", "reference", "mask_margin", "keypoints", "parts", "rule")
_PART_KEYS = ("words", "sided")
_RULE_KEYS = ("action", "part", "verbs", "phrases", "directions", "default_direction", "mask", "handles", "limits")
_HANDLE_KEYS = ("point", "side", "move", "along", "rotate", "pivot", "scale", "center", "toward", "fraction")
_LIMIT_KEYS = ("point", "from", "axis", "max")

_NAME = "a keypoint name"
_NAMES = "a list of keypoint names"
_NAME_OR_NAMES = "a keypoint name or a list of them"
_NUMBER = "a finite number"


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_text(value: object) -> bool:
    # Printable: every string may end up in a one-line message or a parsed command.
    return isinstance(value, str) and value.isprintable()


def _is_texts(value: object) -> bool:
    return _is_text(value) or (isinstance(value, list) and all(_is_text(v) for v in value))


def _shown(value: object) -> str:
    """A value as the sentence about it shows it: short, on one line, never a whole table."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= 42 else text[:40] + "...'"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return "a date or time"  # the only other values TOML has


def _key(path: str, key: object) -> str:
    key = key if isinstance(key, str) and key.isprintable() and key else repr(key)
    return f"{path}.{key}" if path else key


def _check_schema(data: dict[str, object], src: str) -> None:
    """Raise RulesError for the first key that is unknown or holds a value of the wrong type."""

    def wrong(path: str, expected: str, value: object) -> RulesError:
        return RulesError(f"rules file {src}: '{path}' must be {expected}, not {_shown(value)}; fix the file.")

    def table(value: object, path: str, known: tuple[str, ...], what: str) -> dict[str, object]:
        if not isinstance(value, dict):
            raise wrong(path, f"a table ({what})", value)
        for key in value:
            if key not in known:
                raise RulesError(
                    f"rules file {src}: '{_key(path, key)}' is not a key of {what} "
                    f"(those are {', '.join(known)}); fix the file."
                )
        return value

    def check(tab: dict[str, object], path: str, key: str, ok: Callable[[object], bool], expected: str) -> None:
        if key in tab and not ok(tab[key]):
            raise wrong(_key(path, key), expected, tab[key])

    def tables(tab: dict[str, object], path: str, key: str, expected: str) -> list[dict[str, object]]:
        value = tab.get(key, [])
        if not isinstance(value, list):
            raise wrong(_key(path, key), expected, value)
        return value

    table(data, "", _TOP_KEYS, "a rules file")
    for key, expected in (("name", "a string"), ("description", "a string")):
        check(data, "", key, _is_text, expected)
    for key in ("reference", "keypoints"):
        check(data, "", key, _is_texts, _NAMES)
    check(data, "", "mask_margin", _is_number, _NUMBER)
    parts = data.get("parts", {})
    if not isinstance(parts, dict):
        raise wrong("parts", "a table of parts such as [parts.mouth]", parts)
    for name, part in parts.items():
        path = _key("parts", name)
        if not (_is_text(name) and name):
            raise RulesError(f"rules file {src}: the part name {name!r} must be a printable word; fix the file.")
        table(part, path, _PART_KEYS, "a part")
        check(part, path, "words", _is_texts, "a word or a list of words")
        check(part, path, "sided", lambda v: isinstance(v, bool), "true or false")
    for i, rule in enumerate(tables(data, "", "rule", "a list of [[rule]] tables"), start=1):
        path = f"rule[{i}]"
        table(rule, path, _RULE_KEYS, "a rule")
        for key in ("action", "part", "default_direction"):
            check(rule, path, key, _is_text, "a string")
        for key, expected in (
            ("verbs", "a word or a list of words"),
            ("phrases", "a phrase or a list of phrases"),
            ("directions", "a direction or a list of directions"),
        ):
            check(rule, path, key, _is_texts, expected)
        check(
            rule,
            path,
            "mask",
            lambda v: isinstance(v, list) and all(_is_texts(g) for g in v),
            "a list of keypoint groups, each a keypoint name or a list of them",
        )
        for j, handle in enumerate(
            tables(rule, path, "handles", 'a list of handle tables such as { point = "chin", move = [0.0, 0.1] }'),
            start=1,
        ):
            where = f"{path}.handles[{j}]"
            table(handle, where, _HANDLE_KEYS, "a handle")
            for key in ("point", "pivot", "toward"):
                check(handle, where, key, _is_text, _NAME)
            check(handle, where, "side", _is_text, '"left" or "right"')
            check(handle, where, "center", _is_texts, _NAME_OR_NAMES)
            check(
                handle,
                where,
                "move",
                lambda v: isinstance(v, list) and all(_is_number(x) for x in v),
                "[dx, dy], two finite numbers",
            )
            for key in ("along", "rotate", "scale", "fraction"):
                check(handle, where, key, _is_number, _NUMBER)
        for j, limit in enumerate(
            tables(
                rule,
                path,
                "limits",
                'a list of limit tables such as { point = "chin", from = "nose_tip", axis = [0.0, 1.0], max = 0.5 }',
            ),
            start=1,
        ):
            where = f"{path}.limits[{j}]"
            table(limit, where, _LIMIT_KEYS, "a limit")
            for key in ("point", "from"):
                check(limit, where, key, _is_text, _NAME)
            check(
                limit,
                where,
                "axis",
                lambda v: isinstance(v, list) and all(_is_number(x) for x in v),
                "[dx, dy], two finite numbers",
            )
            check(limit, where, "max", _is_number, _NUMBER)


def _parse_handle(raw: dict[str, object], where: str) -> HandleSpec:
    if "point" not in raw or not isinstance(raw["point"], str):
        raise RulesError(f'{where} needs point = "keypoint name"; fix the rules file.')
    motions = [k for k in ("move", "along", "rotate", "scale", "toward") if k in raw]
    if len(motions) != 1:
        raise RulesError(f"{where} must set exactly one of move, along, rotate, scale or toward; fix the rules file.")
    side = raw.get("side")
    if side is not None and side not in ("left", "right"):
        raise RulesError(f'{where}: side must be "left" or "right"; fix the rules file.')
    move = None
    if "move" in raw:
        vec = raw["move"]
        if not (isinstance(vec, list) and len(vec) == 2):
            raise RulesError(f"{where}: move must be [dx, dy]; fix the rules file.")
        move = (_float(vec[0], where), _float(vec[1], where))
    motion = motions[0]
    if motion == "rotate" and not isinstance(raw.get("pivot"), str):
        raise RulesError(f'{where}: rotate needs pivot = "keypoint name"; fix the rules file.')
    if motion == "scale" and "center" not in raw:
        raise RulesError(f"{where}: scale needs center = keypoint name(s); fix the rules file.")
    if motion == "toward" and "fraction" not in raw:
        raise RulesError(f"{where}: toward needs fraction = number; fix the rules file.")
    return HandleSpec(
        point=raw["point"],
        side=side if isinstance(side, str) else None,
        move=move,
        along=_float(raw["along"], where) if "along" in raw else None,
        rotate=_float(raw["rotate"], where) if "rotate" in raw else None,
        pivot=pivot if isinstance(pivot := raw.get("pivot"), str) else None,
        scale=_float(raw["scale"], where) if "scale" in raw else None,
        center=_str_tuple(raw["center"], where) if "center" in raw else (),
        toward=toward if isinstance(toward := raw.get("toward"), str) else None,
        fraction=_float(raw["fraction"], where) if "fraction" in raw else None,
    )


def _parse_limit(raw: object, where: str) -> Limit:
    if not isinstance(raw, dict) or not isinstance(raw.get("point"), str) or not isinstance(raw.get("from"), str):
        raise RulesError(
            f'{where} needs point = "keypoint", from = "keypoint", axis = [dx, dy] and max; fix the rules file.'
        )
    axis = raw.get("axis")
    if not (isinstance(axis, list) and len(axis) == 2):
        raise RulesError(f"{where}: axis must be [dx, dy]; fix the rules file.")
    ax, ay = _float(axis[0], where), _float(axis[1], where)
    norm = math.hypot(ax, ay)
    if norm == 0:
        raise RulesError(f"{where}: axis must not be [0, 0]; fix the rules file.")
    if "max" not in raw:
        raise RulesError(f"{where} needs max = number (reference lengths); fix the rules file.")
    return Limit(point=raw["point"], origin=raw["from"], axis=(ax / norm, ay / norm), max=_float(raw["max"], where))


def parse_rules(data: dict[str, object], path: Path | None = None) -> Rules:
    """Build and check Rules from a parsed TOML document."""
    src = str(path) if path is not None else "rules"
    _check_schema(data, src)
    keypoints = _str_tuple(data.get("keypoints", []), f"{src}: keypoints")
    if not keypoints:
        raise RulesError(f"{src} lists no keypoints; add keypoints = [...] to the rules file.")
    known = set(keypoints)
    reference = _str_tuple(data.get("reference", []), f"{src}: reference")
    if len(reference) != 2:
        raise RulesError(f"{src}: reference must name two keypoints; fix the rules file.")
    raw_parts = data.get("parts", {})
    if not isinstance(raw_parts, dict) or not raw_parts:
        raise RulesError(f"{src} defines no [parts]; add at least one part to the rules file.")
    parts: dict[str, PartSpec] = {}
    for name, raw in raw_parts.items():
        if not isinstance(raw, dict):
            raise RulesError(f"{src}: [parts.{name}] must be a table; fix the rules file.")
        words = tuple(w.lower() for w in _str_tuple(raw.get("words", [name]), f"{src}: parts.{name}.words"))
        parts[name] = PartSpec(name=name, words=words, sided=bool(raw.get("sided", False)))
    rules: list[Rule] = []
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list):
        raise RulesError(f"{src}: rules must be [[rule]] tables; fix the rules file.")
    for i, raw in enumerate(raw_rules):
        where = f"{src}: rule {i + 1}"
        action, part = raw.get("action"), raw.get("part")
        if action not in ACTIONS or action == "drag":
            names = ", ".join(a for a in ACTIONS if a != "drag")
            raise RulesError(f"{where}: action must be one of {names}; fix the rules file.")
        if part not in parts:
            raise RulesError(f"{where}: part {part!r} is not defined under [parts]; fix the rules file.")
        where = f"{src}: rule {action} {part}"
        handles = tuple(_parse_handle(h, f"{where}, handle {j + 1}") for j, h in enumerate(raw.get("handles", [])))
        if not handles:
            raise RulesError(f"{where} has no handles; fix the rules file.")
        directions = _str_tuple(raw.get("directions", []), f"{where}: directions")
        for d in directions:
            if d not in DIRECTIONS:
                raise RulesError(f"{where}: direction {d!r} is not up, down, left or right; fix the rules file.")
        if any(h.along is not None for h in handles) and not directions:
            raise RulesError(f"{where} moves handles along a direction but lists no directions; fix the rules file.")
        default = raw.get("default_direction")
        if default is not None and default not in directions:
            raise RulesError(f"{where}: default_direction must be one of its directions; fix the rules file.")
        mask = tuple(_str_tuple(g, f"{where}: mask") for g in raw.get("mask", []))
        limits = tuple(_parse_limit(lim, f"{where}, limit {j + 1}") for j, lim in enumerate(raw.get("limits", [])))
        limit_names = [n for lim in limits for n in (lim.point, lim.origin)]
        for name in [n for h in handles for n in h.keypoints()] + [n for g in mask for n in g] + limit_names:
            if name not in known:
                raise RulesError(f"{where} uses keypoint {name!r}, which is not in keypoints; fix the rules file.")
        rules.append(
            Rule(
                action=action,
                part=part,
                handles=handles,
                directions=directions,
                mask=mask,
                verbs=tuple(v.lower() for v in _str_tuple(raw.get("verbs", []), f"{where}: verbs")),
                phrases=tuple(p.lower() for p in _str_tuple(raw.get("phrases", []), f"{where}: phrases")),
                default_direction=default if isinstance(default, str) else None,
                limits=limits,
            )
        )
    for a in reference:
        if a not in known:
            raise RulesError(f"{src}: reference keypoint {a!r} is not in keypoints; fix the rules file.")
    return Rules(
        name=str(data.get("name", path.stem if path else "rules")),
        description=str(data.get("description", "")),
        keypoints=keypoints,
        reference=(reference[0], reference[1]),
        mask_margin=_float(data.get("mask_margin", 0.3), f"{src}: mask_margin"),
        parts=parts,
        rules=rules,
        path=path,
    )


def shipped_rules() -> list[str]:
    return sorted(f.stem for f in RULES_DIR.glob("*.toml"))


def rules_file(path: str | Path) -> Path | None:
    """The rules file `path` names (a bare name such as "face" is the shipped NAME.toml), or None."""
    p = Path(path)
    if p.suffix != ".toml" and not p.exists():
        p = RULES_DIR / f"{p.name}.toml"
    return p if p.is_file() else None


MAX_RULES_BYTES = 1 << 20  # the shipped rules files are 5-15 kB
MAX_LINE_DOTS = 200


def load_rules(path: str | Path) -> Rules:
    """Read a rules TOML file; a bare name ("face") means the shipped rules NAME.toml."""
    p = rules_file(path)
    if p is None:
        shipped = ", ".join(shipped_rules()) or "none"
        raise RulesError(f"rules file {str(path)!r} not found; give a .toml path or one of: {shipped}.")
    try:
        with p.open("rb") as f:
            raw = f.read(MAX_RULES_BYTES + 1)
        if len(raw) > MAX_RULES_BYTES:
            raise RulesError(
                f"rules file {p} is larger than {MAX_RULES_BYTES // 2**20} MB, and rules files are a few "
                "kilobytes; check that it is the rules file."
            )
        text = raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")  # as read_text() reads it
        # tomllib builds a dotted key one part at a time, copying all the parts before it: a table
        # header 50,000 keys deep takes it 7 s. No line of a rules file needs many dots.
        crowded = next((n for n, line in enumerate(text.splitlines(), 1) if line.count(".") > MAX_LINE_DOTS), None)
        if crowded is not None:
            raise RulesError(
                f"rules file {p}: line {crowded} has more than {MAX_LINE_DOTS} dots, so its keys nest "
                "too deeply to be read; fix the file."
            )
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        # tomllib's message can quote a whole key path; the sentence keeps its start and where in the
        # file it is.
        reason = " ".join(str(err).split())
        if len(reason) > 160:
            where = reason[reason.rfind(" (at line ") :] if " (at line " in reason else ""
            reason = reason[:100] + "..." + where
        raise RulesError(f"{p} is not valid TOML ({reason}); fix the rules file.") from None
    except RecursionError:  # tomllib reads nested arrays and inline tables by recursion
        raise RulesError(f"rules file {p} nests arrays or tables too deeply to be read; fix the file.") from None
    except OSError as err:
        raise RulesError(f"rules file {p} cannot be read ({err.strerror or err}); check the file.") from None
    return parse_rules(data, p)


_DEFAULT: Rules | None = None


def default_rules() -> Rules:
    """The rules of the embedded face model, read once."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = load_rules(RULES_DIR / f"{DEFAULT_RULES}.toml")
    return _DEFAULT


# ---------------------------------------------------------------- planning

Rect = tuple[int, int, int, int]


@dataclass
class Plan:
    """Drag pairs for one command.

    `mask` is the region that may move, as rectangles (x0, y0, x1, y1) in
    pixels, inclusive-exclusive; None means the whole image may move.
    `names[i]` says where pair i came from (a keypoint name or "point N").
    """

    pairs: list[DragPair]
    mask: list[Rect] | None
    warnings: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    size: tuple[int, int] = (0, 0)

    def mask_array(self) -> np.ndarray | None:
        return mask_array(self.mask, self.size)

    def to_json(self) -> dict[str, object]:
        return {
            "pairs": [
                {"name": n, "handle": p.handle.as_list(), "target": p.target.as_list()}
                for n, p in zip(self.names, self.pairs, strict=True)
            ],
            "mask": None if self.mask is None else [list(r) for r in self.mask],
            "warnings": list(self.warnings),
        }


def mask_array(rects: list[Rect] | None, size: tuple[int, int]) -> np.ndarray | None:
    """Rasterise mask rectangles to a boolean [H, W] array (True = may move)."""
    if rects is None:
        return None
    w, h = size
    out = np.zeros((h, w), dtype=bool)
    for x0, y0, x1, y1 in rects:
        out[max(0, y0) : min(h, y1), max(0, x0) : min(w, x1)] = True
    return out


def reference_length(rules: Rules, keypoints: dict[str, Point]) -> float:
    a, b = rules.reference
    missing = [n for n in (a, b) if n not in keypoints]
    if missing:
        raise RulesError(
            f"no {missing[0]} keypoint was found on this image, so edits cannot be sized; "
            "try another image or an explicit drag such as 'drag 30,40 to 50,60'."
        )
    length = keypoints[a].distance(keypoints[b])
    if length < 1.0:
        raise RulesError(
            f"the keypoints {a} and {b} coincide on this image, so edits cannot be sized; "
            "try another image or an explicit drag."
        )
    return length


def _centroid(names: tuple[str, ...], keypoints: dict[str, Point]) -> Point:
    xs = [keypoints[n].x for n in names]
    ys = [keypoints[n].y for n in names]
    return Point(sum(xs) / len(xs), sum(ys) / len(ys))


def _displacement(
    spec: HandleSpec, edit: EditIntent, direction: str | None, keypoints: dict[str, Point], ref: float
) -> tuple[float, float]:
    """Displacement of one handle in pixels, before `pixels` rescaling."""
    p = keypoints[spec.point]
    k = edit.amount
    if spec.move is not None:
        return spec.move[0] * ref * k, spec.move[1] * ref * k
    if spec.along is not None:
        ux, uy = DIRECTION_VECTORS[direction or "up"]
        return ux * spec.along * ref * k, uy * spec.along * ref * k
    if spec.rotate is not None and spec.pivot is not None:
        sign = -1.0 if direction == "left" else 1.0
        theta = math.radians(spec.rotate * k * sign)
        c = keypoints[spec.pivot]
        rx, ry = p.x - c.x, p.y - c.y
        # Positive theta moves points above the pivot (ry < 0) to the right.
        nx = rx * math.cos(theta) - ry * math.sin(theta)
        ny = rx * math.sin(theta) + ry * math.cos(theta)
        return nx - rx, ny - ry
    if spec.scale is not None:
        c = _centroid(spec.center, keypoints)
        f = spec.scale * k
        return (p.x - c.x) * f, (p.y - c.y) * f
    if spec.toward is not None and spec.fraction is not None:
        q = keypoints[spec.toward]
        f = min(spec.fraction * k, 1.0)
        return (q.x - p.x) * f, (q.y - p.y) * f
    return 0.0, 0.0


def _moves(
    handles: list[HandleSpec],
    edit: EditIntent,
    direction: str | None,
    keypoints: dict[str, Point],
    ref: float,
    fraction: float = 1.0,
) -> list[tuple[float, float]]:
    """Each handle's displacement for `fraction` of the edit's amount."""
    scaled = edit if fraction == 1.0 else replace(edit, amount=edit.amount * fraction)
    return [_displacement(s, scaled, direction, keypoints, ref) for s in handles]


def _limit_factor(
    rule: Rule,
    handles: list[HandleSpec],
    edit: EditIntent,
    direction: str | None,
    keypoints: dict[str, Point],
    ref: float,
) -> float:
    """The largest fraction f in [0, 1] of the edit's amount whose moves keep every limit
    that concerns these handles (0: the part is already at or past a limit)."""
    moved = {s.point for s in handles}
    limits = [lim for lim in rule.limits if lim.point in moved or lim.origin in moved]
    if not limits:
        return 1.0

    def within(f: float) -> bool:
        positions = dict(keypoints)
        for s, (dx, dy) in zip(handles, _moves(handles, edit, direction, keypoints, ref, f), strict=True):
            positions[s.point] = Point(keypoints[s.point].x + dx, keypoints[s.point].y + dy)
        # A limit already passed before the move only forbids going further.
        return all(lim.value(positions, ref) <= max(lim.max, lim.value(keypoints, ref)) + 1e-9 for lim in limits)

    if within(1.0):
        return 1.0
    if not within(1e-3):
        return 0.0
    lo, hi = 0.0, 1.0  # moves grow with the amount, so the limit is crossed once: bisect for it
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if within(mid) else (lo, mid)
    return lo


def _inside(p: Point, size: tuple[int, int]) -> bool:
    w, h = size
    return 0.0 <= p.x <= w - 1 and 0.0 <= p.y <= h - 1


def _clip(p: Point, size: tuple[int, int]) -> Point:
    w, h = size
    return Point(min(max(p.x, 0.0), w - 1.0), min(max(p.y, 0.0), h - 1.0))


def _fmt(p: Point) -> str:
    return f"({p.x:.0f}, {p.y:.0f})"


def plan(
    edits: list[EditIntent], keypoints: dict[str, Point], size: tuple[int, int], rules: Rules | None = None
) -> Plan:
    """Handle and target points (and the region that may move) for a list of edits.

    Raises RulesError when an edit names a part or action the rules do not
    know, or a keypoint the rules need was not found.
    """
    rules = rules or default_rules()
    w, h = size
    if w <= 0 or h <= 0:
        raise RulesError(f"image size {size} is not positive; pass the generator's output size.")
    warnings: list[str] = []
    offsets: dict[str, list[float]] = {}  # keypoint name -> summed displacement [dx, dy]
    explicit: list[tuple[str, DragPair]] = []
    rects: list[Rect] = []
    whole_image = False
    ref: float | None = None

    for edit in edits:
        if edit.handle is not None:
            whole_image = True
            if not _inside(edit.handle, size):
                raise RulesError(
                    f"the point {_fmt(edit.handle)} is outside the {w}x{h} image; "
                    f"pick x in 0..{w - 1} and y in 0..{h - 1}."
                )
            target = edit.target
            if target is None:
                if edit.pixels is not None:
                    step = float(edit.pixels)
                else:
                    try:
                        step = POINT_STEP_REFERENCE * reference_length(rules, keypoints) * edit.amount
                    except RulesError:
                        step = POINT_STEP_IMAGE * min(w, h) * edit.amount
                ux, uy = DIRECTION_VECTORS[edit.direction or "up"]
                target = Point(edit.handle.x + ux * step, edit.handle.y + uy * step)
            explicit.append((f"point {len(explicit) + 1}", DragPair(edit.handle, target)))
            continue

        part = edit.part
        if part is None or part not in rules.parts:
            raise RulesError(rules.unknown_part_message(part or "part named"))
        resolved = rules.resolve(edit.action, part, edit.direction)
        if resolved is None:
            raise RulesError(
                f"this model has no rule to {edit.action} the {part}; for the {part} say: {rules.describe_part(part)}."
            )
        rule, direction = resolved
        if rule.directions:
            direction = direction or rule.default_direction
            if direction is None:
                raise RulesError(f"say which way to {rule.action} the {part}: {_join_or(list(rule.directions))}.")
            if direction not in rule.directions:
                raise RulesError(
                    f"'{rule.action} the {part} {direction}' is not known; say {_join_or(list(rule.directions))}."
                )
        spec = rules.parts[part]
        side = edit.side
        if side is not None and not spec.sided:
            warnings.append(f"the {part} has no left or right; '{side}' was ignored.")
            side = None
        if ref is None:
            ref = reference_length(rules, keypoints)
        handles = [s for s in rule.handles if side is None or s.side in (None, side)]
        for s in handles:
            missing = [n for n in s.keypoints() if n not in keypoints]
            if missing:
                where = "face" if rules.name == "face" else "image"
                raise RulesError(
                    f"I can't find the {part} on this {where}: no {missing[0]} keypoint was found; "
                    "try another image or an explicit drag such as 'drag 30,40 to 50,60'."
                )
        moves = _moves(handles, edit, direction, keypoints, ref)
        # A distance the user named is taken as said; otherwise the move stops at the part's limits.
        if rule.limits and edit.pixels is None:
            f = _limit_factor(rule, handles, edit, direction, keypoints, ref)
            if f < 1.0:
                moves = _moves(handles, edit, direction, keypoints, ref, f)
                visible = max(math.hypot(dx, dy) for dx, dy in moves) >= MIN_PAIR_PIXELS
                warnings.append(
                    f"this model draws the {part} no further: moved {f:.0%} of the usual amount."
                    if visible
                    else f"this model draws the {part} no further that way."
                )
        if edit.pixels is not None:
            longest = max((math.hypot(dx, dy) for dx, dy in moves), default=0.0)
            if longest > 0:
                f = float(edit.pixels) / longest
                moves = [(dx * f, dy * f) for dx, dy in moves]
        rule_points: list[tuple[Point, Point]] = []
        for s, (dx, dy) in zip(handles, moves, strict=True):
            acc = offsets.setdefault(s.point, [0.0, 0.0])
            acc[0] += dx
            acc[1] += dy
            p = keypoints[s.point]
            rule_points.append((p, Point(p.x + dx, p.y + dy)))
        if not rule.mask:
            whole_image = True
        else:
            rects.extend(_mask_rects(rule, rule_points, keypoints, ref * rules.mask_margin, size))

    pairs: list[DragPair] = []
    names: list[str] = []
    for name, (dx, dy) in offsets.items():
        if math.hypot(dx, dy) < MIN_PAIR_PIXELS:
            warnings.append(f"{name} is already (within a pixel) where this command would put it.")
            continue
        handle = keypoints[name]
        pairs.append(DragPair(handle, Point(handle.x + dx, handle.y + dy)))
        names.append(name)
    pairs = _separate_handles(pairs)
    for name, pair in explicit:
        pairs.append(pair)
        names.append(name)

    for i, (name, pair) in enumerate(zip(names, pairs, strict=True)):
        if not _inside(pair.target, size):
            clipped = _clip(pair.target, size)
            warnings.append(
                f"the target of {name} {_fmt(pair.target)} was outside the {w}x{h} image "
                f"and was moved to its edge {_fmt(clipped)}."
            )
            pairs[i] = DragPair(pair.handle, clipped)
    if not pairs and edits:
        warnings.append("nothing needs to move for this command.")
    mask = None if whole_image or not rects else _merge_rects(rects)
    return Plan(pairs=pairs, mask=mask, warnings=warnings, names=names, size=(w, h))


def _separate_handles(pairs: list[DragPair], min_gap: float = MIN_HANDLE_GAP) -> list[DragPair]:
    """Move apart handles that sit on one spot but are sent different ways.

    The lips of a closed mouth (or the lids of a closed eye) are one point in
    the image: both handles would start on the same pixel, share one tracked
    feature and pull it in opposite directions, so the drag could never open
    them. Each such handle starts instead a little way along its own move, on
    its side of the line (the lip or lid it stands for), with its target
    shifted by the same amount, so that the commanded displacement is kept.
    """
    out = list(pairs)
    for i in range(len(out)):
        for j in range(i + 1, len(out)):
            a, b = out[i], out[j]
            gap = math.hypot(a.handle.x - b.handle.x, a.handle.y - b.handle.y)
            ua, ub = _unit(a), _unit(b)
            if gap >= min_gap or ua is None or ub is None:
                continue
            spread = math.hypot(ua[0] - ub[0], ua[1] - ub[1])  # how fast the two handles part per unit shift
            if spread < 0.5:  # moving (nearly) the same way: one feature may carry both
                continue
            shift = (min_gap - gap) / spread
            out[i] = DragPair(
                Point(a.handle.x + ua[0] * shift, a.handle.y + ua[1] * shift),
                Point(a.target.x + ua[0] * shift, a.target.y + ua[1] * shift),
            )
            out[j] = DragPair(
                Point(b.handle.x + ub[0] * shift, b.handle.y + ub[1] * shift),
                Point(b.target.x + ub[0] * shift, b.target.y + ub[1] * shift),
            )
    return out


def _unit(pair: DragPair) -> tuple[float, float] | None:
    dx, dy = pair.target.x - pair.handle.x, pair.target.y - pair.handle.y
    n = math.hypot(dx, dy)
    return None if n == 0 else (dx / n, dy / n)


def _mask_rects(
    rule: Rule, moves: list[tuple[Point, Point]], keypoints: dict[str, Point], margin: float, size: tuple[int, int]
) -> list[Rect]:
    """Rectangles of the rule's mask groups that hold at least one moving handle.

    Each rectangle also covers the targets of its handles, since the region
    that may change must include where the handles go.
    """
    w, h = size
    out: list[Rect] = []
    boxes = []
    for group in rule.mask:
        pts = [keypoints[n] for n in group if n in keypoints]
        if not pts:
            continue
        boxes.append(
            [
                min(p.x for p in pts) - margin,
                min(p.y for p in pts) - margin,
                max(p.x for p in pts) + margin,
                max(p.y for p in pts) + margin,
            ]
        )
    for box in boxes:
        inside = [(p, t) for p, t in moves if box[0] <= p.x <= box[2] and box[1] <= p.y <= box[3]]
        if not inside:
            continue
        for _, t in inside:
            box = [
                min(box[0], t.x - margin),
                min(box[1], t.y - margin),
                max(box[2], t.x + margin),
                max(box[3], t.y + margin),
            ]
        x0, y0 = max(0, int(math.floor(box[0]))), max(0, int(math.floor(box[1])))
        x1, y1 = min(w, int(math.ceil(box[2])) + 1), min(h, int(math.ceil(box[3])) + 1)
        if x1 > x0 and y1 > y0:
            out.append((x0, y0, x1, y1))
    # A handle outside every group (a rules-file slip) would otherwise be frozen.
    covered = {id(m) for m in moves for b in out if b[0] <= m[0].x < b[2] and b[1] <= m[0].y < b[3]}
    for m in moves:
        if id(m) not in covered:
            p, t = m
            x0, y0 = max(0, int(min(p.x, t.x) - margin)), max(0, int(min(p.y, t.y) - margin))
            x1, y1 = min(w, int(max(p.x, t.x) + margin) + 1), min(h, int(max(p.y, t.y) + margin) + 1)
            if x1 > x0 and y1 > y0:
                out.append((x0, y0, x1, y1))
    return out


def _merge_rects(rects: list[Rect]) -> list[Rect]:
    """Drop duplicates and rectangles contained in another one."""
    uniq = sorted(set(rects))
    keep = []
    for r in uniq:
        if any(o != r and o[0] <= r[0] and o[1] <= r[1] and o[2] >= r[2] and o[3] >= r[3] for o in uniq):
            continue
        keep.append(r)
    return keep
