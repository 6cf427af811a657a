"""Datasets: checksums, shapes, seeded subsets, augmentation, and clear errors."""
import numpy as np
import pytest
import torch

from advlab.data import DATASETS, batches, load_dataset, random_crop_flip
from advlab.errors import DatasetError, InputError


def test_mnist_test_split_is_canonical(mnist_test):
    assert mnist_test.x.shape == (10000, 1, 28, 28) and mnist_test.x.dtype == torch.uint8
    assert mnist_test.y.dtype == torch.int64
    counts = torch.bincount(mnist_test.y).tolist()
    assert counts == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]  # data README


def test_cifar10_test_split_loads_as_nchw():
    ds = load_dataset("cifar10", "test")
    assert ds.x.shape == (10000, 3, 32, 32)
    mean = ds.images().mean(dim=(0, 2, 3))
    assert torch.allclose(mean, torch.tensor([0.4942, 0.4851, 0.4504]), atol=1e-3)  # data README


def test_subsets_are_seeded_and_traceable(mnist_test):
    a, b, c = (mnist_test.subset(100, seed=s) for s in (3, 3, 4))
    assert torch.equal(a.indices, b.indices) and not torch.equal(a.indices, c.indices)
    assert torch.equal(mnist_test.x[a.indices], a.x) and torch.equal(mnist_test.y[a.indices], a.y)


def test_stratified_subset_is_balanced(mnist_test):
    s = mnist_test.subset(200, seed=0, stratified=True)
    assert len(s) == 200 and torch.bincount(s.y).tolist() == [20] * 10


def test_batches_cover_the_data_in_float(mnist_test):
    sub = mnist_test.subset(250, seed=0)
    seen = torch.cat([y for _, y in batches(sub, 100, shuffle=True, generator=torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == sorted(sub.y.tolist())
    x, _ = next(batches(sub, 100))
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1


def test_random_crop_flip_is_a_shifted_window_of_the_padded_image():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6) + 1
    out = random_crop_flip(x, torch.Generator().manual_seed(0), padding=2, flip=False)
    padded = torch.nn.functional.pad(x, (2,) * 4)
    for n in range(2):  # every output is one of the 25 windows of its own padded image
        wins = [padded[n, :, i:i + 6, j:j + 6] for i in range(5) for j in range(5)]
        assert any(torch.equal(out[n], w) for w in wins)
    flipped = random_crop_flip(x, torch.Generator().manual_seed(0), padding=0, flip=True)
    for n in range(2):
        assert torch.equal(flipped[n], x[n]) or torch.equal(flipped[n], x[n].flip(-1))


def test_missing_data_root_says_how_to_provide_it(tmp_path):
    with pytest.raises(DatasetError, match="ADVLAB_DATA"):
        load_dataset("mnist", "test", root=tmp_path / "nowhere", download=False)


def test_failed_download_leaves_nothing_and_does_not_suggest_the_default(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    def offline(*a, **k):
        raise OSError("Name or service not known")

    monkeypatch.setattr(tvd, "MNIST", offline)
    root = tmp_path / "nowhere"
    with pytest.raises(DatasetError, match="download failed") as err:
        load_dataset("mnist", "test", root=root, download=True)
    assert "machine with internet" in str(err.value) and "ADVLAB_DOWNLOAD=1" not in str(err.value)
    assert not root.exists()  # no empty ~/.cache/advlab/data/mnist left behind


def test_missing_file_names_it(tmp_path):
    with pytest.raises(DatasetError, match=r"mnist/test\.npz is missing"):
        load_dataset("mnist", "test", root=tmp_path, download=False)


def test_corrupt_npz_is_detected(tmp_path):
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "test.npz").write_bytes(b"PK\x03\x04 definitely not a zip archive")
    with pytest.raises(DatasetError, match="corrupt"):
        load_dataset("mnist", "test", root=tmp_path, download=False)


def test_changed_pixels_fail_the_checksum(tmp_path, mnist_test):
    (tmp_path / "mnist").mkdir()
    x = mnist_test.x.permute(0, 2, 3, 1).numpy().copy()
    x[0, 0, 0, 0] ^= 1
    np.savez(tmp_path / "mnist" / "test.npz", x=x, y=mnist_test.y.numpy().astype(np.uint8))
    with pytest.raises(DatasetError, match="sha256"):
        load_dataset("mnist", "test", root=tmp_path, download=False)


def test_wrong_shape_is_reported(tmp_path):
    (tmp_path / "mnist").mkdir()
    np.savez(tmp_path / "mnist" / "test.npz", x=np.zeros((5, 28, 28), np.uint8), y=np.zeros(5, np.uint8))
    with pytest.raises(DatasetError, match="expected x"):
        load_dataset("mnist", "test", root=tmp_path, download=False)


def test_unknown_dataset_and_split_list_valid_ones():
    with pytest.raises(InputError, match="cifar10, fashion-mnist, mnist"):
        load_dataset("svhn")
    with pytest.raises(InputError, match="test, train"):
        load_dataset("mnist", "valid")


def test_every_dataset_has_checksums_for_both_splits():
    for spec in DATASETS.values():
        assert set(spec.sha256) == {"train", "test"}


def test_batch_shards_make_up_the_global_batch(mnist_test):
    """Data-parallel ranks draw the same order and crops; their slices are the one-process batch."""
    ds = mnist_test.subset(103, seed=0)
    whole = list(batches(ds, 25, shuffle=True, augment=True, generator=torch.Generator().manual_seed(1)))
    parts = [list(batches(ds, 25, shuffle=True, augment=True, generator=torch.Generator().manual_seed(1),
                          shard=(r, 3))) for r in range(3)]
    assert len(whole) == 5 and all(len(p) == 5 for p in parts)
    for k, (x, y) in enumerate(whole):
        assert torch.equal(torch.cat([p[k][0] for p in parts]), x)
        assert torch.equal(torch.cat([p[k][1] for p in parts]), y)
    with pytest.raises(InputError, match="rank"):
        next(batches(ds, 25, shard=(3, 3)))
