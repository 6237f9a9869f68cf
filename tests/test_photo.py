"""A user's own photo (`voicedrag.photo`): reading any image safely, and framing the face on it.

The framing is measured on face-world faces placed in larger photos with Pillow (moved, scaled,
turned, saved as JPEG), whose true keypoints follow from the placement.
"""
from __future__ import annotations

import io
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.errors import UserError
from engine.types import Point
from faceworld.render import FaceParams, render, sample_params
from keypoints.align import AlignmentError, align_from_keypoints, faceworld_template
from keypoints.detector import embedded_weights
from voicedrag.photo import (
    MAX_PHOTO_SIDE,
    FramedPhoto,
    PhotoError,
    frame_photo,
    load_photo,
    photo_hash,
)

HAS_DETECTOR = embedded_weights().is_file()
needs_detector = pytest.mark.skipif(not HAS_DETECTOR, reason="the embedded keypoint model is not in this checkout")
TEMPLATE = faceworld_template(128)


# ------------------------------------------------------------ reading


def png_bytes(width: int, height: int, depth: int, colour: int, rows: bytes) -> bytes:
    """A PNG written by hand: for 16-bit colour (Pillow writes none) and for headers that lie."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def test_exif_rotation_is_honoured(tmp_path: Path) -> None:
    stored = np.zeros((20, 40, 3), dtype=np.uint8)
    stored[:, :20] = (255, 0, 0)  # left half red, as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90 degrees clockwise to view"
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, quality=95, exif=exif)
    photo = load_photo(path)
    assert photo.rgb.shape == (40, 20, 3) and photo.size == (20, 40)
    assert photo.rgb[5, 10, 0] > 200 and photo.rgb[35, 10, 0] < 60  # the red half is now on top
    assert any("EXIF orientation (6)" in n for n in photo.notes)


def test_sixteen_bit_grey_and_colour(tmp_path: Path) -> None:
    grey = (np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 64)
    grey[0, 0], grey[0, 1] = 65535, 257 * 100 + 128
    Image.fromarray(grey).save(tmp_path / "grey16.png")
    photo = load_photo(tmp_path / "grey16.png")
    assert photo.mode == "I;16" and photo.rgb.dtype == np.uint8 and photo.rgb.shape == (32, 32, 3)
    assert photo.rgb[0, 0].tolist() == [255, 255, 255] and photo.rgb[0, 1].tolist() == [100] * 3  # scaled, not clipped
    assert np.array_equal(photo.rgb[..., 1:], photo.rgb[..., :2])
    assert any("16-bit grey" in n for n in photo.notes)

    rgb16 = np.random.default_rng(0).integers(0, 65536, (8, 8, 3)).astype(np.uint16)
    rows = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(8))
    (tmp_path / "rgb16.png").write_bytes(png_bytes(8, 8, 16, 2, rows))
    photo = load_photo(tmp_path / "rgb16.png")
    assert np.array_equal(photo.rgb, (rgb16 >> 8).astype(np.uint8))
    assert "16-bit colour was reduced to 8 bits" in photo.notes


def test_grey_palette_and_cmyk_become_rgb_with_a_note(tmp_path: Path) -> None:
    grey = np.random.default_rng(1).integers(0, 256, (16, 24), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    photo = load_photo(tmp_path / "grey.png")
    assert photo.mode == "L" and all(np.array_equal(photo.rgb[..., c], grey) for c in range(3))
    assert photo.notes == ["grey was repeated over three channels"]

    rgb = np.random.default_rng(2).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    Image.fromarray(rgb).quantize(16).save(tmp_path / "palette.png")
    photo = load_photo(tmp_path / "palette.png")
    assert photo.mode == "P" and photo.rgb.shape == (16, 24, 3)
    assert photo.notes == ["palette colours were expanded to RGB"]

    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "print.jpg")
    photo = load_photo(tmp_path / "print.jpg")
    assert photo.mode == "CMYK" and photo.format == "JPEG" and photo.rgb.shape == (16, 24, 3)
    assert "CMYK was converted to RGB" in photo.notes[0]

    Image.fromarray(grey).convert("1").save(tmp_path / "bw.png")
    assert load_photo(tmp_path / "bw.png").notes == ["black-and-white pixels were made RGB"]

    frames = [Image.fromarray(np.full((8, 8, 3), 40 * i, dtype=np.uint8)) for i in range(3)]
    frames[0].save(tmp_path / "moving.gif", save_all=True, append_images=frames[1:])
    photo = load_photo(tmp_path / "moving.gif")
    assert photo.notes[0] == "the first of its frames was used" and (photo.rgb == 0).all()


def test_transparency_is_put_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((10, 10, 4), dtype=np.uint8)
    rgba[..., :3] = (0, 0, 200)
    rgba[:, :5, 3] = 255  # left half opaque blue
    rgba[:, 5:, 3] = 0  # right half fully transparent
    rgba[0, 0, 3] = 128  # one half-transparent pixel
    Image.fromarray(rgba).save(tmp_path / "cutout.png")
    photo = load_photo(tmp_path / "cutout.png")
    assert photo.mode == "RGBA"
    assert photo.rgb[5, 2].tolist() == [0, 0, 200] and photo.rgb[5, 8].tolist() == [255, 255, 255]
    assert photo.rgb[0, 0].tolist() == pytest.approx([127, 127, 227], abs=1)
    assert photo.notes == ["transparent parts were put on white"]

    opaque = rgba.copy()
    opaque[..., 3] = 255
    Image.fromarray(opaque).save(tmp_path / "opaque.png")
    assert load_photo(tmp_path / "opaque.png").notes == []  # nothing to say: no pixel was transparent

    pal = Image.fromarray(rgba[..., :3]).quantize(4)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "pal.png", transparency=0)
    photo = load_photo(tmp_path / "pal.png")
    assert photo.notes == ["palette colours were expanded to RGB", "transparent parts were put on white"]
    assert (photo.rgb == 255).all(axis=2).any()


def test_files_that_are_no_photo_are_refused_in_a_sentence(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("this is not a picture\n")
    (tmp_path / "folder.png").mkdir()
    good = io.BytesIO()
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(good, "PNG")
    (tmp_path / "cut.png").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    cases = {
        "notes.png": "is not an image; pass a photo such as a JPEG or PNG.",
        "folder.png": "is a folder; pass a photo file.",
        "missing.jpg": "check the path.",
        "cut.png": "is damaged or not an image Pillow can read safely; pass a photo such as a JPEG or PNG.",
    }
    for name, ending in cases.items():
        with pytest.raises(PhotoError) as err:
            load_photo(tmp_path / name)
        msg = str(err.value)
        assert msg.endswith(ending) and msg.count(". ") == 0 and "\n" not in msg, msg
    with pytest.raises(PhotoError, match="^no photo at"):
        load_photo(tmp_path / "missing.jpg")


def test_bombs_are_refused_before_they_are_decoded(tmp_path: Path) -> None:
    # A header that claims 65535 x 65535 over a few bytes of data: Pillow's own bomb check.
    (tmp_path / "claims.png").write_bytes(png_bytes(65535, 65535, 8, 2, b"\x00" * 16))
    with pytest.raises(PhotoError, match="too large to decode safely; scale it down first"):
        load_photo(tmp_path / "claims.png")
    # Real but larger than voicedrag reads: a side over the limit, and 49 MP on small sides.
    Image.new("1", (MAX_PHOTO_SIDE + 8, 16)).save(tmp_path / "wide.png")
    Image.new("1", (7000, 7000)).save(tmp_path / "huge.png")
    for name, size in (("wide.png", f"{MAX_PHOTO_SIDE + 8} x 16"), ("huge.png", "7000 x 7000")):
        with pytest.raises(PhotoError) as err:
            load_photo(tmp_path / name)
        assert f"is {size} pixels, more than voicedrag reads" in str(err.value)
        assert str(err.value).endswith("scale it down first.")


def test_photo_hash_names_the_pixels_and_their_shape() -> None:
    rgb = np.random.default_rng(4).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    h = photo_hash(rgb)
    assert len(h) == 64 and h == photo_hash(rgb.copy()) and h == photo_hash(np.asfortranarray(rgb))
    other = rgb.copy()
    other[5, 7, 2] ^= 1
    assert photo_hash(other) != h
    assert photo_hash(rgb.reshape(8, 6, 3)) != h  # the same bytes in another shape
    with pytest.raises(UserError):
        photo_hash(rgb.astype(np.float32))


# ------------------------------------------------------------ framing


def place(seed: int, k: float = 1.5) -> tuple[np.ndarray, dict[str, Point]]:
    """A face-world face in a larger photo: drawn at k x the model's size, moved up to 15% of
    its size, scaled 0.8-1.25, turned up to 10 degrees (Pillow), saved as JPEG quality 70. Returns
    the photo and the face's true keypoints in it."""
    rng = np.random.default_rng(1000 + seed)
    size = round(128 * k)
    face = render(sample_params(np.random.default_rng(seed)), size)
    pad = size  # the render's own borders continue (edge pixels) so the photo has no seams
    big = Image.fromarray(np.pad(np.asarray(face.image), ((pad, pad), (pad, pad), (0, 0)), mode="edge"))
    scale, turn = rng.uniform(0.8, 1.25), math.radians(rng.uniform(-10, 10))
    w, h = round(1.6 * size), round(1.5 * size)
    shift = rng.uniform(-0.15, 0.15, 2) * size
    lin = scale * np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]])
    off = np.array([(w - 1) / 2, (h - 1) / 2]) + shift - lin @ np.array([(size - 1) / 2, (size - 1) / 2])
    # Pillow maps output to input in continuous coordinates (pixel centres at i + 0.5): output u is
    # photo point u - 0.5, render point inv (u - 0.5 - off), big image point + pad, continuous + 0.5.
    inv = np.linalg.inv(lin)
    c = -inv @ (off + 0.5) + pad + 0.5
    data = (inv[0, 0], inv[0, 1], c[0], inv[1, 0], inv[1, 1], c[1])
    placed = big.transform((w, h), Image.Transform.AFFINE, data, resample=Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    placed.save(buf, "JPEG", quality=70)
    photo = np.asarray(Image.open(buf).convert("RGB"))
    true = {n: Point(*(lin @ [p.x, p.y] + off)) for n, p in face.keypoints.items()}
    return photo, true


def test_the_placement_puts_the_true_points_on_the_face() -> None:
    """The test's own geometry: the mean colour around each true eye is the eye's, not skin."""
    photo, true = place(3)
    face = render(sample_params(np.random.default_rng(3)), 192)
    ref = np.asarray(face.image)
    for name in ("left_eye_center", "right_eye_center", "mouth_left"):
        p, q = true[name], face.keypoints[name]
        got = photo[round(p.y) - 1:round(p.y) + 2, round(p.x) - 1:round(p.x) + 2].reshape(-1, 3).mean(0)
        want = ref[round(q.y) - 1:round(q.y) + 2, round(q.x) - 1:round(q.x) + 2].reshape(-1, 3).mean(0)
        assert np.abs(got - want).max() < 40, name


def test_framing_from_given_points() -> None:
    photo, true = place(5)
    framed = frame_photo(photo, true, 128, TEMPLATE)
    assert isinstance(framed, FramedPhoto) and not framed.already_framed
    assert framed.crop.shape == (128, 128, 3) and framed.crop.dtype == np.uint8
    # The fit leaves only the face's own shape (at most 1.9 px RMS over 2000 renders).
    assert framed.residual_px < 1.9
    back = framed.alignment.to_photo(framed.points_in_crop)
    for n, p in back.items():
        assert p.distance(true[n]) < 1e-6


def test_a_model_sized_framed_image_is_its_own_crop() -> None:
    face = render(FaceParams(), 128)  # the world's middle face: no shift, tilt or turn
    rgb = np.asarray(face.image)
    framed = frame_photo(rgb, face.keypoints, 128, TEMPLATE)
    assert framed.already_framed and framed.alignment.is_identity()
    assert np.array_equal(framed.crop, rgb) and framed.crop is not rgb
    moved = render(FaceParams(shift_x=1.0), 128)  # 7.7 px to the right
    framed = frame_photo(np.asarray(moved.image), moved.keypoints, 128, TEMPLATE)
    assert not framed.already_framed
    # The crop takes the move back: the moved face lands where the middle face's own fit puts it.
    still = align_from_keypoints(face.keypoints, TEMPLATE, 128).to_crop(face.keypoints)
    for n, q in framed.alignment.to_crop(moved.keypoints).items():
        assert q.distance(still[n]) < 1e-6
    assert frame_photo(np.asarray(moved.image), moved.keypoints, 128, TEMPLATE, framed_within_px=10).already_framed


def test_a_face_too_small_to_frame_says_how_large_it_must_be() -> None:
    photo, true = place(2, k=0.4)  # eyes about 10 px apart
    with pytest.raises(AlignmentError) as err:
        frame_photo(photo, true, 128, TEMPLATE)
    msg = str(err.value)
    assert msg.startswith("the face is too small in this photo: its eyes are ")
    assert "must be at least 13 px for a 128 px crop; use a larger or closer photo." in msg
    with pytest.raises(UserError, match="keypoints or a detector"):
        frame_photo(photo, None, 128, TEMPLATE)


@pytest.fixture(scope="module")
def detector():
    """The shipped detector, on one thread: its network is tiny, and on a busy machine two threads
    waiting for each other made each run 100x slower (0.4 s against 4 ms)."""
    import torch

    from keypoints.detector import EmbeddedDetector

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield EmbeddedDetector.load()
    torch.set_num_threads(threads)


@needs_detector
def test_no_face_found_is_said_in_a_sentence(detector) -> None:
    noise = np.random.default_rng(6).integers(0, 256, (200, 240, 3), dtype=np.uint8)
    with pytest.raises(AlignmentError) as err:
        frame_photo(noise, None, 128, TEMPLATE, detector=detector)
    msg = str(err.value)
    assert msg.startswith("no face was found: ") and msg.endswith("use a photo with one face seen from the front.")


@needs_detector
@pytest.mark.slow
def test_placed_faces_are_framed_onto_the_template(detector) -> None:
    """20 faces in larger JPEG photos, framed from the detector's own points (measured: the crops'
    detections lie 0.88 px from the template on average, the alignment 0.40 px from the one the
    true points give)."""
    names = list(TEMPLATE)
    to_template, vs_truth = [], []
    for seed in range(20):
        photo, true = place(seed)
        framed = frame_photo(photo, None, 128, TEMPLATE, detector=detector)
        found = detector.detect(framed.crop)
        to_template.append(np.mean([found[n].distance(TEMPLATE[n]) for n in names]))
        ideal = align_from_keypoints(true, TEMPLATE, 128)
        mapped = ideal.to_crop(framed.alignment.to_photo(TEMPLATE))
        vs_truth.append(np.mean([mapped[n].distance(TEMPLATE[n]) for n in names]))
    assert np.mean(to_template) < 1.5 and max(to_template) < 2.5
    assert np.mean(vs_truth) < 1.0 and max(vs_truth) < 2.0
