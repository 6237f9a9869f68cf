"""The checkpoints voicedrag knows by name: DragGAN's download list and the StyleGAN-Human models.

`voicedrag models` lists them; `voicedrag models download NAME` fetches one into the cache
(`$VOICEDRAG_CACHE`, default `~/.cache/voicedrag/models/`) with a progress bar. A cut download
resumes where it stopped (HTTP Range), the file is renamed into place only when complete, and its
sha256 is checked against the one the registry knows, or recorded at the first complete download
and checked on every later use. `--model NAME` takes a registry name everywhere; nothing is
downloaded unless the user asks (`models download`, or `--download`).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.atomic import write_text_atomic
from voicedrag.errors import VoicedragError

NVIDIA_NC = "NVIDIA Source Code License-NC: non-commercial research use only"
SELF_DISTILLED = "Self-Distilled StyleGAN release (Google): research use; see its page for the terms"
HUMAN_NC = "StyleGAN-Human: non-commercial research use only; see its repository"


@dataclass(frozen=True)
class Checkpoint:
    name: str
    file: str  # the file name in the cache
    url: str | None  # None: no direct download; fetched by hand from `page`
    page: str
    resolution: str  # "512" or "512x384"
    domain: str
    family: str  # stylegan2 | stylegan3
    licence: str
    rules: str | None = None  # the rules its words are for ("face", "animal"); None: explicit points only
    detector: str | None = None
    sha256: str | None = None  # known digest, checked at once; None: recorded at the first download
    note: str = ""


_SD = "https://storage.googleapis.com/self-distilled-stylegan"
_NGC = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/files"
_TF = "http://d36zk2xti64re0.cloudfront.net/stylegan2/networks"
_HUMAN = "https://github.com/stylegan-human/StyleGAN-Human"

CHECKPOINTS: tuple[Checkpoint, ...] = (
    Checkpoint(
        "lions512",
        "stylegan2_lions_512_pytorch.pkl",
        f"{_SD}/lions_512_pytorch.pkl",
        "https://self-distilled-stylegan.github.io/",
        "512",
        "lion heads",
        "stylegan2",
        SELF_DISTILLED,
        rules="animal",
        note="words need a keypoint template (voicedrag keypoints teach --rules animal)",
    ),
    Checkpoint(
        "dogs1024",
        "stylegan2_dogs_1024_pytorch.pkl",
        f"{_SD}/dogs_1024_pytorch.pkl",
        "https://self-distilled-stylegan.github.io/",
        "1024",
        "dogs",
        "stylegan2",
        SELF_DISTILLED,
        rules="animal",
        note="words need a keypoint template (voicedrag keypoints teach --rules animal)",
    ),
    Checkpoint(
        "horses256",
        "stylegan2_horses_256_pytorch.pkl",
        f"{_SD}/horses_256_pytorch.pkl",
        "https://self-distilled-stylegan.github.io/",
        "256",
        "horses",
        "stylegan2",
        SELF_DISTILLED,
        rules="animal",
        note="words need a keypoint template (voicedrag keypoints teach --rules animal)",
    ),
    Checkpoint(
        "elephants512",
        "stylegan2_elephants_512_pytorch.pkl",
        f"{_SD}/elephants_512_pytorch.pkl",
        "https://self-distilled-stylegan.github.io/",
        "512",
        "elephants",
        "stylegan2",
        SELF_DISTILLED,
        note="no rules fit elephants yet: explicit points",
    ),
    Checkpoint(
        "ffhq512",
        "stylegan2-ffhq-512x512.pkl",
        f"{_NGC}/stylegan2-ffhq-512x512.pkl",
        "https://catalog.ngc.nvidia.com/orgs/nvidia/teams/research/models/stylegan2",
        "512",
        "human faces (FFHQ)",
        "stylegan2",
        NVIDIA_NC,
        rules="face",
        detector="face",
        note="words use the face landmark detector (pip install 'voicedrag[face]'); no ears",
    ),
    Checkpoint(
        "afhqcat512",
        "stylegan2-afhqcat-512x512.pkl",
        f"{_NGC}/stylegan2-afhqcat-512x512.pkl",
        "https://catalog.ngc.nvidia.com/orgs/nvidia/teams/research/models/stylegan2",
        "512",
        "cat faces (AFHQ)",
        "stylegan2",
        NVIDIA_NC,
        rules="animal",
        note="words need a keypoint template (voicedrag keypoints teach --rules animal)",
    ),
    Checkpoint(
        "car-config-f",
        "stylegan2-car-config-f.pkl",
        f"{_TF}/stylegan2-car-config-f.pkl",
        "https://github.com/NVlabs/stylegan2",
        "512x384",
        "cars (LSUN)",
        "stylegan2",
        NVIDIA_NC,
        note="a TensorFlow pickle: voicedrag reads PyTorch pickles only, so it cannot load this one yet",
    ),
    Checkpoint(
        "cat-config-f",
        "stylegan2-cat-config-f.pkl",
        f"{_TF}/stylegan2-cat-config-f.pkl",
        "https://github.com/NVlabs/stylegan2",
        "256",
        "cats (LSUN)",
        "stylegan2",
        NVIDIA_NC,
        note="a TensorFlow pickle: voicedrag reads PyTorch pickles only, so it cannot load this one yet",
    ),
    Checkpoint(
        "human-v2-512",
        "stylegan_human_v2_512.pkl",
        None,
        _HUMAN,
        "512x256",
        "full-body humans",
        "stylegan2",
        HUMAN_NC,
        note="no direct download: fetch it from the repository's links",
    ),
    Checkpoint(
        "human-v2-1024",
        "stylegan_human_v2_1024.pkl",
        None,
        _HUMAN,
        "1024x512",
        "full-body humans",
        "stylegan2",
        HUMAN_NC,
        note="no direct download: fetch it from the repository's links",
    ),
    Checkpoint(
        "human-v3-512",
        "stylegan_human_v3_512.pkl",
        None,
        _HUMAN,
        "512x256",
        "full-body humans",
        "stylegan3",
        HUMAN_NC,
        note="no direct download: fetch it from the repository's links",
    ),
)


def cache_dir() -> Path:
    return Path(os.environ.get("VOICEDRAG_CACHE") or Path.home() / ".cache" / "voicedrag" / "models")


@dataclass
class Registry:
    checkpoints: tuple[Checkpoint, ...] = CHECKPOINTS
    folder: Path | None = None  # None: cache_dir() at the time of use

    @property
    def cache(self) -> Path:
        return self.folder if self.folder is not None else cache_dir()

    def get(self, name: str) -> Checkpoint | None:
        return next((c for c in self.checkpoints if c.name == name), None)

    def entry(self, name: str) -> Checkpoint:
        c = self.get(name)
        if c is None:
            raise VoicedragError(f"{name!r} is not a checkpoint voicedrag knows; `voicedrag models` lists them.")
        return c

    def path(self, c: Checkpoint) -> Path:
        return self.cache / c.file

    def _record(self, c: Checkpoint) -> Path:
        return self.cache / f"{c.file}.sha256.json"

    def is_cached(self, c: Checkpoint) -> bool:
        return self.path(c).is_file()

    def listing(self) -> list[dict[str, object]]:
        return [{**asdict(c), "cached": self.is_cached(c), "path": str(self.path(c))} for c in self.checkpoints]

    # ------------------------------------------------------------ use

    def resolve(
        self, name: str, download: bool = False, progress: Callable[[int, int | None], None] | None = None
    ) -> Path:
        """The cached file of a registry name (downloaded first when `download`), its digest checked."""
        c = self.entry(name)
        path = self.path(c)
        if not path.is_file():
            if not download:
                how = (
                    f"run `voicedrag models download {name}` (or add --download)"
                    if c.url
                    else f"download {c.file} from {c.page} and place it at {path}"
                )
                raise VoicedragError(f"{name} is not downloaded yet; {how}.")
            return self.download(name, progress)
        self.verify(c)
        return path

    def verify(self, c: Checkpoint) -> None:
        """Check a cached file against its known or recorded digest (re-hashed only when the file changed)."""
        path = self.path(c)
        stat = path.stat()
        record = self._read_record(c)
        want = c.sha256 or (record or {}).get("sha256")
        if want is None:
            self._write_record(c, _sha256(path), stat)  # placed by hand: recorded at its first use
            return
        if (
            record
            and record.get("size") == stat.st_size
            and record.get("mtime_ns") == stat.st_mtime_ns
            and record.get("sha256") == want
        ):
            return
        got = _sha256(path)
        if got != want:
            raise VoicedragError(
                f"{path} does not match the checksum recorded for {c.name} (its content changed); "
                f"delete it and run `voicedrag models download {c.name}` again."
            )
        self._write_record(c, got, stat)

    def _read_record(self, c: Checkpoint) -> dict[str, object] | None:
        try:
            data = json.loads(self._record(c).read_text())
            return data if isinstance(data, dict) else None
        except (OSError, ValueError):
            return None

    def _write_record(self, c: Checkpoint, digest: str, stat: os.stat_result) -> None:
        write_text_atomic(
            self._record(c), json.dumps({"sha256": digest, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}) + "\n"
        )

    # ------------------------------------------------------------ download

    def download(
        self, name: str, progress: Callable[[int, int | None], None] | None = None, timeout: float = 30.0
    ) -> Path:
        c = self.entry(name)
        final = self.path(c)
        if c.url is None:
            raise VoicedragError(
                f"{name} has no direct download; download {c.file} from {c.page} and place it at {final}."
            )
        if final.is_file():
            self.verify(c)
            return final
        try:
            self.cache.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise VoicedragError(
                f"cannot create the model cache {self.cache} ({err.strerror}); "
                "set VOICEDRAG_CACHE to a folder you can write."
            ) from None
        part = final.with_name(final.name + ".part")
        # Each attempt asks for the rest of the file; a connection cut mid-way is resumed up to 5 times.
        for _ in range(6):
            if self._fetch(c, part, progress, timeout):
                break
        else:
            raise VoicedragError(
                f"the download of {name} kept breaking off ({part.stat().st_size} bytes so far, "
                f"kept); run `voicedrag models download {name}` again to resume."
            )
        digest = _sha256(part)
        want = c.sha256 or (self._read_record(c) or {}).get("sha256")
        if want is not None and digest != want:
            part.unlink(missing_ok=True)
            raise VoicedragError(
                f"the downloaded {c.file} does not match its known checksum and was removed; "
                f"run `voicedrag models download {name}` again, or check {c.page}."
            )
        os.replace(part, final)
        self._write_record(c, digest, final.stat())
        return final

    def _fetch(
        self, c: Checkpoint, part: Path, progress: Callable[[int, int | None], None] | None, timeout: float
    ) -> bool:
        """Append the rest of the file to `part`; True when it is complete, False when cut off."""
        have = part.stat().st_size if part.is_file() else 0
        assert c.url is not None
        request = urllib.request.Request(
            c.url, headers={"User-Agent": "voicedrag", **({"Range": f"bytes={have}-"} if have else {})}
        )
        host = urllib.parse.urlparse(c.url).netloc
        try:
            response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - the registry's own URLs
        except urllib.error.HTTPError as err:
            if err.code == 416 and have:  # asked past the end: what is there is the whole file
                return True
            raise VoicedragError(
                f"{host} answered {err.code} {err.reason} for {c.name}; try again later, or "
                f"download {c.url} by hand and place it at {self.path(c)}."
            ) from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise VoicedragError(
                f"cannot reach {host} ({reason}); check the network connection, or download "
                f"{c.url} by hand and place it at {self.path(c)}."
            ) from None
        with response:
            resumed = response.status == 206
            if have and not resumed:
                have = 0  # the server ignored the range: start again
            length = response.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            done = have
            try:
                with part.open("ab" if resumed else "wb") as out:
                    while chunk := response.read(1 << 20):
                        out.write(chunk)
                        done += len(chunk)
                        if progress:
                            progress(done, total)
            except (OSError, urllib.error.URLError, http.client.HTTPException) as err:
                if isinstance(err, OSError) and err.errno is not None and not isinstance(err, ConnectionError):
                    raise VoicedragError(
                        f"cannot write {part} ({err.strerror}); free some space or set "
                        "VOICEDRAG_CACHE to another folder."
                    ) from None
                return False
        return total is None or done >= total


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def progress_bar(name: str) -> Callable[[int, int | None], None]:
    """A one-line progress bar on stderr."""

    def show(done: int, total: int | None) -> None:
        mb = done / 1e6
        if total:
            n = int(30 * done / total)
            sys.stderr.write(f"\r{name} [{'#' * n}{'.' * (30 - n)}] {mb:.1f} / {total / 1e6:.1f} MB")
        else:
            sys.stderr.write(f"\r{name} {mb:.1f} MB")
        if total and done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def default_registry() -> Registry:
    return Registry()


def model_path(model: str | Path, download: bool = False, registry: Registry | None = None) -> str | Path:
    """A registry name as its cached file (downloaded when asked); any other name or path as given."""
    reg = registry or default_registry()
    name = str(model)
    if reg.get(name) is None or Path(name).exists():
        return model
    return reg.resolve(name, download=download, progress=progress_bar(name) if download else None)
