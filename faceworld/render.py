"""A procedural world of stylised faces whose true keypoints and attributes are known.

Every image is drawn from a `FaceParams` (a flat vector of floats) with Pillow
at `SUPERSAMPLE` times the output size and box-filtered down, so edges are
anti-aliased and the result is deterministic. All geometry is built in *head
units* (the head's half-width is about 1, y down, origin at the head centre),
then mapped to pixels by one transform that the keypoints share with the
drawing:

1. turn (2.5-D yaw): a point on the face sits on an ellipsoid; its depth
   z decides how far it slides sideways, so the far side compresses and the
   nose tip (which stands out of the surface) slides further than its root;
2. tilt (roll) about the head centre;
3. scale to pixels and shift.

Silhouette shapes (head outline, hair outline, neck, shoulders) do not slide
with the turn, as the silhouette of a head turning about its vertical axis
barely changes. Keypoints are in output pixels with pixel centres at integer
coordinates (the `engine.types.Point` contract).

"Left" always means the viewer's left (smaller x).
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, fields

import numpy as np
from PIL import Image, ImageDraw

from engine.types import Point

# Drawing happens at this multiple of the output size. 2x looked as clean as
# 3x and 4x at 128 px side by side and keeps rendering above 300 images/s.
SUPERSAMPLE = 2

KEYPOINT_NAMES: tuple[str, ...] = (
    "head_top",
    "chin",
    "left_ear_tip",
    "right_ear_tip",
    "left_ear_base",
    "right_ear_base",
    "left_brow",
    "right_brow",
    "left_eye_top",
    "left_eye_bottom",
    "left_eye_center",
    "right_eye_top",
    "right_eye_bottom",
    "right_eye_center",
    "nose_root",
    "nose_tip",
    "upper_lip",
    "lower_lip",
    "mouth_left",
    "mouth_right",
)

# Pose ranges, in the units the parameters are scaled to.
MAX_TURN_RAD = 0.45
MAX_TILT_RAD = 0.22
MAX_SHIFT_FRACTION = 0.06  # of the image size
HEAD_UNIT_FRACTION = 0.265  # pixels per head unit, as a fraction of the image size
HEAD_CENTER_Y_FRACTION = 0.48
HAIR_STYLES = ("bald", "short", "fringe", "long")


@dataclass
class FaceParams:
    """Every attribute of one face. Ranges are the ones `sample_params` draws from.

    Signed attributes are in [-1, 1]; the others are in [0, 1].
    """

    head_width: float = 0.5  # [0, 1]: narrow .. wide
    head_height: float = 0.5  # [0, 1]: short .. tall
    jaw: float = 0.5  # [0, 1]: round .. pointed chin
    skin_tone: float = 0.3  # [0, 1]: light .. dark
    eye_open_left: float = 1.0  # [0, 1]: closed .. wide open (viewer's left eye)
    eye_open_right: float = 1.0  # [0, 1]
    eye_size: float = 0.5  # [0, 1]
    iris_color: float = 0.0  # [0, 1]: brown, hazel, green, blue, grey
    brow_raise: float = 0.0  # [-1, 1]: lowered .. raised
    nose_length: float = 0.5  # [0, 1]: short .. long
    mouth_open: float = 0.0  # [0, 1]: closed .. wide open
    mouth_smile: float = 0.0  # [-1, 1]: frown .. smile
    mouth_width: float = 0.5  # [0, 1]: narrow .. wide
    ear_raise_left: float = 0.0  # [-1, 1]: dropped .. raised (viewer's left ear)
    ear_raise_right: float = 0.0  # [-1, 1]
    shift_x: float = 0.0  # [-1, 1]: whole figure left .. right
    shift_y: float = 0.0  # [-1, 1]: whole figure up .. down
    tilt: float = 0.0  # [-1, 1]: head rolled counter-clockwise .. clockwise on screen
    turn: float = 0.0  # [-1, 1]: face turned to the viewer's left .. right
    hair_style: float = 0.4  # [0, 1): bald, short, fringe, long in equal quarters
    hair_color: float = 0.2  # [0, 1]: black, brown, auburn, blond, grey
    bg_hue: float = 0.6  # [0, 1]
    bg_light: float = 0.5  # [0, 1]: darker .. lighter background
    bg_gradient: float = 0.0  # [-1, 1]: top lighter .. plain (0) .. top darker
    shirt_hue: float = 0.0  # [0, 1]

    def to_vector(self) -> np.ndarray:
        return np.array([getattr(self, n) for n in ATTRIBUTE_NAMES], dtype=np.float32)

    @classmethod
    def from_vector(cls, vector: np.ndarray | list[float]) -> FaceParams:
        values = [float(v) for v in vector]
        if len(values) != len(ATTRIBUTE_NAMES):
            raise ValueError(f"expected {len(ATTRIBUTE_NAMES)} values, got {len(values)}")
        return cls(*values)


ATTRIBUTE_NAMES: tuple[str, ...] = tuple(f.name for f in fields(FaceParams))
SIGNED_ATTRIBUTES: frozenset[str] = frozenset(
    {
        "brow_raise",
        "mouth_smile",
        "ear_raise_left",
        "ear_raise_right",
        "shift_x",
        "shift_y",
        "tilt",
        "turn",
        "bg_gradient",
    }
)


@dataclass
class RenderResult:
    image: Image.Image  # RGB, size x size
    keypoints: dict[str, Point]
    attributes: dict[str, float]


def _mostly_open(rng: np.random.Generator) -> float:
    # Closed and half-closed states must be common enough for a generator
    # trained on this world to be able to reach them by dragging.
    u = rng.random()
    if u < 0.15:
        return float(rng.uniform(0.0, 0.1))
    if u < 0.35:
        return float(rng.uniform(0.1, 0.7))
    return float(rng.uniform(0.7, 1.0))


def sample_params(rng: np.random.Generator) -> FaceParams:
    """Draw one random face; the distribution is the training distribution."""
    u = rng.random()
    mouth_open = 0.0 if u < 0.35 else float(rng.uniform(0.0, 1.0))
    return FaceParams(
        head_width=float(rng.random()),
        head_height=float(rng.random()),
        jaw=float(rng.random()),
        skin_tone=float(rng.random()),
        eye_open_left=_mostly_open(rng),
        eye_open_right=_mostly_open(rng),
        eye_size=float(rng.random()),
        iris_color=float(rng.random()),
        brow_raise=float(rng.uniform(-1, 1)),
        nose_length=float(rng.random()),
        mouth_open=mouth_open,
        mouth_smile=float(rng.uniform(-1, 1)),
        mouth_width=float(rng.random()),
        ear_raise_left=float(rng.uniform(-1, 1)),
        ear_raise_right=float(rng.uniform(-1, 1)),
        shift_x=float(rng.uniform(-1, 1)),
        shift_y=float(rng.uniform(-1, 1)),
        tilt=float(rng.uniform(-1, 1)),
        turn=float(rng.uniform(-1, 1)),
        hair_style=float(rng.random()),
        hair_color=float(rng.random()),
        bg_hue=float(rng.random()),
        bg_light=float(rng.random()),
        bg_gradient=float(rng.uniform(-1, 1)) if rng.random() < 0.6 else 0.0,
        shirt_hue=float(rng.random()),
    )


# ---------------------------------------------------------------- colours

_SKIN = np.array(
    [(250, 222, 196), (238, 192, 152), (218, 165, 120), (188, 128, 86), (140, 90, 60), (96, 62, 44)], dtype=np.float64
)
_HAIR = np.array(
    [(28, 24, 24), (72, 46, 30), (122, 76, 42), (150, 72, 38), (214, 178, 108), (168, 166, 162)], dtype=np.float64
)
_IRIS = np.array([(92, 60, 36), (122, 100, 52), (66, 118, 78), (70, 112, 172), (120, 130, 140)], dtype=np.float64)


def _ramp(palette: np.ndarray, t: float) -> np.ndarray:
    pos = min(max(t, 0.0), 1.0) * (len(palette) - 1)
    i = min(int(pos), len(palette) - 2)
    f = pos - i
    return palette[i] * (1 - f) + palette[i + 1] * f


def _rgb(c: np.ndarray) -> tuple[int, ...]:
    return tuple((c + 0.5).astype(np.int64).tolist())


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v)) * 255.0


# ---------------------------------------------------------------- geometry


@dataclass
class _Frame:
    """The transform from head units to supersampled pixels (see the module docstring)."""

    a: float  # head half-width (head units)
    b: float  # head half-height
    cos_turn: float
    sin_turn: float
    cos_tilt: float
    sin_tilt: float
    unit: float  # output pixels per head unit
    cx: float  # head centre, output pixels
    cy: float
    body_cx: float
    body_cy: float
    ss: int

    def __post_init__(self) -> None:
        self.inv_a2 = 1.0 / self.a**2
        self.inv_b2 = 1.0 / self.b**2
        self.u_cos = self.unit * self.cos_tilt
        self.u_sin = self.unit * self.sin_tilt

    def to_pixels(self, x: np.ndarray, y: np.ndarray, dz: np.ndarray | float = 0.0, turn: bool = True) -> np.ndarray:
        """Head units -> output pixels, [N, 2]."""
        if turn:
            # Face surface of an ellipsoid whose horizontal sections are circles.
            z = self.a * np.sqrt(np.maximum(1.0 - x * x * self.inv_a2 - y * y * self.inv_b2, 0.0)) + dz
            x = x * self.cos_turn + z * self.sin_turn
        out = np.empty((len(x), 2))
        out[:, 0] = self.cx + (x * self.u_cos - y * self.u_sin)
        out[:, 1] = self.cy + (x * self.u_sin + y * self.u_cos)
        return out

    def body_to_pixels(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        # The neck and shoulders shift with the head but neither tilt nor turn.
        out = np.empty((len(x), 2))
        out[:, 0] = self.body_cx + self.unit * x
        out[:, 1] = self.body_cy + self.unit * y
        return out

    def ss_poly(self, pts: np.ndarray) -> list[float]:
        """Output pixels -> flat supersampled drawing coordinates.

        Output pixel i averages supersampled pixels i*ss .. i*ss+ss-1, whose
        centre is at i*ss + (ss-1)/2.
        """
        return (pts * self.ss + (self.ss - 1) / 2.0).ravel().tolist()


def _silhouette_half_width(fr: _Frame, y: float) -> float:
    return fr.a * math.sqrt(max(0.0, 1.0 - (y / fr.b) ** 2))


# Sample positions used by every render, computed once.
_HEAD_T = np.linspace(0.0, 2.0 * np.pi, 48, endpoint=False)
_TOP_T = np.linspace(np.pi, 2.0 * np.pi, 20)
_CAP_T = np.linspace(np.pi * 1.04, np.pi * 1.96, 22)
_HAIRLINE_U = np.linspace(1.0, -1.0, 15)
_EAR_TAU = np.linspace(0.0, 1.0, 12)
_EAR_PROFILE = np.sin(np.pi * _EAR_TAU**0.75) * (1.0 - 0.25 * _EAR_TAU)
_EAR_INNER_PROFILE = np.sin(np.pi * _EAR_TAU**0.8) * 0.45
_BROW_U = np.linspace(-1.0, 1.0, 11)
_EYE_T = np.linspace(0.0, 1.0, 13)
_EYE_BUMP = np.sin(np.pi * _EYE_T)
_CIRCLE = np.linspace(0.0, 2.0 * np.pi, 20, endpoint=False)
_CIRCLE_COS, _CIRCLE_SIN = np.cos(_CIRCLE), np.sin(_CIRCLE)
_NOSE_S = np.linspace(0.0, 1.0, 8)
_NOSE_ANG = np.linspace(0.0, np.pi, 9)[1:-1]
_MOUTH_U = np.linspace(-1.0, 1.0, 17)
_MOUTH_ROUND = np.sqrt(1.0 - _MOUTH_U**2)
_MOUTH_SHAPE = (1.0 - _MOUTH_U**2) ** 0.8
_UPPER_TEETH = np.abs(_MOUTH_U) < 0.78
_LOWER_TEETH = np.abs(_MOUTH_U) < 0.6

_CAVITY = np.array([70.0, 22.0, 28.0])
_TONGUE = np.array([196.0, 92.0, 100.0])
_TEETH = np.array([246.0, 244.0, 234.0])
_EYE_WHITE = np.array([248.0, 248.0, 244.0])
_PUPIL = np.array([14.0, 14.0, 18.0])
_LID_LINE = np.array([42.0, 30.0, 30.0])


def _cat(*parts: np.ndarray) -> np.ndarray:
    return np.concatenate(parts)


def render(params: FaceParams, size: int = 128) -> RenderResult:
    """Draw one face and return its image, true keypoints and attributes."""
    p = params
    ss = SUPERSAMPLE
    big = size * ss
    unit = size * HEAD_UNIT_FRACTION
    px128 = ss * size / 128.0  # supersampled pixels per output pixel at 128 px
    turn = p.turn * MAX_TURN_RAD
    tilt = p.tilt * MAX_TILT_RAD
    shift_x = p.shift_x * MAX_SHIFT_FRACTION * size
    shift_y = p.shift_y * MAX_SHIFT_FRACTION * size
    cx = (size - 1) / 2.0 + shift_x
    # Pixel centres sit at integers, so the image spans [-0.5, size - 0.5].
    cy = size * HEAD_CENTER_Y_FRACTION - 0.5 + shift_y
    fr = _Frame(
        a=0.9 + 0.2 * p.head_width,
        b=1.12 + 0.2 * p.head_height,
        cos_turn=math.cos(turn),
        sin_turn=math.sin(turn),
        cos_tilt=math.cos(tilt),
        sin_tilt=math.sin(tilt),
        unit=unit,
        cx=cx,
        cy=cy,
        body_cx=cx,
        body_cy=cy,
        ss=ss,
    )
    a, b = fr.a, fr.b
    # name -> (x, y, extra depth, follows the turn) in head units; mapped together at the end.
    kp: dict[str, tuple[float, float, float, bool]] = {}

    skin = _ramp(_SKIN, p.skin_tone)
    skin_shade = skin * 0.86
    skin_line = skin * 0.62
    hair = _ramp(_HAIR, p.hair_color)
    hair_line = hair * 0.7
    iris = _ramp(_IRIS, p.iris_color)
    bg_top = _hsv(p.bg_hue, 0.32, 0.55 + 0.35 * p.bg_light)
    bg_bottom = _hsv(p.bg_hue, 0.32, min(max(0.55 + 0.35 * p.bg_light - 0.3 * p.bg_gradient, 0.2), 1.0))
    shirt = _hsv(p.shirt_hue, 0.45, 0.62)
    lip = skin * np.array([0.80, 0.55, 0.55]) + np.array([30.0, 0.0, 0.0])
    lip_line = lip * 0.6

    # Background: a vertical two-tone gradient (plain when bg_gradient == 0),
    # built as one column and stretched, which is much faster than a full array.
    ramp = np.linspace(0.0, 1.0, big)[:, None]
    column = (bg_top[None, :] * (1 - ramp) + bg_bottom[None, :] * ramp + 0.5).astype(np.uint8)  # [H, 3]
    img = Image.fromarray(column[:, None, :], "RGB").resize((big, big), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(img)
    lw = max(1, int(round(0.7 * px128)))  # outline width, about 0.7 output px at 128

    def poly(pts: np.ndarray, colour: np.ndarray, outline: np.ndarray | None = None) -> None:
        if outline is None:
            draw.polygon(fr.ss_poly(pts), fill=_rgb(colour))
        else:
            draw.polygon(fr.ss_poly(pts), fill=_rgb(colour), outline=_rgb(outline), width=lw)

    def line(pts: np.ndarray, colour: np.ndarray, width_px: float) -> None:
        draw.line(fr.ss_poly(pts), fill=_rgb(colour), width=max(1, int(round(width_px * px128))), joint="curve")

    style = HAIR_STYLES[min(int(p.hair_style * len(HAIR_STYLES)), len(HAIR_STYLES) - 1)]

    # ---- long hair behind everything
    if style == "long":
        xs = _cat(np.array([-a * 1.18]), a * 1.14 * np.cos(_TOP_T), np.array([a * 1.18, a * 1.05, -a * 1.05]))
        ys = _cat(np.array([b * 0.95]), b * 1.1 * np.sin(_TOP_T) - 0.04, np.array([b * 0.95, b * 1.05, b * 1.05]))
        poly(fr.to_pixels(xs, ys, turn=False), hair, hair_line)

    # ---- neck and shoulders
    bottom = (size + abs(shift_y) + 4) / unit + 1.0
    neck_x = np.array([-0.38, 0.38, 0.42, -0.42]) * a
    neck_y = np.array([0.5 * b, 0.5 * b, b + 0.55, b + 0.55])
    poly(fr.body_to_pixels(neck_x, neck_y), skin_shade)
    sh_y = b + 0.42
    shoulder_x = np.array([-2.6, -2.3, -1.5, -0.5, 0.0, 0.5, 1.5, 2.3, 2.6])
    shoulder_y = np.array([bottom, sh_y + 0.55, sh_y + 0.18, sh_y, sh_y + 0.12, sh_y, sh_y + 0.18, sh_y + 0.55, bottom])
    poly(fr.body_to_pixels(shoulder_x, shoulder_y), shirt, shirt * 0.7)

    # ---- ears (behind the head): a leaf from inside the head out to a pointed tip
    ear_y = -0.02
    ear_len = 0.5
    ear_w = 0.17
    start = -0.35 * ear_len
    along = start + (ear_len - start) * _EAR_TAU
    along_i = start + (ear_len - start) * (0.15 + 0.6 * _EAR_TAU)
    for side, raise_, name in ((-1.0, p.ear_raise_left, "left"), (1.0, p.ear_raise_right, "right")):
        base_x = side * _silhouette_half_width(fr, ear_y)
        ang = 0.62 + 0.5 * raise_  # radians above horizontal, pointing outward
        # The ear on the side the face turns away from shows less of itself.
        reach = 1.0 + side * fr.sin_turn * 0.9
        dx, dy = side * math.cos(ang) * reach, -math.sin(ang)
        nx, ny = -dy, dx  # normal to the ear axis
        w_a = _EAR_PROFILE * ear_w
        w_b = _EAR_PROFILE[::-1] * ear_w * 0.55
        ex_o = _cat(base_x + along * dx + w_a * nx, base_x + along[::-1] * dx - w_b * nx)
        ey_o = _cat(ear_y + along * dy + w_a * ny, ear_y + along[::-1] * dy - w_b * ny)
        poly(fr.to_pixels(ex_o, ey_o, turn=False), skin, skin_line)
        w_i = _EAR_INNER_PROFILE * ear_w
        ix = _cat(base_x + along_i * dx + w_i * nx, (base_x + along_i * dx)[::-1])
        iy = _cat(ear_y + along_i * dy + w_i * ny, (ear_y + along_i * dy)[::-1])
        poly(fr.to_pixels(ix, iy, turn=False), skin_shade)
        kp[f"{name}_ear_tip"] = (base_x + ear_len * dx, ear_y + ear_len * dy, 0.0, False)
        kp[f"{name}_ear_base"] = (base_x, ear_y, 0.0, False)

    # ---- head
    sin_t = np.sin(_HEAD_T)
    narrow = 1.0 - (0.12 + 0.22 * p.jaw) * np.maximum(sin_t, 0.0) ** 2.5
    poly(fr.to_pixels(a * np.cos(_HEAD_T) * narrow, b * sin_t, turn=False), skin, skin_line)
    kp["chin"] = (0.0, b, 0.0, False)

    # ---- hair over the head: the outer edge is silhouette, the hairline lies on the face
    hair_top = 0.0
    if style != "bald":
        thick = {"short": 0.10, "fringe": 0.14, "long": 0.12}[style]
        hair_top = thick
        u = _HAIRLINE_U
        if style == "fringe":
            hy_l = -b * (0.42 + 0.08 * (u + 1)) - 0.05 * np.cos(u * 3.0) + 0.18 * np.maximum(-u, 0.0) ** 1.5
        else:
            hy_l = -b * 0.5 - 0.16 * (1 - u**2) + 0.22 * np.abs(u) ** 3
        back = fr.to_pixels(a * (1 + thick) * np.cos(_CAP_T), b * (1 + thick) * np.sin(_CAP_T), turn=False)
        front = fr.to_pixels(u * a * 0.97, hy_l)
        poly(_cat(back, front), hair, hair_line)
    kp["head_top"] = (0.0, -b * (1 + hair_top), 0.0, False)

    # ---- brows
    ey = -0.12
    ex = 0.40
    eye_scale = 0.9 + 0.3 * p.eye_size
    ew = 0.21 * eye_scale
    brow_y = ey - 0.26 * eye_scale - 0.09 * p.brow_raise
    u = _BROW_U
    arch = 0.05 * (1 - u**2)
    for side, name in ((-1.0, "left"), (1.0, "right")):
        bx = side * ex + u * 0.23
        top = brow_y - arch - 0.035 * (1 - 0.5 * u * side)
        bot = brow_y - arch + 0.035 * (1 - 0.5 * u * side) * (1 - 0.3 * np.abs(u))
        poly(fr.to_pixels(_cat(bx, bx[::-1]), _cat(top, bot[::-1])), hair * 0.85)
        kp[f"{name}_brow"] = (side * ex, brow_y - 0.05, 0.0, True)

    # ---- eyes
    h_up = 0.14 * eye_scale
    h_lo = 0.095 * eye_scale
    closed_bow = 0.025
    for side, openness, name in ((-1.0, p.eye_open_left, "left"), (1.0, p.eye_open_right, "right")):
        o = min(max(openness, 0.0), 1.0)
        ecx = side * ex
        xs = ecx - ew + 2 * ew * _EYE_T
        # Lids meet on a slightly bowed line when closed (eye_top == eye_bottom).
        k_up = -o * h_up + (1 - o) * closed_bow
        k_lo = o * h_lo + (1 - o) * closed_bow
        up = ey + k_up * _EYE_BUMP
        lo = ey + k_lo * _EYE_BUMP
        if o > 0.02:
            poly(fr.to_pixels(_cat(xs, xs[::-1]), _cat(up, lo[::-1])), _EYE_WHITE)
            # Iris and pupil are circles clipped to the lids: clamp y between the lid curves.
            for radius, colour in ((0.09 * eye_scale, iris), (0.045 * eye_scale, _PUPIL)):
                cxs = ecx + radius * _CIRCLE_COS
                cys = ey + 0.008 + radius * _CIRCLE_SIN
                bb = np.sin(np.pi * np.clip((cxs - (ecx - ew)) / (2 * ew), 0.0, 1.0))
                cys = np.minimum(np.maximum(cys, ey + k_up * bb), ey + k_lo * bb)
                poly(fr.to_pixels(cxs, cys), colour)
            if o > 0.35:
                g = fr.to_pixels(np.array([ecx + 0.04 * eye_scale]), np.array([ey - 0.035 * eye_scale]))[0]
                r = 0.018 * eye_scale * unit * ss
                gx, gy = g * ss + (ss - 1) / 2
                draw.ellipse([gx - r, gy - r, gx + r, gy + r], fill=(250, 250, 250))
            line(fr.to_pixels(xs, lo), _LID_LINE * 1.6, 0.55)
        line(fr.to_pixels(xs, up), _LID_LINE, 1.3)
        kp[f"{name}_eye_top"] = (ecx, ey + k_up, 0.0, True)
        kp[f"{name}_eye_bottom"] = (ecx, ey + k_lo, 0.0, True)
        kp[f"{name}_eye_center"] = (ecx, ey, 0.0, True)

    # ---- nose: a shaded wedge that stands out of the face, so its tip slides further on a turn
    nose_root_y = ey + 0.02
    nose_tip_y = 0.14 + 0.17 * p.nose_length
    protrude = 0.12 + 0.08 * p.nose_length
    s = _NOSE_S
    ny_ = nose_root_y + (nose_tip_y - nose_root_y) * s - 0.045 * s**2
    nw = 0.03 + 0.075 * s**2
    bx = 0.105 * np.cos(_NOSE_ANG)
    by = nose_tip_y - 0.045 + 0.045 * np.sin(_NOSE_ANG)
    ndz = _cat(protrude * s, protrude * (0.85 + 0.15 * np.sin(_NOSE_ANG)), protrude * s[::-1])
    poly(fr.to_pixels(_cat(nw, bx, -nw[::-1]), _cat(ny_, by, ny_[::-1]), ndz), skin_shade)
    nost = fr.to_pixels(np.array([-0.05, 0.05]), np.array([nose_tip_y - 0.025] * 2), protrude * 0.8) * ss + (ss - 1) / 2
    r = 0.017 * unit * ss
    for nxp, nyp in nost:
        draw.ellipse([nxp - r * 1.3, nyp - r, nxp + r * 1.3, nyp + r], fill=_rgb(skin_line * 0.8))
    kp["nose_root"] = (0.0, nose_root_y, 0.0, True)
    kp["nose_tip"] = (0.0, nose_tip_y, protrude, True)

    # ---- mouth: inner lip curves are parabolas through the corners; the gap is the opening
    my = 0.56
    mw = 0.22 + 0.13 * p.mouth_width
    o = min(max(p.mouth_open, 0.0), 1.0)
    corner_y = my - 0.075 * p.mouth_smile
    u = _MOUTH_U
    mx = u * mw
    up_in_mid = my - 0.08 * o
    lo_in_mid = my + 0.26 * o
    up_in = corner_y + (up_in_mid - corner_y) * _MOUTH_SHAPE
    lo_in = corner_y + (lo_in_mid - corner_y) * _MOUTH_SHAPE
    lip_dz = 0.03
    up_out = up_in - 0.055 * _MOUTH_ROUND - 0.012 * np.cos(u * 9.0) * (1 - u**2)
    lo_out = lo_in + 0.075 * _MOUTH_ROUND
    mxx = _cat(mx, mx[::-1])
    poly(fr.to_pixels(mxx, _cat(up_out, lo_out[::-1]), lip_dz), lip)
    if o > 0.01:
        poly(fr.to_pixels(mxx, _cat(up_in, lo_in[::-1]), lip_dz), _CAVITY)
        tx, t_up, t_lo = mx[_UPPER_TEETH], up_in[_UPPER_TEETH], lo_in[_UPPER_TEETH]
        txx = _cat(tx, tx[::-1])
        # Tongue: a mound resting on the lower lip, never above the upper lip line.
        mound = np.sqrt(np.maximum(1 - (tx / (0.7 * mw)) ** 2, 0.0))
        tongue_top = np.minimum(np.maximum(t_lo - 0.09 * o * mound, t_up + 0.02), t_lo)
        poly(fr.to_pixels(txx, _cat(tongue_top, t_lo[::-1]), lip_dz), _TONGUE)
        # Upper teeth hang from the upper lip; lower teeth stand on the lower lip once the mouth is wide.
        teeth_bot = np.minimum(t_up + 0.055, t_lo)
        poly(fr.to_pixels(txx, _cat(t_up, teeth_bot[::-1]), lip_dz), _TEETH)
        if o > 0.45:
            lx, l_lo = mx[_LOWER_TEETH], lo_in[_LOWER_TEETH]
            l_top = np.maximum(l_lo - 0.03, np.minimum(up_in[_LOWER_TEETH] + 0.055, l_lo))
            poly(fr.to_pixels(_cat(lx, lx[::-1]), _cat(l_top, l_lo[::-1]), lip_dz), _TEETH * 0.95)
    line(fr.to_pixels(mx, up_in, lip_dz), lip_line, 0.7)
    kp["upper_lip"] = (0.0, up_in_mid, lip_dz, True)
    kp["lower_lip"] = (0.0, lo_in_mid, lip_dz, True)
    kp["mouth_left"] = (-mw, corner_y, lip_dz, True)
    kp["mouth_right"] = (mw, corner_y, lip_dz, True)

    # All keypoints through the same transform as the pixels.
    k = np.array([kp[n] for n in KEYPOINT_NAMES], dtype=np.float64)  # [K, 4]
    turned = fr.to_pixels(k[:, 0], k[:, 1], k[:, 2], turn=True)
    flat = fr.to_pixels(k[:, 0], k[:, 1], turn=False)
    pts = np.where(k[:, 3:4] > 0.5, turned, flat)
    keypoints = {n: Point(float(x), float(y)) for n, (x, y) in zip(KEYPOINT_NAMES, pts.tolist(), strict=True)}

    out = img.reduce(ss) if ss > 1 else img
    return RenderResult(image=out, keypoints=keypoints, attributes={f: float(getattr(p, f)) for f in ATTRIBUTE_NAMES})


def render_seed(seed: int, size: int = 128) -> RenderResult:
    """The face of one seed: `render(sample_params(default_rng(seed)))`."""
    return render(sample_params(np.random.default_rng(seed)), size)


def render_batch(rng: np.random.Generator, n: int, size: int = 128) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n random faces for training loops.

    Returns images uint8 [n, H, W, 3], keypoints float32 [n, K, 2] in
    KEYPOINT_NAMES order, attributes float32 [n, A] in ATTRIBUTE_NAMES order.
    """
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    keypoints = np.empty((n, len(KEYPOINT_NAMES), 2), dtype=np.float32)
    attributes = np.empty((n, len(ATTRIBUTE_NAMES)), dtype=np.float32)
    for i in range(n):
        params = sample_params(rng)
        res = render(params, size)
        images[i] = np.asarray(res.image)
        keypoints[i] = [[res.keypoints[k].x, res.keypoints[k].y] for k in KEYPOINT_NAMES]
        attributes[i] = params.to_vector()
    return images, keypoints, attributes


def grid(results: list[RenderResult], columns: int = 4, draw_points: bool = False) -> Image.Image:
    """Tile renders into one image (for looking at the world); optionally mark the keypoints."""
    size = results[0].image.size[0]
    rows = (len(results) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * size, rows * size), (0, 0, 0))
    for i, res in enumerate(results):
        tile = res.image.copy()
        if draw_points:
            d = ImageDraw.Draw(tile)
            for pt in res.keypoints.values():
                d.point((round(pt.x), round(pt.y)), fill=(255, 0, 255))
        sheet.paste(tile, ((i % columns) * size, (i // columns) * size))
    return sheet
