"""Natural footage installable from the package indexes: the `laptop` profile's training data.

Sources (fetched once by `make data` / `python -m cgm.data.footage`, then read from
`data/footage/`, which git ignores; nothing is fetched while training):
- **Big Buck Bunny** (Blender Foundation, CC-BY 3.0): `resources/bbb.mp4` (1280x720, 24 fps,
  14,315 frames) inside the zip `moviepy_10_minutes.zip` of the moviepy 2.2.1 source distribution
  on PyPI (`pip download --no-deps --no-binary :all: moviepy==2.2.1`).
- **ViSP image sequences** (Inria, GPL-2 data, used here, not shipped): real camera sequences of
  Debian's `visp-images-data` (`apt-get download visp-images-data`), grayscale PGM frames.

Every archive is checked against its size and SHA-256 before use. Frames are decoded once,
resized so the short side is `STORE_SIZE` (128) px, and stored as uint8 arrays
`data/footage/<sequence>.npy` (N, H, W, 3), read memory-mapped.

Splits (`SEQUENCES`): Big Buck Bunny frames 0-9,499 train, 9,600-11,699 test (the film's last
scenes; the credits from 11,700 on are used by neither); ViSP `mire-2` and `cube` train, `mbt/cube`
test (a whole sequence never trained on). Windows that span a scene cut (a frame-to-frame mean
absolute difference above `CUT_THRESHOLD`) are left out and counted (`excluded_windows`).

`FootageClips(split, clip_len, size, future)`: train items are random windows with a random
size x size crop, horizontal flip and time reversal, drawn from torch's global RNG (the Trainer
seeds it per item from (seed, epoch, index)); `n` items make an epoch. Test items are a fixed
list of `n` windows evenly spread over the test ranges, each with a fixed crop.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[2]
FOOTAGE_DIR = ROOT / "data" / "footage"
STORE_SIZE = 128  # short side of the stored frames (px)
CUT_THRESHOLD = 0.12  # mean |frame_{i+1} - frame_i| in [0, 1] above which a scene cut is assumed
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Archive:
    """A file fetched from a package index: how, its name, size and SHA-256."""

    name: str
    command: tuple[str, ...]  # run in the download folder
    filename: str
    size: int
    sha256: str


ARCHIVES = {
    "moviepy": Archive(
        "moviepy",
        (
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            "moviepy==2.2.1",
            "-d",
            ".",
        ),
        "moviepy-2.2.1.tar.gz",
        58_431_438,
        "c80cb56815ece94e5e3e2d361aa40070eeb30a09d23a24c4e684d03e16deacb1",
    ),
    "visp": Archive(
        "visp",
        ("apt-get", "download", "visp-images-data=3.5.0-1"),
        "visp-images-data_3.5.0-1_all.deb",
        74_583_096,
        "8d78de2b5d0ff5536ae5c281b11a5011fd6e95cd717c2e0ebf38bacf57723a9d",
    ),
}
_BBB_ZIP = "moviepy-2.2.1/docs/_static/medias/getting_started/moviepy_10_minutes/moviepy_10_minutes.zip"
_VISP = "./usr/share/visp-images-data/ViSP-images/"


@dataclass(frozen=True)
class Sequence:
    """One stored sequence: its archive, the member(s) it comes from, and its split ranges
    ((start, stop) frame ranges, stop exclusive; None = the whole sequence)."""

    name: str
    archive: str
    member: str
    train: tuple[tuple[int, int], ...] | None
    test: tuple[tuple[int, int], ...] | None
    license: str


SEQUENCES = (
    Sequence(
        "bbb",
        "moviepy",
        "moviepy_10_minutes/resources/bbb.mp4",
        train=((0, 9500),),
        test=((9600, 11700),),
        license="CC-BY 3.0, Blender Foundation",
    ),
    Sequence("visp_mire2", "visp", _VISP + "mire-2/", train=None, test=(), license="GPL-2, Inria (ViSP)"),
    Sequence("visp_cube", "visp", _VISP + "cube/", train=None, test=(), license="GPL-2, Inria (ViSP)"),
    Sequence(
        "visp_mbt_cube", "visp", _VISP + "mbt/cube/", train=(), test=None, license="GPL-2, Inria (ViSP)"
    ),
)


# --------------------------------------------------------------------------- fetching


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_archive(archive: Archive, downloads: Path) -> Path:
    """The archive in `downloads`, fetched from its package index if absent; size and SHA-256
    checked. Raises RuntimeError naming the command and its output when the fetch fails."""
    downloads.mkdir(parents=True, exist_ok=True)
    path = downloads / archive.filename
    if not path.is_file():
        print(
            f"fetching {archive.filename} ({archive.size / 2**20:.0f} MB): {' '.join(archive.command)}",
            flush=True,
        )
        with tempfile.TemporaryDirectory(dir=downloads) as tmp:
            done = subprocess.run(archive.command, cwd=tmp, capture_output=True, text=True)
            if done.returncode != 0 and archive.command[0] == "apt-get":  # package lists may be missing
                subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
                done = subprocess.run(archive.command, cwd=tmp, capture_output=True, text=True)
            got = Path(tmp) / archive.filename
            if done.returncode != 0 or not got.is_file():
                raise RuntimeError(
                    f"could not fetch {archive.filename} with `{' '.join(archive.command)}` "
                    f"(offline, or the package index is unreachable?):\n"
                    f"{(done.stderr or done.stdout).strip()[-800:]}"
                )
            got.replace(path)
    size, digest = path.stat().st_size, _sha256(path)
    if size != archive.size or digest != archive.sha256:
        path.unlink()
        raise RuntimeError(
            f"{path}: size {size} / sha256 {digest[:12]}… do not match the expected "
            f"{archive.size} / {archive.sha256[:12]}…; the file was removed, fetch again"
        )
    return path


def _decode_video(data: bytes, short: int) -> np.ndarray:
    import av  # PyAV loads on first decode: importing cgm for embedded data never pays it

    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        w, h = stream.codec_context.width, stream.codec_context.height
        rw, rh = (round(w * short / h), short) if h <= w else (short, round(h * short / w))
        frames = [
            f.to_ndarray(width=rw, height=rh, format="rgb24", interpolation="AREA")
            for f in tqdm(container.decode(stream), total=stream.frames, desc="decode", unit="frame")
        ]
    return np.stack(frames)


def _read_pgm_folder(deb: Path, folder: str, short: int) -> np.ndarray:
    import cv2  # OpenCV is heavy: only fetching this footage needs it here

    tar_bytes = subprocess.run(
        ["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True
    ).stdout
    frames = []
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        names = sorted(
            m.name
            for m in tar.getmembers()
            if m.name.startswith(folder) and m.name.endswith(".pgm") and "/" not in m.name[len(folder) :]
        )
        for name in names:
            gray = cv2.imdecode(np.frombuffer(tar.extractfile(name).read(), np.uint8), cv2.IMREAD_GRAYSCALE)
            h, w = gray.shape
            size = (round(w * short / h), short) if h <= w else (short, round(h * short / w))
            frames.append(np.repeat(cv2.resize(gray, size, interpolation=cv2.INTER_AREA)[..., None], 3, -1))
    if not frames:
        raise RuntimeError(f"{deb}: no PGM frames under {folder}")
    return np.stack(frames)


def prepare(footage_dir: str | Path = FOOTAGE_DIR, *, force: bool = False) -> dict[str, Path]:
    """Fetch every archive and store every sequence as `<name>.npy`; returns name -> path."""
    footage_dir = Path(footage_dir)
    downloads = footage_dir / "downloads"
    out = {}
    for seq in SEQUENCES:
        path = footage_dir / f"{seq.name}.npy"
        out[seq.name] = path
        if path.is_file() and not force:
            continue
        archive = fetch_archive(ARCHIVES[seq.archive], downloads)
        print(f"preparing {seq.name} from {archive.name}", flush=True)
        if seq.archive == "moviepy":
            with (
                tarfile.open(archive) as tar,
                zipfile.ZipFile(io.BytesIO(tar.extractfile(_BBB_ZIP).read())) as z,
            ):
                frames = _decode_video(z.read(seq.member), STORE_SIZE)
        else:
            frames = _read_pgm_folder(archive, seq.member, STORE_SIZE)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, frames)
        tmp.replace(path)
    return out


def footage_ready(footage_dir: str | Path = FOOTAGE_DIR) -> bool:
    return all((Path(footage_dir) / f"{s.name}.npy").is_file() for s in SEQUENCES)


def load_sequence(name: str, footage_dir: str | Path = FOOTAGE_DIR) -> np.ndarray:
    """The stored frames of one sequence, memory-mapped: uint8 (N, H, W, 3)."""
    path = Path(footage_dir) / f"{name}.npy"
    if not path.is_file():
        raise FileNotFoundError(
            f"footage {path} is missing: run `make data` (or `python -m "
            f"cgm.data.footage`) once; it fetches ~130 MB from PyPI and Debian"
        )
    return np.load(path, mmap_mode="r")


def scene_cuts(frames: np.ndarray) -> np.ndarray:
    """Indices i where frame i+1 starts a new shot (mean |difference| above CUT_THRESHOLD)."""
    small = frames[:, ::4, ::4].astype(np.float32).mean(-1) / 255.0  # (N, h, w) gray
    diff = np.abs(np.diff(small, axis=0)).mean(axis=(1, 2))  # (N-1,)
    return np.flatnonzero(diff > CUT_THRESHOLD)


def stored_cuts(name: str, footage_dir: str | Path = FOOTAGE_DIR) -> np.ndarray:
    """scene_cuts of a stored sequence, computed once and kept beside it (`<name>.cuts.npy`)."""
    path = Path(footage_dir) / f"{name}.cuts.npy"
    frames_path = Path(footage_dir) / f"{name}.npy"
    if not path.is_file() or path.stat().st_mtime < frames_path.stat().st_mtime:
        np.save(path, scene_cuts(load_sequence(name, footage_dir)))
    return np.load(path)


# --------------------------------------------------------------------------- the dataset


class FootageClips(Dataset):
    """Clips of the natural footage (unlabeled): items `clip` (3, T(+1), size, size) in [-1, 1],
    `index`, `video` (sequence name) and `start` (first frame)."""

    def __init__(
        self,
        split: str = "train",
        clip_len: int = 8,
        size: int = 64,
        future: bool = True,
        n: int | None = None,
        sequences: tuple[str, ...] | None = None,
        footage_dir: str | None = None,
    ):
        if split not in SPLITS:
            raise ValueError(f"FootageClips: unknown split {split!r}; expected one of {SPLITS}")
        if not (isinstance(size, int) and 16 <= size <= STORE_SIZE):
            raise ValueError(f"FootageClips: size must be an int in [16, {STORE_SIZE}], got {size!r}")
        if int(clip_len) < 1:
            raise ValueError(f"FootageClips: clip_len must be >= 1, got {clip_len}")
        known = [s.name for s in SEQUENCES]
        sequences = tuple(known if sequences is None else sequences)
        if not sequences or any(s not in known for s in sequences):
            raise ValueError(
                f"FootageClips: sequences must be a non-empty subset of {known}, got {sequences}"
            )
        self.split, self.clip_len, self.size, self.future = split, int(clip_len), size, bool(future)
        self.frames = self.clip_len + int(self.future)
        self.classes: list[str] = []
        self.skipped: list[tuple[str, str]] = []
        self.excluded_windows = 0
        root = Path(footage_dir) if footage_dir else FOOTAGE_DIR
        self.videos = {s.name: load_sequence(s.name, root) for s in SEQUENCES if s.name in sequences}
        self.starts: list[tuple[str, int]] = []  # every valid (sequence, first frame)
        for seq in SEQUENCES:
            if seq.name not in self.videos:
                continue
            frames = self.videos[seq.name]
            ranges = getattr(seq, split)
            ranges = ((0, len(frames)),) if ranges is None else ranges
            cut = np.zeros(len(frames), bool)
            cut[stored_cuts(seq.name, root) + 1] = True  # frame i starts a shot
            for lo, hi in ranges:
                for s in range(lo, min(hi, len(frames)) - self.frames + 1):
                    if cut[s + 1 : s + self.frames].any():
                        self.excluded_windows += 1
                    else:
                        self.starts.append((seq.name, s))
        if not self.starts:
            raise ValueError(f"FootageClips: no {split} window of {self.frames} frames in {sequences}")
        default_n = 4096 if split == "train" else 64
        self.n = default_n if n is None else int(n)
        if self.n < 1:
            raise ValueError(f"FootageClips: n must be >= 1, got {n}")
        if split == "test":  # fixed windows evenly spread, each with a fixed crop
            g = torch.Generator().manual_seed(1234)
            picks = np.linspace(0, len(self.starts) - 1, self.n).round().astype(int)
            self.fixed = [(self.starts[i], self._crop(self.starts[i][0], g)) for i in picks]

    def _crop(self, name: str, generator=None) -> tuple[int, int]:
        _, h, w, _ = self.videos[name].shape
        y = int(torch.randint(0, h - self.size + 1, (1,), generator=generator))
        x = int(torch.randint(0, w - self.size + 1, (1,), generator=generator))
        return y, x

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.n:
            raise IndexError(f"FootageClips index {index} out of range for length {self.n}")
        flip = reverse = False
        if self.split == "test":
            (name, start), (y, x) = self.fixed[index]
        else:  # global RNG: seeded per item by the Trainer
            name, start = self.starts[int(torch.randint(0, len(self.starts), (1,)))]
            y, x = self._crop(name)
            flip, reverse = bool(torch.rand(()) < 0.5), bool(torch.rand(()) < 0.5)
        frames = self.videos[name][start : start + self.frames, y : y + self.size, x : x + self.size]
        clip = torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2)  # (3, T, H, W) uint8
        clip = clip.float() / 127.5 - 1.0
        if flip:
            clip = clip.flip(-1)
        if reverse:
            clip = clip.flip(1)
        return {"clip": clip.contiguous(), "index": index, "video": name, "start": start}


def main() -> None:
    """`python -m cgm.data.footage [--force]`: fetch and prepare the footage."""
    force = "--force" in sys.argv[1:]
    if shutil.which("dpkg-deb") is None or shutil.which("apt-get") is None:
        raise SystemExit(
            "cgm.data.footage needs Debian's apt-get and dpkg-deb (the ViSP sequences are a Debian package)"
        )
    try:
        paths = prepare(force=force)
    except RuntimeError as e:
        raise SystemExit(f"error: {e}") from None
    for name, path in paths.items():
        frames = np.load(path, mmap_mode="r")
        print(
            f"{name}: {frames.shape[0]} frames {frames.shape[2]}x{frames.shape[1]}, "
            f"{path.stat().st_size / 2**20:.0f} MB, {len(stored_cuts(name))} scene cuts"
        )


if __name__ == "__main__":
    main()
