"""The model registry against a loopback HTTP server (127.0.0.1 only): resume, checksums, no network."""
from __future__ import annotations

import hashlib
import http.server
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from engine.errors import UserError
from voicedrag import registry as reg
from voicedrag.registry import Checkpoint, Registry

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class _Server(http.server.ThreadingHTTPServer):
    payload: bytes = PAYLOAD
    cut_first: int | None = None  # bytes to send before dropping the first connection
    requests: list[str | None]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        srv = self.server
        rng = self.headers.get("Range")
        srv.requests.append(rng)
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        body = srv.payload[start:]
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.cut_first is not None and len(srv.requests) == 1:
            self.wfile.write(body[: srv.cut_first])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.requests = []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _registry(tmp_path: Path, url: str, sha: str | None = None) -> Registry:
    c = Checkpoint("tiny", "tiny.pkl", url, "http://127.0.0.1/", "64", "test", "stylegan2", "test only", sha256=sha)
    return Registry(checkpoints=(c,), folder=tmp_path / "cache")


def _url(srv: _Server) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}/tiny.pkl"


def test_a_download_lands_whole_and_records_its_checksum(server: _Server, tmp_path: Path) -> None:
    r = _registry(tmp_path, _url(server))
    seen: list[tuple[int, int | None]] = []
    path = r.download("tiny", lambda done, total: seen.append((done, total)))
    assert path.read_bytes() == PAYLOAD and not path.with_name("tiny.pkl.part").exists()
    record = json.loads((tmp_path / "cache" / "tiny.pkl.sha256.json").read_text())
    assert record["sha256"] == hashlib.sha256(PAYLOAD).hexdigest()
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert r.resolve("tiny") == path and len(server.requests) == 1  # cached: no second request


def test_a_cut_connection_resumes_with_a_range_request(server: _Server, tmp_path: Path) -> None:
    server.cut_first = 300_000
    r = _registry(tmp_path, _url(server), sha=hashlib.sha256(PAYLOAD).hexdigest())
    path = r.download("tiny")
    assert path.read_bytes() == PAYLOAD
    assert server.requests[0] is None and server.requests[1] == "bytes=300000-"


def test_a_corrupt_download_is_refused_and_removed(server: _Server, tmp_path: Path) -> None:
    r = _registry(tmp_path, _url(server), sha="0" * 64)
    with pytest.raises(UserError, match="does not match its known checksum and was removed") as err:
        r.download("tiny")
    assert str(err.value).count(";") == 1 and list((tmp_path / "cache").glob("tiny.pkl*")) == []


def test_a_file_changed_after_download_is_refused(server: _Server, tmp_path: Path) -> None:
    r = _registry(tmp_path, _url(server))
    path = r.download("tiny")
    path.write_bytes(PAYLOAD[:-1] + b"x")
    with pytest.raises(UserError, match="does not match the checksum recorded"):
        r.resolve("tiny")


def test_no_server_is_one_sentence(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = _registry(tmp_path, f"http://127.0.0.1:{port}/tiny.pkl")
    with pytest.raises(UserError, match="cannot reach 127.0.0.1") as err:
        r.download("tiny")
    assert "check the network connection" in str(err.value) and str(err.value).endswith(".")


def test_nothing_downloads_unless_asked(server: _Server, tmp_path: Path) -> None:
    r = _registry(tmp_path, _url(server))
    with pytest.raises(UserError, match=r"tiny is not downloaded yet; run `voicedrag models download tiny`"):
        r.resolve("tiny")
    assert server.requests == []
    assert r.resolve("tiny", download=True).read_bytes() == PAYLOAD


def test_render_by_a_registry_name_not_downloaded_says_how(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from voicedrag.cli import main

    monkeypatch.setenv("VOICEDRAG_CACHE", str(tmp_path / "empty"))
    assert main(["render", "--model", "ffhq512", "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "voicedrag: ffhq512 is not downloaded yet; run `voicedrag models download ffhq512` (or add --download)."


def test_models_lists_the_checkpoints_with_their_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from voicedrag.cli import main

    monkeypatch.setenv("VOICEDRAG_CACHE", str(tmp_path))
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["models"]}
    assert {"lions512", "dogs1024", "horses256", "elephants512", "ffhq512", "afhqcat512", "car-config-f",
            "cat-config-f", "human-v3-512"} <= set(rows)
    assert rows["lions512"]["url"].endswith("lions_512_pytorch.pkl") and rows["lions512"]["rules"] == "animal"
    assert rows["human-v3-512"]["family"] == "stylegan3" and not rows["human-v3-512"]["cached"]
    assert all(r["licence"] and (r["url"] or r["page"]) for r in rows.values())
    assert main(["models"]) == 0
    assert "ffhq512" in capsys.readouterr().out


def test_a_downloaded_checkpoint_loads_by_name_with_its_kit(server: _Server, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import fixture_path
    from voicedrag.editor import load_kit

    server.payload = fixture_path("sg2_64_flat.pkl").read_bytes()
    r = _registry(tmp_path, _url(server))
    r = replace(r, checkpoints=(replace(r.checkpoints[0], rules="animal"),))
    monkeypatch.setattr(reg, "default_registry", lambda: r)
    with pytest.raises(UserError, match="not downloaded yet"):
        load_kit("tiny", device="cpu")
    kit = load_kit("tiny", device="cpu", download=True)
    assert kit.generator.img_resolution == 64 and kit.rules.name == "animal"
