"""Datasets as uint8 tensors on the device, with checksums, seeded subsets and batched augmentation.

The data root is ``$ADVLAB_DATA`` (default ``~/.cache/advlab/data``). Each split is one file
``<root>/<dataset>/<split>.npz`` holding ``x`` (N, H, W, C) uint8 and ``y`` (N,) uint8, in the
dataset's canonical order. The arrays' sha256 (not the file's: zip headers hold timestamps) are
checked on first load. Where a file is missing and downloading is allowed, torchvision fetches the
dataset and it is stored in the same format, after the same check.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .cache import atomic_write, atomic_write_bytes
from .checks import check_choice
from .errors import DatasetError, InputError

__all__ = ["DATASETS", "DATA_ENV", "DOWNLOAD_ENV", "SPLITS", "Dataset", "DatasetSpec", "batches", "copy_to",
           "data_root", "dataset_spec", "load_dataset", "random_crop_flip", "to_float"]

#: The environment variable naming the data root (``<root>/<dataset>/{train,test}.npz``).
DATA_ENV = "ADVLAB_DATA"
#: The environment variable that forbids (``0``) fetching a missing dataset with torchvision.
DOWNLOAD_ENV = "ADVLAB_DOWNLOAD"


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    shape: tuple[int, int, int]  # (C, H, W)
    classes: tuple[str, ...]
    mean: tuple[float, ...]  # per channel, of pixel/255 over the train split
    std: tuple[float, ...]
    sha256: dict = field(default_factory=dict)  # split -> (x sha256, y sha256, N)

    @property
    def title(self) -> str:
        """The dataset's name as the field writes it (MNIST, Fashion-MNIST, CIFAR-10)."""
        return {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}[self.name]


#: The datasets advlab knows, by name (``mnist``, ``fashion-mnist``, ``cifar10``): shape, classes, mean, std and
#: the sha256 of each split's arrays.
DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        "mnist", (1, 28, 28), tuple(str(i) for i in range(10)), (0.1307,), (0.3081,),
        {
            "train": ("741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
                      "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13", 60000),
            "test": ("6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
                     "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5", 10000),
        },
    ),
    "fashion-mnist": DatasetSpec(
        "fashion-mnist", (1, 28, 28),
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        (0.2860,), (0.3530,),
        {
            "train": ("2e487a6c89124f78f2d7521542223cafe96f7123c3ca13d447772ac6ecbb3012",
                      "657fbd221bfc9f4198cc14b5619cc33ec57c58dd0e47af4d99d6650759e869a7", 60000),
            "test": ("c867c93ff95360594e8ec3287995350b824dd110b11595c0e13d5423f621867a",
                     "3d0e6c6ea990b53b6f8f500a41cac93881d981b315f84578b7d915342ade01e9", 10000),
        },
    ),
    "cifar10": DatasetSpec(
        "cifar10", (3, 32, 32),
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
        {
            "train": ("47af8b02cfcfb6cdf3dbbd1969ad7f1b70f4413f6f80f437b020ee4e5bc8304a",
                      "2b7cd2f24487317614016b72ffd53071c3062f592f0eb300c18a770d41ae1253", 50000),
            "test": ("f9b1e2130bab680db56eb06d886f7f1ad0f1183907ceff4659d1735c890f5b04",
                     "cec8a24a1e92aa2ecaa0bbd3dbfa86bf6cd8759fbd209a832824c8cf0afca9d5", 10000),
        },
    ),
}
#: The splits of every dataset.
SPLITS = ("train", "test")


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root`` if given, else ``$ADVLAB_DATA``, else ``~/.cache/advlab/data``."""
    if root is None:
        root = os.environ.get(DATA_ENV) or Path.home() / ".cache" / "advlab" / "data"
    return Path(root).expanduser()


def dataset_spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of ``name``; unknown names list the valid ones."""
    check_choice(name, DATASETS, "dataset")
    return DATASETS[name]


@dataclass
class Dataset:
    """One split of a dataset: ``x`` uint8 (N, C, H, W) and ``y`` int64 (N,), on one device."""

    name: str
    split: str
    x: torch.Tensor
    y: torch.Tensor
    indices: torch.Tensor  # positions in the full split, so subsets stay traceable

    @property
    def spec(self) -> DatasetSpec:
        """The dataset's :class:`DatasetSpec`."""
        return DATASETS[self.name]

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names, by label."""
        return self.spec.classes

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device) -> "Dataset":
        """The same examples with their tensors on ``device``."""
        return Dataset(self.name, self.split, *(copy_to(t, device) for t in (self.x, self.y, self.indices)))

    def take(self, idx: torch.Tensor) -> "Dataset":
        """The examples at positions ``idx`` of this dataset (indices into the split kept)."""
        return Dataset(self.name, self.split, self.x[idx], self.y[idx], self.indices[idx])

    def examples(self, indices) -> "Dataset":
        """The examples whose split indices are ``indices`` (a result table's ``example`` column), in
        that order; an index this dataset does not hold is an error."""
        pos = {int(e): i for i, e in enumerate(self.indices.tolist())}
        missing = [int(e) for e in indices if int(e) not in pos]
        if missing:
            raise InputError(f"examples {missing[:5]} are not in this {self.name} {self.split} subset")
        return self.take(torch.as_tensor([pos[int(e)] for e in indices], dtype=torch.long, device=self.x.device))

    def subset(self, n: int | None, seed: int = 0, stratified: bool = False) -> "Dataset":
        """``n`` examples drawn without replacement by a seeded permutation (all if n is None).

        With ``stratified=True`` the draw takes n // 10 per class (the first of each class in the
        seeded order), so small subsets keep the class balance.
        """
        if n is None or n >= len(self):
            return self
        if n <= 0:
            raise InputError(f"subset size must be positive, got {n}")
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(self), generator=g).to(self.x.device)
        if stratified:
            k = len(self.classes)
            ys = self.y[perm]
            # rank of each example within its class, in permutation order
            onehot = torch.nn.functional.one_hot(ys, k)
            rank = (onehot.cumsum(0) * onehot).sum(1) - 1
            quota = torch.full((k,), n // k, device=ys.device)
            quota[: n % k] += 1
            perm = perm[rank < quota[ys]]
        else:
            perm = perm[:n]
        return Dataset(self.name, self.split, self.x[perm], self.y[perm], self.indices[perm])

    def images(self) -> torch.Tensor:
        """All images as float32 in [0, 1]."""
        return to_float(self.x)


def copy_to(t: torch.Tensor, device) -> torch.Tensor:
    """``t`` on ``device``; host-to-GPU copies go through pinned (page-locked) memory, asynchronously."""
    device = torch.device(device)
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def to_float(x_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 pixels as float32 in [0, 1] (divided by 255)."""
    return x_uint8.float().div_(255.0)


def _sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _how_to_provide(path: Path, tried_download: bool) -> str:
    fetch = ("or run this on a machine with internet" if tried_download
             else f"or allow a download on a machine with internet (unset {DOWNLOAD_ENV}, or set it to 1)")
    return (
        f"Provide it as {path} (arrays x: (N, H, W, C) uint8, y: (N,) uint8, see the data README), "
        f"point ${DATA_ENV} at a folder that holds it (in this repository: export {DATA_ENV}=../shared/data), "
        f"{fetch}."
    )


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _read_npz(path: Path, name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read and verify one split; a stamp beside the file (or in memory) skips re-hashing."""
    x_sha, y_sha, n = DATASETS[name].sha256[split]
    st = path.stat()
    sig = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "x": x_sha, "y": y_sha}
    try:
        with np.load(path, allow_pickle=False) as f:
            x, y = f["x"], f["y"]
    except Exception as e:  # zipfile.BadZipFile, KeyError, ValueError, EOFError, ...
        raise DatasetError(f"{path} is corrupt or not a dataset .npz ({type(e).__name__}: {e}). "
                           + _how_to_provide(path, False)) from e
    c, h, w = DATASETS[name].shape
    if x.dtype != np.uint8 or x.shape != (n, h, w, c) or y.dtype != np.uint8 or y.shape != (n,):
        raise DatasetError(f"{path} holds x {x.shape} {x.dtype}, y {y.shape} {y.dtype}; "
                           f"expected x ({n}, {h}, {w}, {c}) uint8, y ({n},) uint8")
    if not _verified(path, sig):
        if _sha256(x) != x_sha or _sha256(y) != y_sha:
            raise DatasetError(f"{path} fails its sha256 check (the arrays differ from the canonical "
                               f"{name} {split} split). " + _how_to_provide(path, False))
        _mark_verified(path, sig)
    return x, y


_VERIFIED: set[str] = set()


def _verified(path: Path, sig: dict) -> bool:
    key = json.dumps([str(path), sig], sort_keys=True)
    if key in _VERIFIED:
        return True
    try:
        if json.loads(_stamp_path(path).read_text()) == sig:
            _VERIFIED.add(key)
            return True
    except (OSError, ValueError):
        pass
    return False


def _mark_verified(path: Path, sig: dict) -> None:
    _VERIFIED.add(json.dumps([str(path), sig], sort_keys=True))
    try:  # a read-only data root just means hashing again next process
        atomic_write_bytes(_stamp_path(path), json.dumps(sig).encode())
    except OSError:
        pass


def _download(name: str, root: Path) -> None:
    """Fetch both splits with torchvision and store them as verified .npz files."""
    import torchvision.datasets as tvd

    cls = {"mnist": tvd.MNIST, "fashion-mnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10}[name]
    # the folders appear only once a file arrives: a failed download leaves nothing behind
    with tempfile.TemporaryDirectory(prefix=f"advlab-{name}-") as tmp:
        for split in SPLITS:
            ds = cls(tmp, train=(split == "train"), download=True)
            x = np.asarray(ds.data, dtype=np.uint8)
            if x.ndim == 3:
                x = x[..., None]
            y = np.asarray(ds.targets, dtype=np.uint8)
            x_sha, y_sha, _ = DATASETS[name].sha256[split]
            if _sha256(x) != x_sha or _sha256(y) != y_sha:
                raise DatasetError(f"downloaded {name} {split} does not match the canonical checksums")
            (root / name).mkdir(parents=True, exist_ok=True)
            atomic_write(root / name / f"{split}.npz", lambda tmp: _savez(tmp, x, y))


def _savez(path: Path, x, y) -> None:
    with open(path, "wb") as f:  # a file object: np.savez would append .npz to a bare path
        np.savez_compressed(f, x=x, y=y)


@lru_cache(maxsize=8)
def _load_arrays(name: str, split: str, root: str, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    path = Path(root) / name / f"{split}.npz"
    if not path.is_file():
        if not Path(root).is_dir() and not download:
            raise DatasetError(f"data root {root} does not exist (set ${DATA_ENV}). "
                               + _how_to_provide(path, False))
        if not download:
            raise DatasetError(f"dataset file {path} is missing. " + _how_to_provide(path, False))
        try:
            _download(name, Path(root))
        except DatasetError:
            raise
        except Exception as e:  # no network, HTTP errors, ...
            raise DatasetError(f"dataset file {path} is missing and the download failed "
                               f"({type(e).__name__}: {e}). " + _how_to_provide(path, True)) from e
    x, y = _read_npz(path, name, split)
    x = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    return x, torch.from_numpy(y.astype(np.int64))


def load_dataset(name: str, split: str = "test", *, root=None, device=None,
                 download: bool | None = None) -> Dataset:
    """Load one split as uint8 tensors on ``device`` (CPU by default).

    Parameters
    ----------
    name : {"mnist", "fashion-mnist", "cifar10"}
    split : {"train", "test"}
    root : path, optional
        Data root; default ``$ADVLAB_DATA``.
    download : bool, optional
        Fetch a missing dataset with torchvision. Default: ``$ADVLAB_DOWNLOAD`` (``"1"`` unless set
        to ``"0"``). Without network this fails with a message saying how to provide the file.
    """
    dataset_spec(name)
    check_choice(split, SPLITS, "split")
    if download is None:
        download = os.environ.get(DOWNLOAD_ENV, "1") != "0"
    x, y = _load_arrays(name, split, str(data_root(root).resolve()), bool(download))
    ds = Dataset(name, split, x, y, torch.arange(x.shape[0]))
    return ds.to(device) if device is not None else ds


def random_crop_flip(x: torch.Tensor, generator: torch.Generator | None = None,
                     padding: int = 4, flip: bool = True) -> torch.Tensor:
    """Random crop with zero padding and random horizontal flip, batched (one gather, no loop).

    ``x`` is (N, C, H, W) of any dtype. The random draws come from ``generator`` on its own
    device and are moved to x's, so a CPU generator gives the same crops on CPU and CUDA.
    """
    n, c, h, w = x.shape
    dev = x.device
    gdev = generator.device if generator is not None else dev
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=gdev).to(dev)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=gdev).to(dev)
    rows = (dy[:, None] + torch.arange(h, device=dev))[:, None, :, None]  # (N, 1, H, 1)
    cols = (dx[:, None] + torch.arange(w, device=dev))
    if flip:
        flipped = (torch.rand(n, generator=generator, device=gdev) < 0.5).to(dev)
        cols = torch.where(flipped[:, None], cols.flip(1), cols)
    cols = cols[:, None, None, :]  # (N, 1, 1, W)
    bidx = torch.arange(n, device=dev)[:, None, None, None]
    cidx = torch.arange(c, device=dev)[None, :, None, None]
    return padded[bidx, cidx, rows, cols]


def batches(ds: Dataset, batch_size: int, *, shuffle: bool = False, augment: bool = False,
            generator: torch.Generator | None = None, drop_last: bool = False, shard: tuple[int, int] = (0, 1)):
    """Yield ``(x, y)`` with x float32 in [0, 1] on the dataset's device.

    Shuffling and augmentation draw from ``generator`` (a CPU generator, so the order and the
    crops do not depend on the device the data lives on). ``shard=(rank, world)`` yields rank's
    contiguous slice of each global batch of ``batch_size`` (data-parallel training): every rank
    draws the same order and crops, so the slices of one step make up the one-process batch.
    """
    rank, world = shard
    if not (isinstance(world, int) and world >= 1 and 0 <= rank < world):
        raise InputError(f"shard must be (rank, world) with 0 <= rank < world, got {shard!r}")
    n = len(ds)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    for i in range(0, stop, batch_size):
        idx = order[i:i + batch_size].to(ds.x.device)
        xb, yb = ds.x[idx], ds.y[idx]
        if augment:
            xb = random_crop_flip(xb, generator=generator)
        if world > 1:
            xb, yb = xb.tensor_split(world)[rank], yb.tensor_split(world)[rank]
        yield to_float(xb), yb
