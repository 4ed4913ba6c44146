"""Dataset download layer: local file:// URLs and a Range-capable HTTP server on 127.0.0.1 (no internet)."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dynrep import cli
from dynrep.data import download as dl
from dynrep.data.download import DATASETS, DownloadError, data_dir, dataset_path, download

REPO = Path(__file__).resolve().parents[1]
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def payload(n: int = 300_000, seed: int = 0) -> bytes:
    """HDF5-looking bytes (the magic, then pseudo-random content) of length ``n``."""
    body = b"".join(hashlib.sha256(f"{seed}:{i}".encode()).digest() for i in range(n // 32 + 1))
    return (HDF5_MAGIC + body)[:n]


# ------------------------------------------------------------------------------------------------------ fixtures

class Server:
    """State of the test server: files by path, what it was asked, how much it sent, and misbehaviour switches."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.sent = 0
        self.ignore_range = False  # answer 200 with the whole file even to a Range request
        self.no_length = False  # no Content-Length: the body ends when the connection closes
        self.cut_after: int | None = None  # declare the full length but close after this many bytes
        self.base = ""

    def url(self, path: str) -> str:
        return self.base + path


def make_handler(state: Server):
    class Handler(BaseHTTPRequestHandler):
        timeout = 5

        def log_message(self, *args):  # keep test output clean
            pass

        def do_GET(self):
            rng = self.headers.get("Range")
            state.requests.append((self.path, rng))
            body = state.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            start = 0
            if rng and not state.ignore_range:
                start = int(rng.removeprefix("bytes=").split("-")[0])
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            chunk = body[start:]
            if not state.no_length:
                self.send_header("Content-Length", str(len(chunk)))
            self.end_headers()
            if state.cut_after is not None:
                chunk = chunk[:state.cut_after]
            # Counted before writing: once the client has the bytes, the test may read `sent` at once,
            # before this handler thread would get to run again.
            state.sent += len(chunk)
            self.wfile.write(chunk)

    return Handler


@pytest.fixture
def server():
    state = Server()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    httpd.daemon_threads = True
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch):
    """Every test writes into its own $DYNREP_DATA; no mirror override from the environment; short timeout."""
    monkeypatch.setenv("DYNREP_DATA", str(tmp_path / "data"))
    monkeypatch.delenv(dl.MIRROR_ENV, raising=False)
    monkeypatch.setattr(dl, "TIMEOUT", 5.0)
    return tmp_path / "data"


def fake(monkeypatch, name: str, data: bytes, url: str = "", *, algorithm: str = "sha256", size: bool = True,
         **changes) -> dl.Dataset:
    """Point table entry ``name`` at a small payload (for this test only)."""
    digest = hashlib.new(algorithm, data).hexdigest()
    changes = {"mirrors": (), **changes}
    entry = dataclasses.replace(DATASETS[name], url=url, size=len(data) if size else None,
                                sha256=digest if algorithm == "sha256" else None,
                                md5=digest if algorithm == "md5" else None, **changes)
    monkeypatch.setitem(DATASETS, name, entry)
    return entry


def leftovers(directory: Path) -> list[str]:
    """Temporary or partial files left behind (lock files are expected)."""
    return sorted(p.name for p in directory.iterdir() if p.name.endswith((".part", ".tmp", ".old")))


# ----------------------------------------------------------------------------------------- table, paths, errors

def test_table_holds_the_documented_sources():
    assert list(DATASETS) == ["shapes3d", "dsprites", "cars3d", "mpi3d_toy", "mpi3d_realistic", "mpi3d_real",
                             "causal_circuit"]
    shapes = DATASETS["shapes3d"]
    assert (shapes.file, shapes.size) == ("3dshapes.h5", 267_573_662)
    assert shapes.checksum == ("sha256", "0a0f6ed98baff276a50f3a081a7434d788da63cb135a98189b2a5b5769be1785")
    assert DATASETS["dsprites"].url == ("https://raw.githubusercontent.com/deepmind/dsprites-dataset/master/"
                                        "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz")
    assert DATASETS["cars3d"].checksum == ("md5", "4e866a7919c1beedf53964e6f7a23686")
    assert DATASETS["cars3d"].url == "http://www.scottreed.info/files/nips2015-analogy-data.tar.gz"
    for variant, md5 in [("toy", "55889cb7c7dfc655d6e0277beee88868"), ("real", "0f33f609918fb5c97996692f91129802"),
                         ("realistic", "59a6225b88b635365f70c91b3e52f70f")]:
        entry = DATASETS[f"mpi3d_{variant}"]
        assert entry.url == f"https://huggingface.co/datasets/waleedgondal/mpi3d/resolve/main/mpi3d_{variant}.npz"
        assert entry.checksum == ("md5", md5)


def test_data_dir_honours_DYNREP_DATA(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNREP_DATA", str(tmp_path / "elsewhere"))
    assert data_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("DYNREP_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_dir() == tmp_path / "home" / ".cache" / "dynrep"


def test_dataset_path_names_the_missing_file_and_the_command(data_home):
    with pytest.raises(FileNotFoundError) as err:
        dataset_path("shapes3d")
    message = str(err.value)
    for part in [str(data_home / "3dshapes.h5"), "`dynrep download shapes3d`", "scripts/download_shapes3d.sh",
                 "$DYNREP_DATA"]:
        assert part in message
    with pytest.raises(FileNotFoundError, match=r"dynrep download mpi3d_toy.*scripts/download_mpi3d\.sh toy"):
        dataset_path("mpi3d_toy")
    with pytest.raises(FileNotFoundError, match="dynrep download cars3d"):
        dataset_path("cars3d")
    with pytest.raises(KeyError, match="shapes3d, dsprites, cars3d, mpi3d_toy"):
        dataset_path("cars4d")


# ------------------------------------------------------------------------------------------- successful downloads

def test_download_from_a_file_url_verifies_and_renames(tmp_path, monkeypatch, data_home):
    data = payload()
    source = tmp_path / "source.h5"
    source.write_bytes(data)
    fake(monkeypatch, "shapes3d", data, source.as_uri())
    path = download("shapes3d", progress=False)
    assert path == data_home / "3dshapes.h5" == dataset_path("shapes3d")
    assert path.read_bytes() == data
    assert leftovers(data_home) == []


def test_download_over_http_then_skips_a_present_file(server, monkeypatch, data_home):
    data = payload()
    server.files["/3dshapes.h5"] = data
    fake(monkeypatch, "shapes3d", data, server.url("/3dshapes.h5"))  # the table's own URL, no override
    path = download("shapes3d", progress=False)
    assert path.read_bytes() == data and server.requests == [("/3dshapes.h5", None)]
    assert download("shapes3d", progress=False) == path
    assert len(server.requests) == 1  # already there: no request
    download("shapes3d", progress=False, force=True)
    assert len(server.requests) == 2 and path.read_bytes() == data


def test_url_override_and_DYNREP_MIRROR(server, tmp_path, monkeypatch, data_home):
    data = payload(seed=1)
    fake(monkeypatch, "shapes3d", data, "http://127.0.0.1:9/unreachable.h5")
    server.files["/mirror/any-name.h5"] = data
    assert download("shapes3d", progress=False, url=server.url("/mirror/any-name.h5")).read_bytes() == data
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "3dshapes.h5").write_bytes(data)
    monkeypatch.setenv(dl.MIRROR_ENV, str(mirror))  # a plain directory holding the official file names
    path = download("shapes3d", progress=False, force=True, dest=tmp_path / "other")
    assert path == tmp_path / "other" / "3dshapes.h5" and path.read_bytes() == data


def test_falls_back_to_the_next_source_after_a_network_failure(server, tmp_path, monkeypatch):
    data = payload(seed=2)
    (tmp_path / "copy.h5").write_bytes(data)
    fake(monkeypatch, "shapes3d", data, server.url("/gone.h5"), mirrors=((tmp_path / "copy.h5").as_uri(),))
    assert download("shapes3d", progress=False).read_bytes() == data
    assert server.requests == [("/gone.h5", None)]  # 404 from the first source


def test_a_source_failing_verification_moves_on_to_the_next(server, tmp_path, monkeypatch, data_home):
    data = payload(seed=3)
    (tmp_path / "copy.h5").write_bytes(data)
    corrupt = data[:-1] + b"!"
    server.files["/bad.h5"] = corrupt
    entry = fake(monkeypatch, "shapes3d", data, server.url("/bad.h5"), mirrors=((tmp_path / "copy.h5").as_uri(),))
    assert download("shapes3d", progress=False).read_bytes() == data  # sha256 mismatch, then the good mirror
    assert server.requests == [("/bad.h5", None)] and leftovers(data_home) == []
    (tmp_path / "copy.h5").write_bytes(data[:5000])  # every source bad: each is named with its reason
    with pytest.raises(DownloadError) as err:
        download("shapes3d", progress=False, force=True)
    message = str(err.value)
    assert message.startswith("could not download shapes3d (3dshapes.h5) from any of its 2 source(s): ")
    assert f"{server.url('/bad.h5')}: " in message and "sha256 mismatch: expected " + entry.sha256 in message
    assert f"{(tmp_path / 'copy.h5').as_uri()}: " in message and "size mismatch" in message
    assert (data_home / "3dshapes.h5").read_bytes() == data and leftovers(data_home) == []


# -------------------------------------------------------------------------------------------------------- resume

def test_resume_requests_only_the_missing_bytes(server, monkeypatch, data_home):
    data = payload()
    server.files["/3dshapes.h5"] = data
    fake(monkeypatch, "shapes3d", data, server.url("/3dshapes.h5"))
    data_home.mkdir(parents=True)
    have = 123_457
    (data_home / "3dshapes.h5.part").write_bytes(data[:have])
    path = download("shapes3d", progress=False)
    assert server.requests == [("/3dshapes.h5", f"bytes={have}-")]
    assert server.sent == len(data) - have  # the first bytes were not downloaded again
    assert path.read_bytes() == data and leftovers(data_home) == []


def test_resume_restarts_when_the_server_ignores_range(server, monkeypatch, data_home):
    data = payload()
    server.files["/f"] = data
    server.ignore_range = True
    fake(monkeypatch, "shapes3d", data, server.url("/f"))
    data_home.mkdir(parents=True)
    (data_home / "3dshapes.h5.part").write_bytes(data[:1000])
    assert download("shapes3d", progress=False).read_bytes() == data  # not data[:1000] + data
    assert server.requests == [("/f", "bytes=1000-")] and server.sent == len(data)


def test_a_stale_partial_file_is_discarded_and_fetched_again(server, monkeypatch, data_home):
    data = payload()
    server.files["/f"] = data
    fake(monkeypatch, "shapes3d", data, server.url("/f"))
    data_home.mkdir(parents=True)
    (data_home / "3dshapes.h5.part").write_bytes(HDF5_MAGIC + b"\0" * 5000)  # bytes of some other version
    assert download("shapes3d", progress=False).read_bytes() == data
    assert server.requests == [("/f", "bytes=5008-"), ("/f", None)]


def test_an_interrupted_download_keeps_its_part_and_the_rerun_resumes(server, monkeypatch, data_home):
    data = payload()
    server.files["/f"] = data
    server.cut_after = 100_000  # declares the full length, then the connection drops
    fake(monkeypatch, "shapes3d", data, server.url("/f"))
    with pytest.raises(DownloadError, match="rerun resumes"):
        download("shapes3d", progress=False)
    part = data_home / "3dshapes.h5.part"
    assert part.stat().st_size == 100_000 and not (data_home / "3dshapes.h5").exists()
    server.cut_after = None
    assert download("shapes3d", progress=False).read_bytes() == data
    assert server.requests[-1] == ("/f", "bytes=100000-")


def test_a_complete_unverified_part_is_not_downloaded_again(server, monkeypatch, data_home):
    data = payload()
    server.files["/f"] = data
    fake(monkeypatch, "shapes3d", data, server.url("/f"), size=False, algorithm="md5")  # size unknown
    data_home.mkdir(parents=True)
    (data_home / "3dshapes.h5.part").write_bytes(data)  # e.g. the last run stopped while hashing
    assert download("shapes3d", progress=False).read_bytes() == data
    assert server.requests == [("/f", f"bytes={len(data)}-")] and server.sent == 0  # 416: nothing left


# ------------------------------------------------------------------------------------------- corrupt, truncated

def test_corrupt_download_is_rejected_and_a_good_file_kept(server, monkeypatch, data_home):
    data = payload()
    entry = fake(monkeypatch, "shapes3d", data, server.url("/f"))
    server.files["/f"] = data
    good = download("shapes3d", progress=False)
    corrupt = bytearray(data)
    corrupt[200_000] ^= 0xFF
    server.files["/f"] = bytes(corrupt)
    bad_digest = hashlib.sha256(corrupt).hexdigest()
    with pytest.raises(DownloadError, match=f"sha256 mismatch: expected {entry.sha256}, got {bad_digest}"):
        download("shapes3d", progress=False, force=True)
    assert good.read_bytes() == data and leftovers(data_home) == []
    good.unlink()
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        download("shapes3d", progress=False)
    assert not good.exists() and leftovers(data_home) == []


def test_truncated_downloads_are_rejected(server, tmp_path, monkeypatch, data_home):
    data = payload()
    fake(monkeypatch, "shapes3d", data, server.url("/f"))
    server.files["/f"] = data[:-10]  # honest Content-Length: refused before downloading
    with pytest.raises(DownloadError, match=f"size mismatch: expected {len(data)} bytes, but .* serves "
                                            f"{len(data) - 10}"):
        download("shapes3d", progress=False)
    server.no_length = True  # no Content-Length: the short body ends cleanly and is caught after the download
    with pytest.raises(DownloadError, match=f"size mismatch: expected {len(data)} bytes, got {len(data) - 10}"):
        download("shapes3d", progress=False)
    assert leftovers(data_home) == [] and not (data_home / "3dshapes.h5").exists()
    short = tmp_path / "short.h5"
    short.write_bytes(data[:5000])
    with pytest.raises(DownloadError, match="size mismatch"):
        download("shapes3d", progress=False, url=short.as_uri())
    assert not (data_home / "3dshapes.h5").exists()


def test_without_size_the_md5_and_format_are_checked(tmp_path, monkeypatch, data_home):
    data = payload()
    source = tmp_path / "src.h5"
    source.write_bytes(data[:-1])
    fake(monkeypatch, "shapes3d", data, source.as_uri(), size=False, algorithm="md5")
    with pytest.raises(DownloadError, match="md5 mismatch: expected " + hashlib.md5(data).hexdigest()):
        download("shapes3d", progress=False)
    monkeypatch.setitem(DATASETS, "shapes3d", dataclasses.replace(DATASETS["shapes3d"], md5=None))
    source.write_bytes(b"<html>not found</html>")  # what a broken mirror serves
    with pytest.raises(DownloadError, match=r"format mismatch: a \.h5 file starts with"):
        download("shapes3d", progress=False)
    assert leftovers(data_home) == [] and not (data_home / "3dshapes.h5").exists()


def test_a_foreign_file_under_the_final_name_is_verified_and_replaced(tmp_path, monkeypatch, data_home, capsys):
    """dSprites has an md5 and no known size: a file already there is checked against the md5 before it is kept."""
    data = b"PK" + payload()[2:]
    source = tmp_path / "dsprites.npz"
    source.write_bytes(data)
    fake(monkeypatch, "dsprites", data, source.as_uri(), size=False, algorithm="md5")
    target = data_home / DATASETS["dsprites"].file
    data_home.mkdir()
    target.write_bytes(b"PKgarbage")  # 9 bytes under the target's name
    assert download("dsprites", progress=False) == target and target.read_bytes() == data
    source.unlink()
    assert download("dsprites", progress=False) == target  # the verified file is kept: no source needed
    target.write_bytes(b"PKgarbage")
    with pytest.raises(DownloadError, match=rf"the file already at {target} is not dsprites \(md5 mismatch: "
                                            rf"expected {hashlib.md5(data).hexdigest()}"):
        download("dsprites", progress=False)
    assert cli.main(["download", "dsprites", "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("dynrep download: error:") and "\n" not in err and str(target) in err
    assert target.read_bytes() == b"PKgarbage" and leftovers(data_home) == []


# -------------------------------------------------------------------------------------------------------- Cars3D

def make_tar(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return path.read_bytes()


def test_cars3d_extracts_the_mat_files(tmp_path, monkeypatch, data_home):
    members = {"data/cars/car_001_mesh.mat": b"mat one", "data/cars/car_002_mesh.mat": b"mat two",
               "data/cars/list.txt": b"car_001_mesh\ncar_002_mesh\n", "data/shapes/shapes.mat": b"not a car",
               "./data/README": b"hello"}
    archive = make_tar(tmp_path / "cars.tar.gz", members)
    fake(monkeypatch, "cars3d", archive, (tmp_path / "cars.tar.gz").as_uri(), algorithm="md5")
    path = download("cars3d", progress=False)
    assert path == data_home / "cars3d" == dataset_path("cars3d")
    assert sorted(p.name for p in path.iterdir()) == ["car_001_mesh.mat", "car_002_mesh.mat", "list.txt"]
    assert (path / "car_002_mesh.mat").read_bytes() == b"mat two"
    assert not (data_home / "nips2015-analogy-data.tar.gz").exists()  # archive removed after unpacking
    assert [p.name for p in data_home.iterdir() if not p.name.endswith(".lock")] == ["cars3d"]
    (tmp_path / "cars.tar.gz").unlink()
    assert download("cars3d", progress=False) == path  # present: the (now missing) source is not touched


@pytest.mark.parametrize("member", ["data/cars/../../../evil.mat", "/tmp/dynrep-evil.mat", "link"])
def test_cars3d_rejects_unsafe_members(tmp_path, monkeypatch, data_home, member):
    members = {"data/cars/car_001_mesh.mat": b"ok"}
    links = {}
    if member == "link":
        links["data/cars/car_002_mesh.mat"] = "../../../../evil.mat"
    else:
        members[member] = b"evil"
    archive = make_tar(tmp_path / "bad.tar.gz", members, links)
    fake(monkeypatch, "cars3d", archive, (tmp_path / "bad.tar.gz").as_uri(), algorithm="md5")
    with pytest.raises(DownloadError, match="unsafe archive"):
        download("cars3d", progress=False)
    assert not (data_home / "cars3d").exists() and not (tmp_path / "evil.mat").exists()
    assert not Path("/tmp/dynrep-evil.mat").exists()
    assert not any(p.name.endswith((".tmp", ".old")) for p in data_home.iterdir())


# ------------------------------------------------------------------------------------------------- CLI, scripts

def test_cli_download(tmp_path, monkeypatch, capsys):
    data = payload()
    source = tmp_path / "source.h5"
    source.write_bytes(data)
    fake(monkeypatch, "shapes3d", data, "http://127.0.0.1:9/unused")
    dest = tmp_path / "dest"
    assert cli.main(["download", "shapes3d", "--url", source.as_uri(), "--dest", str(dest), "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(dest / "3dshapes.h5")
    assert (dest / "3dshapes.h5").read_bytes() == data

    assert cli.main(["download", "shapes4d"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unknown dataset 'shapes4d'" in err and "mpi3d_real" in err

    source.write_bytes(data[:-1] + b"!")
    assert cli.main(["download", "shapes3d", "--url", str(source), "--dest", str(dest), "--force", "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("dynrep download: error:") and "sha256 mismatch" in err and "\n" not in err
    assert (dest / "3dshapes.h5").read_bytes() == data


@pytest.mark.parametrize("script,args,expected", [
    ("download.sh", ["dsprites", "--quiet"], "download dsprites --quiet"),
    ("download_shapes3d.sh", ["--force"], "download shapes3d --force"),
    ("download_dsprites.sh", [], "download dsprites"),
    ("download_cars3d.sh", ["--dest", "d"], "download cars3d --dest d"),
    ("download_mpi3d.sh", ["toy", "--quiet"], "download mpi3d_toy --quiet"),
    ("download_mpi3d.sh", [], "download mpi3d_real"),
])
def test_scripts_run_the_cli_with_the_repo_venv(tmp_path, script, args, expected):
    """Each script is a thin wrapper: a copy beside a stub ``.venv/bin/python`` shows what it runs."""
    (tmp_path / "scripts").mkdir()
    for name in (script, "download.sh"):  # the per-dataset scripts call the shared one
        shutil.copy(REPO / "scripts" / name, tmp_path / "scripts" / name)
    stub = tmp_path / ".venv" / "bin" / "python"
    stub.parent.mkdir(parents=True)
    stub.write_text('#!/bin/sh\necho "$@"\n')
    stub.chmod(0o755)
    assert os.access(REPO / "scripts" / script, os.X_OK)
    out = subprocess.run(["bash", str(tmp_path / "scripts" / script), *args], capture_output=True, text=True,
                         timeout=10, check=True).stdout
    assert out.strip() == f"-m dynrep.cli {expected}"
