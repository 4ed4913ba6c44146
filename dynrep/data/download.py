"""Download, verify and unpack the real datasets (``dynrep download NAME``).

Files live in :func:`data_dir` (``$DYNREP_DATA``, default ``~/.cache/dynrep``); loaders find them with
:func:`dataset_path`. :func:`download` streams a file to ``<file>.part`` (resuming a partial ``.part`` with an HTTP
Range request), checks its size, leading magic bytes and checksum, and only then renames it to its final name, so
the final name always holds a verified file and a bad download never replaces a good one. A file already under the
final name is taken as it is when its size matches; when no size is known it must match its checksum too.

Sources (``DATASETS``; provenance of each checksum next to its entry): the URL in the table, else
``url=`` / ``--url`` (a mirror, or a ``file://`` URL of a copy on disk), or ``$DYNREP_MIRROR`` (a base URL or
directory holding the files under their official names).

A multi-file dataset (CausalCircuit: ``train-0.npz`` ... ``test.npz``) is a directory of files, each fetched and
verified like a single-file dataset; it is complete when every file is. Its ``--url`` is the base (URL prefix or
directory) holding those files; under ``$DYNREP_MIRROR`` they are looked up as ``<mirror>/<dataset dir>/<file>``.
"""
from __future__ import annotations

import hashlib
import http.client
import io
import os
import shutil
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterator

__all__ = ["DATASETS", "DataFileError", "Dataset", "DownloadError", "damaged", "data_dir", "dataset_path",
           "download", "reading", "redownload_command"]

#: Read/write block size of the stream (1 MiB).
CHUNK = 1 << 20
#: Seconds a stalled connection may stay silent before the download fails (the ``.part`` is kept for resuming).
TIMEOUT = 60.0
#: Base URL or directory that replaces the table's source for every dataset (file name appended).
MIRROR_ENV = "DYNREP_MIRROR"
#: Leading bytes of each file format: checked even when no checksum is known.
MAGIC = {".h5": b"\x89HDF\r\n\x1a\n", ".npz": b"PK", ".gz": b"\x1f\x8b"}


class DownloadError(RuntimeError):
    """A download that failed, or whose result did not match the expected size, format or checksum."""


class DataFileError(DownloadError):
    """A data file that cannot be read because it is damaged (truncated or corrupt). The one-line message names
    the file, says what is wrong and gives the command that downloads it again (:func:`redownload_command`)."""


@dataclass(frozen=True)
class Dataset:
    """One downloadable file, or a directory of them.

    ``size`` (bytes) and the checksums are ``None`` where no source gives them; the download is then checked
    against what is known (the others, and the file format's magic bytes). The sha256 is preferred over the md5.
    ``extract_to`` names the directory an archive is unpacked into (Cars3D); ``None`` for files used as they are.
    ``arrays`` names arrays an ``.npz`` must hold (its zip directory is read: catches truncated or foreign files
    when no checksum is known). ``url`` is ``""`` where no direct download URL is known; ``homepage`` then says
    where the files are distributed.

    A multi-file dataset has ``parts``: one entry per file, stored in the directory ``file`` (under the data
    directory); the entry's own ``url``/size/checksums are unused.
    """
    name: str
    file: str
    url: str
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    mirrors: tuple[str, ...] = ()
    extract_to: str | None = None
    script: str = ""
    arrays: tuple[str, ...] = ()
    parts: tuple["Dataset", ...] = ()
    homepage: str = ""

    @property
    def checksum(self) -> tuple[str, str] | None:
        """``(algorithm, hex digest)`` used for verification: sha256 if known, else md5, else ``None``."""
        if self.sha256:
            return "sha256", self.sha256.lower()
        if self.md5:
            return "md5", self.md5.lower()
        return None

    @property
    def command(self) -> str:
        return f"dynrep download {self.name}"


_DSPRITES = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
_MPI3D_HF = "https://huggingface.co/datasets/waleedgondal/mpi3d/resolve/main/"
_MPI3D_OLD = "https://storage.googleapis.com/disentanglement_dataset/Final_Dataset/"


def _mpi3d(variant: str, md5: str) -> Dataset:
    file = f"mpi3d_{variant}.npz"
    return Dataset(f"mpi3d_{variant}", file, _MPI3D_HF + file, md5=md5, mirrors=(_MPI3D_OLD + file,),
                   script=f"scripts/download_mpi3d.sh {variant}")


#: Qualcomm's CausalCircuit page, where the files are distributed. The Brehmer et al. and ICM-VAE READMEs link the
#: older address developer.qualcomm.com/software/ai-datasets/causalcircuit (same page text). Neither the page text
#: available offline nor any public code gives a direct file URL (Qualcomm's dataset downloads usually need a
#: sign-in and a licence acceptance; not verified here).
CAUSAL_CIRCUIT_PAGE = "https://www.qualcomm.com/developer/software/causal-circuit-dataset"
#: The files the reference loaders open: ``train-{0..9}.npz`` (Brehmer et al. ``get_dataloader`` and ICM-VAE),
#: ``val.npz`` (Brehmer et al.), ``test.npz`` (both).
CAUSAL_CIRCUIT_FILES = tuple(f"train-{i}.npz" for i in range(10)) + ("val.npz", "test.npz")


def _causal_circuit() -> Dataset:
    parts = tuple(Dataset("causal_circuit", file, "", arrays=("imgs", "original_latents"))
                  for file in CAUSAL_CIRCUIT_FILES)
    return Dataset("causal_circuit", "causal_circuit", "", parts=parts, homepage=CAUSAL_CIRCUIT_PAGE,
                   script="scripts/download_causal_circuit.sh")


#: The downloadable datasets. Checksums come from /work/shared/specs/latent.md section 2 (which cites tfds and
#: nmichlo/disent) unless noted:
#:
#: * ``shapes3d``: size and sha256 from the spec (the md5 ``099a2078…`` is also recorded there).
#: * ``dsprites``: the spec gives no checksum or size for the ``.npz`` (its sha256/md5 are for the ``.hdf5``).
#:   The md5 here is the one used, identically, by many public loaders of this exact file (e.g. vaetc,
#:   latte, torch dataset wrappers with ``Resource(md5=…)``); the size is unknown (``None``).
#: * ``cars3d``: md5 of ``nips2015-analogy-data.tar.gz`` from the spec (= disent ``uri_hash['full']``);
#:   size unknown. After verification ``data/cars/*.mat`` (and ``list.txt``) are unpacked into ``cars3d/``.
#: * ``mpi3d_*``: md5 from the spec (= disent ``uri_hash['full']``); sizes unknown. The old Google Storage
#:   URL is tried when the Hugging Face one cannot be reached.
#: * ``causal_circuit``: no direct URL, size or checksum is known (files distributed from
#:   :data:`CAUSAL_CIRCUIT_PAGE`). Fetch them there, then ``dynrep download causal_circuit --url DIR``
#:   verifies them (zip directory holding ``imgs`` and ``original_latents``) and installs them.
DATASETS: dict[str, Dataset] = {
    "shapes3d": Dataset("shapes3d", "3dshapes.h5", "https://storage.googleapis.com/3d-shapes/3dshapes.h5",
                        size=267_573_662,
                        sha256="0a0f6ed98baff276a50f3a081a7434d788da63cb135a98189b2a5b5769be1785",
                        script="scripts/download_shapes3d.sh"),
    "dsprites": Dataset("dsprites", _DSPRITES,
                        "https://raw.githubusercontent.com/deepmind/dsprites-dataset/master/" + _DSPRITES,
                        md5="7da33b31b13a06f4b04a70402ce90c2e", script="scripts/download_dsprites.sh"),
    "cars3d": Dataset("cars3d", "nips2015-analogy-data.tar.gz",
                      "http://www.scottreed.info/files/nips2015-analogy-data.tar.gz",
                      md5="4e866a7919c1beedf53964e6f7a23686", extract_to="cars3d",
                      script="scripts/download_cars3d.sh"),
    "mpi3d_toy": _mpi3d("toy", "55889cb7c7dfc655d6e0277beee88868"),
    "mpi3d_realistic": _mpi3d("realistic", "59a6225b88b635365f70c91b3e52f70f"),
    "mpi3d_real": _mpi3d("real", "0f33f609918fb5c97996692f91129802"),
    "causal_circuit": _causal_circuit(),
}


def data_dir() -> Path:
    """``$DYNREP_DATA`` if set (and not empty), else ``~/.cache/dynrep``."""
    env = os.environ.get("DYNREP_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dynrep"


def _entry(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None


def _target(entry: Dataset, root: Path) -> Path:
    return root / (entry.extract_to or entry.file)


def _is_complete(entry: Dataset, target: Path, *, verify: bool = False) -> bool:
    """Whether ``target`` is a finished download. Final names are only ever created from verified files, so
    this checks presence and the size when known rather than re-hashing gigabytes. With ``verify``, a file whose
    size is not known is also checked against its format and checksum (:func:`_verify`): a foreign file put
    under the final name by hand (a failed copy, an error page) is not taken for the dataset."""
    if entry.parts:
        return target.is_dir() and all(_is_complete(part, target / part.file, verify=verify) for part in entry.parts)
    if entry.extract_to:
        return target.is_dir() and any(target.glob("*.mat"))
    if not target.is_file():
        return False
    if entry.size is not None:
        return target.stat().st_size == entry.size
    return not verify or _verify(entry, target, remove=False) is None


def redownload_command(name: str, path: str | Path | None = None) -> str:
    """The command that replaces a damaged copy of dataset ``name``: ``dynrep download NAME --force`` (with
    ``--url DIR`` where no direct URL is known, and ``--dest DIR`` when ``path``, the damaged file, is an
    official file of the dataset outside :func:`data_dir`)."""
    entry = _entry(name)
    command = entry.command + ("" if _has_direct_url(entry) else " --url DIR") + " --force"
    if path is not None:
        path, top = Path(path), entry.extract_to or entry.file
        root = path.parent if path.name == top else path.parent.parent if path.parent.name == top else None
        if root is not None and root.resolve() != data_dir().resolve():
            command += f" --dest {root}"
    return command


def damaged(path: str | Path, problem: str, name: str) -> DataFileError:
    """The :class:`DataFileError` for file ``path`` of dataset ``name``, damaged as ``problem`` says."""
    return DataFileError(f"{path} is damaged ({problem}); download it again with "
                         f"`{redownload_command(name, path)}`")


@contextmanager
def reading(path: str | Path, name: str, errors: tuple[type[Exception], ...] = ()) -> Iterator[None]:
    """Turn the errors of reading a damaged file ``path`` of dataset ``name`` inside the block into
    :class:`DataFileError`: a truncated or corrupt zip archive (``.npz``), zlib stream, ``.npy`` header
    (numpy's ValueError: keep the block to reading) or HDF5 file (h5py's OSError, which has no errno), and
    ``errors``, those a reader of another format raises. Other OSErrors (a missing file, no permission, a full
    disk) pass through unchanged."""
    try:
        yield
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, *errors) as err:
        raise damaged(path, f"{type(err).__name__}: {err}", name) from err
    except OSError as err:
        if type(err) is not OSError or err.errno is not None:
            raise
        raise damaged(path, str(err), name) from err


def dataset_path(name: str) -> Path:
    """Where dataset ``name`` lives: its file, or for Cars3D the directory of ``.mat`` files, or for a multi-file
    dataset (CausalCircuit) the directory of its files (only once every file is there).

    Raises:
        KeyError: unknown name (the message lists the known ones).
        FileNotFoundError: not downloaded yet; the message names the path and the command that fetches it.
    """
    entry = _entry(name)
    path = _target(entry, data_dir())
    if not _is_complete(entry, path):
        state = "not found" if not path.exists() else "incomplete"
        if entry.parts and path.exists():
            missing = [part.file for part in entry.parts if not _is_complete(part, path / part.file)]
            state += f" (missing {', '.join(missing)})"
        how = f"`{entry.command}` (or `{entry.script}`)"
        if not _has_direct_url(entry):
            how = (f"`{entry.command} --url DIR` from a directory (or base URL) holding the files you fetched from "
                   f"{entry.homepage} (no direct download URL is known)")
        raise FileNotFoundError(
            f"{name} {state} at {path}; fetch it with {how}; "
            f"set $DYNREP_DATA to use another data directory (now {data_dir()})")
    return path


def download(name: str, *, dest: Path | None = None, force: bool = False, progress: bool = True,
             url: str | None = None) -> Path:
    """Fetch dataset ``name`` into ``dest`` (default :func:`data_dir`) and return its path.

    A multi-file dataset is fetched file by file into ``dest/<directory>`` (each file exactly as below); files
    already there are kept unless ``force``, so a rerun after a failure fetches only what is missing, and ``url``
    is the base (URL prefix or directory) holding the files.

    The file is streamed to ``<file>.part``; a ``.part`` left by an interrupted run is resumed with an HTTP Range
    request (restarted from byte 0 if the server ignores it). Size, format and checksum are verified before the
    file is renamed to its final name; on a mismatch the ``.part`` is deleted and the next source is tried (a
    resumed download that fails is retried once from scratch first); :class:`DownloadError` says what differed at
    each. An existing complete file (of the right size, or when no size is known of the right checksum) is kept as
    it is unless ``force``; even then it is only replaced by a verified new one. A file of that name that fails the
    check is replaced the same way. For Cars3D the verified archive is unpacked (``data/cars/*.mat``, ``list.txt``)
    into ``dest/cars3d`` and then deleted.

    Args:
        url: the source to use instead of the table's URL (a mirror, ``file://`` path, test server). Without it,
            ``$DYNREP_MIRROR`` (base URL or directory) is used when set, else the table's URL and mirrors.
    """
    entry = _entry(name)
    root = Path(dest).expanduser() if dest is not None else data_dir()
    root.mkdir(parents=True, exist_ok=True)
    target = _target(entry, root)
    if not force and _is_complete(entry, target, verify=True):
        return target
    archive = root / entry.file
    with file_lock(root / f".{entry.file}.lock"):
        if not force and _is_complete(entry, target, verify=True):  # finished by a concurrent run while we waited
            return target
        if entry.parts:
            todo = [part for part in entry.parts if force or not _is_complete(part, target / part.file, verify=True)]
            sources = [_sources(part, url, entry) for part in todo]  # fails before any request without a source
            target.mkdir(exist_ok=True)
            for part, part_sources in zip(todo, sources):
                _fetch_any(part, part_sources, target / part.file, progress)
            return target
        if not entry.extract_to:
            _fetch_any(entry, _sources(entry, url), archive, progress)
            return target
        # a verified archive left by an earlier run (interrupted while unpacking) is reused unless forced
        if force or not archive.is_file() or _verify(entry, archive, remove=False) is not None:
            _fetch_any(entry, _sources(entry, url), archive, progress)
        _extract_cars(archive, target)
        archive.unlink()
    return target


# --------------------------------------------------------------------------------------------- sources, locking

def _has_direct_url(entry: Dataset) -> bool:
    return all(part.url for part in entry.parts) if entry.parts else bool(entry.url)


def _sources(entry: Dataset, url: str | None, parent: Dataset | None = None) -> list[str]:
    """Where to fetch ``entry`` from, best first. ``parent`` is the multi-file dataset ``entry`` belongs to:
    ``url`` is then a base holding the files, and the mirror holds them under ``<parent dir>/<file>``."""
    if url:
        base = _as_url(url)
        return [base.rstrip("/") + "/" + urllib.parse.quote(entry.file)] if parent else [base]
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        path = entry.file if parent is None else f"{parent.file}/{entry.file}"
        return [_as_url(mirror).rstrip("/") + "/" + urllib.parse.quote(path)]
    sources = [source for source in (entry.url, *entry.mirrors) if source]
    if not sources:
        owner = parent or entry
        raise DownloadError(
            f"no direct download URL is known for {owner.name}: it is distributed from {owner.homepage}. "
            f"Fetch the files there, then run `{owner.command} --url DIR` with the "
            f"directory (or base URL) holding them, or set ${MIRROR_ENV}; they are verified and installed")
    return sources


def _as_url(source: str) -> str:
    """A URL as given, or a local path turned into a ``file://`` URL."""
    if urllib.parse.urlparse(source).scheme in ("http", "https", "file", "ftp"):
        return source
    return Path(source).expanduser().resolve().as_uri()


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (POSIX; created if missing), so two processes never write the same
    file (a download's ``.part``, an unpacked cache)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no locking
        yield
        return
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ------------------------------------------------------------------------------------------------ fetch & verify

class _Interrupted(DownloadError):
    """The stream broke off; the ``.part`` is kept so the next run resumes it."""


def _fetch_any(entry: Dataset, sources: list[str], final: Path, progress: bool) -> None:
    """Try each source in turn until one gives a verified file (a network failure, a wrong size or a checksum
    mismatch moves on to the next); rename it into place. The error lists every source and why it failed."""
    part = final.with_name(final.name + ".part")
    failures = []
    for source in sources:
        try:
            _fetch_verified(entry, source, part, progress)
        except (DownloadError, OSError) as err:  # URLError is an OSError
            failures.append(f"{_redact(source)}: {err}")
            continue
        os.replace(part, final)
        return
    if final.is_file() and (problem := _verify(entry, final, remove=False)):
        failures.append(f"the file already at {final} is not {entry.name} ({problem}); it was left as it is")
    raise DownloadError(f"could not download {entry.name} ({entry.file}) from any of its {len(sources)} "
                        f"source(s): " + "; ".join(failures)
                        + (f"; the partial file {part} is kept and a rerun resumes it" if part.exists() else ""))


def _fetch_verified(entry: Dataset, source: str, part: Path, progress: bool) -> None:
    resumed = _stream(entry, source, part, progress)
    problem = _verify(entry, part, remove=True)
    if problem and resumed:  # the old partial bytes may be stale: one fresh attempt
        _stream(entry, source, part, progress)
        problem = _verify(entry, part, remove=True)
    if problem:
        raise DownloadError(f"{entry.name}: download from {_redact(source)} failed verification: {problem}; "
                            f"the bad file {part} was deleted")


def _verify(entry: Dataset, path: Path, *, remove: bool) -> str | None:
    """``None`` if ``path`` matches the entry's size, format and checksum, else what differed (the file is
    deleted if ``remove``)."""
    problem = None
    size = path.stat().st_size
    magic = MAGIC.get(Path(entry.file).suffix, b"")
    if entry.size is not None and size != entry.size:
        problem = f"size mismatch: expected {entry.size} bytes, got {size}"
    else:
        with open(path, "rb") as f:
            head = f.read(len(magic))
        if head != magic:
            problem = f"format mismatch: a {Path(entry.file).suffix} file starts with {magic!r}, got {head!r}"
        elif entry.arrays and (missing := _npz_problem(path, entry.arrays)):
            problem = missing
        elif entry.checksum is not None:
            algorithm, expected = entry.checksum
            got = _digest(path, algorithm)
            if got != expected:
                problem = f"{algorithm} mismatch: expected {expected}, got {got}"
    if problem and remove:
        path.unlink(missing_ok=True)
    return problem


def _npz_problem(path: Path, arrays: tuple[str, ...]) -> str | None:
    """What is wrong with ``path`` as an ``.npz`` holding ``arrays`` (its zip directory is read), or ``None``."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError) as err:
        return f"not a complete .npz archive ({err})"
    missing = [key for key in arrays if f"{key}.npy" not in names]
    if missing:
        held = sorted(name.removesuffix(".npy") for name in names)
        return f"content mismatch: the .npz lacks array(s) {missing} (it holds {held})"
    return None


def _digest(path: Path, algorithm: str) -> str:
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            hasher.update(block)
    return hasher.hexdigest()


def _stream(entry: Dataset, source: str, part: Path, progress: bool) -> bool:
    """Write ``source`` to ``part``, appending to an existing partial file when the source supports ranges.
    Returns whether old bytes were kept (a resume)."""
    offset = part.stat().st_size if part.exists() else 0
    if entry.size is not None and offset > entry.size:
        part.unlink()
        offset = 0
    if entry.size is not None and offset == entry.size:
        return True  # complete but not yet verified (the last run stopped while hashing)
    response, offset, total = _open(source, offset)
    if total is not None and entry.size is not None and total != entry.size:
        response.close()
        raise DownloadError(f"{entry.name}: size mismatch: expected {entry.size} bytes, but {_redact(source)} "
                            f"serves {total}; nothing was downloaded")
    expected_total = total if total is not None else entry.size
    if expected_total is not None:
        _check_space(part.parent, expected_total - offset)
    from tqdm.auto import tqdm
    with response, open(part, "ab" if offset else "wb") as out, \
            tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=entry.file,
                 disable=not progress, leave=True) as bar:
        try:
            while block := response.read(CHUNK):
                out.write(block)
                bar.update(len(block))
        except (OSError, http.client.HTTPException) as err:
            raise _Interrupted(f"connection broke off after {out.tell()} bytes ({err!r})") from err
        if total is not None and out.tell() < total:  # shorter than announced: the connection dropped
            raise _Interrupted(f"connection closed after {out.tell()} of {total} bytes")
    return offset > 0


def _open(source: str, offset: int) -> tuple[BinaryIO, int, int | None]:
    """Open ``source`` from byte ``offset`` if possible. Returns ``(stream, actual offset, total size or None)``;
    the actual offset is 0 when the source ignored the range request."""
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme == "file":
        path = Path(urllib.request.url2pathname(parsed.path))
        if not path.is_file():
            raise FileNotFoundError(f"no such file {path}")
        stream = open(path, "rb")
        total = path.stat().st_size
        offset = offset if offset <= total else 0
        stream.seek(offset)
        return stream, offset, total
    request = urllib.request.Request(source, headers={"User-Agent": "dynrep-download"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # the range starts at/after the end
            total = _content_range(err.headers.get("Content-Range", ""))[1]
            err.close()
            if total == offset:  # the partial file is already whole: nothing left to read
                return io.BytesIO(b""), offset, total
            return _open(source, 0)
        raise
    length = response.headers.get("Content-Length")
    length = int(length) if length and length.isdigit() else None
    if offset and response.status == 206:
        start, total = _content_range(response.headers.get("Content-Range", ""))
        if start == offset:
            return response, offset, total if total is not None else (offset + length if length else None)
        response.close()  # a range we did not ask for: start over without one
        return _open(source, 0)
    return response, 0, length  # 200: the whole file (a server that ignores Range lands here too)


def _content_range(value: str) -> tuple[int | None, int | None]:
    """``"bytes 100-199/1000"`` -> ``(100, 1000)``; unknown parts are ``None``."""
    unit, _, spec = value.strip().partition(" ")
    if unit != "bytes":
        return None, None
    span, _, total = spec.partition("/")
    start = span.split("-")[0]
    return int(start) if start.isdigit() else None, int(total) if total.isdigit() else None


def _check_space(directory: Path, needed: int) -> None:
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise DownloadError(f"not enough disk space in {directory}: need {needed / 2**30:.2f} GiB more, "
                            f"{free / 2**30:.2f} GiB free (set $DYNREP_DATA or --dest to use another disk)")


def _redact(url: str) -> str:
    """A URL without any user:password part, for messages."""
    parsed = urllib.parse.urlparse(url)
    if parsed.password is None and parsed.username is None:
        return url
    return parsed._replace(netloc=parsed.hostname + (f":{parsed.port}" if parsed.port else "")).geturl()


# ------------------------------------------------------------------------------------------------------- Cars3D

_CARS_DIR = PurePosixPath("data/cars")


def _safe_member(member: tarfile.TarInfo) -> PurePosixPath:
    """The member's normalised path; :class:`DownloadError` for absolute paths, ``..`` or links leaving the tree."""
    raw = member.name.replace("\\", "/")
    path = PurePosixPath(raw)
    if path.is_absolute() or raw.startswith("/") or (len(raw) > 1 and raw[1] == ":") or ".." in path.parts:
        raise DownloadError(f"unsafe archive member {member.name!r} (absolute path or '..'); nothing extracted")
    if member.issym() or member.islnk():
        link = PurePosixPath(member.linkname)
        if link.is_absolute() or ".." in link.parts:
            raise DownloadError(f"unsafe archive link {member.name!r} -> {member.linkname!r}; nothing extracted")
    return PurePosixPath(*[p for p in path.parts if p != "."])


def _extract_cars(archive: Path, target: Path) -> None:
    """Unpack ``data/cars/*.mat`` and ``data/cars/list.txt`` of the verified archive into ``target`` (flat), via a
    temporary directory renamed into place. Every member name is checked first; only regular files are written,
    under their base names, so nothing can land outside ``target``."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                wanted = []
                for member in tar.getmembers():  # all names are checked before anything is written
                    path = _safe_member(member)
                    if path.parent == _CARS_DIR and (path.suffix == ".mat" or path.name == "list.txt"):
                        if not member.isfile():
                            raise DownloadError(f"archive member {member.name!r} is not a regular file")
                        wanted.append((member, path.name))
                if not any(name.endswith(".mat") for _, name in wanted):
                    raise DownloadError(f"{archive} holds no {_CARS_DIR}/*.mat files")
                for member, name in wanted:
                    source = tar.extractfile(member)
                    assert source is not None
                    with source, open(tmp / name, "wb") as out:
                        shutil.copyfileobj(source, out, CHUNK)
        except tarfile.TarError as err:
            raise DownloadError(f"{archive}: not a readable tar archive ({err})") from err
        old = target.with_name(f".{target.name}.{os.getpid()}.old")
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
