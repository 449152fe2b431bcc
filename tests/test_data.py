"""The ELPV data, the Deitsch et al. split, and clear errors for folders of one's own images."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.model_selection import train_test_split

import tlcourse as tl
from tlcourse.data import elpv_strata


def test_elpv_has_2624_cells_with_the_published_label_counts(elpv):
    assert len(elpv) == 2624
    assert np.bincount(elpv.labels4).tolist() == [1508, 295, 106, 715]
    assert (elpv.module_types == "mono").sum() == 1074 and (elpv.module_types == "poly").sum() == 1550
    assert elpv.labels.mean() == pytest.approx(1 - 0.687, abs=0.001)  # majority baseline 68.7%
    image, label = elpv[0]
    assert image.size == (300, 300) and image.mode == "L" and label in (0, 1)


def test_elpv_items_follow_the_package_order_and_targets():
    from elpv_dataset.utils import load_dataset

    images, probs, types = load_dataset()
    data = tl.load_elpv(target="4class", transform=tl.preprocess(64))
    assert np.array_equal(data.images[[0, 1000, 2623]], images[[0, 1000, 2623]])
    assert np.allclose(data.probabilities, probs) and (data.module_types == types).all()
    x, y = data[5]
    assert x.shape == (3, 64, 64) and y == round(probs[5] * 3)
    assert -1.0 <= float(x.min()) and float(x.max()) <= 1.0


def test_split_has_1968_train_and_656_test_cells_stratified(elpv):
    train, test = tl.elpv_split(seed=0)
    assert len(train) == 1968 and len(test) == 656
    assert len(np.intersect1d(train, test)) == 0 and len(np.union1d(train, test)) == 2624
    for labels in (elpv.labels4, elpv.module_types):
        for value in np.unique(labels):
            share_train = np.mean(labels[train] == value)
            share_test = np.mean(labels[test] == value)
            assert share_train == pytest.approx(share_test, abs=0.01)
    assert np.array_equal(tl.elpv_split(seed=0)[1], test)
    assert not np.array_equal(tl.elpv_split(seed=1)[1], test)


def test_validation_split_comes_only_from_the_training_part():
    train, test = tl.elpv_split()
    fit, val = tl.validation_split(train)
    assert len(np.intersect1d(fit, val)) == 0
    assert set(fit) | set(val) == set(train) and not set(val) & set(test)
    assert len(val) == pytest.approx(0.2 * len(train), abs=1)


def test_elpv_strata_are_module_type_and_defect_probability(elpv):
    strata = elpv_strata()
    assert len(strata) == 2624 and len(set(strata)) == 8  # mono/poly x 0, 1/3, 2/3, 1
    assert np.array_equal(strata, np.char.add(elpv.module_types.astype(str), elpv.labels4.astype(str)))
    some = np.array([5, 0, 2000])
    assert np.array_equal(elpv_strata(some), strata[some])


def test_elpv_split_and_validation_split_stratify_on_elpv_strata():
    strata = elpv_strata()
    train, test = tl.elpv_split(seed=3)
    reference = train_test_split(np.arange(2624), test_size=0.25, random_state=3, stratify=strata)
    assert np.array_equal(train, np.sort(reference[0])) and np.array_equal(test, np.sort(reference[1]))
    for stratum in np.unique(strata):  # every stratum is split 75/25, up to one cell of rounding
        assert abs(np.sum(strata[test] == stratum) - 0.25 * np.sum(strata == stratum)) <= 1
    fit, val = tl.validation_split(train, seed=1)
    for stratum in np.unique(strata):
        assert abs(np.sum(strata[val] == stratum) - 0.2 * np.sum(strata[train] == stratum)) <= 1


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_turning_an_elpv_cell_keeps_its_label(turns):
    """The premise of the benchmark's views: turned cells are valid cells with the same label."""
    plain, turned = tl.load_elpv(transform=tl.preprocess(16)), tl.load_elpv(transform=tl.preprocess(16, turns=turns))
    (image, label), (reference, _) = turned[0], plain[0]
    assert image.shape == (3, 16, 16) and label == plain.labels[0]
    assert torch.equal(image, torch.rot90(reference, turns, dims=(-2, -1)))


def test_cells_as_tensor_scales_to_minus_one_one():
    x = tl.cells_as_tensor(np.array([[[0, 255], [255, 0]]], dtype=np.uint8).repeat(4, 1).repeat(4, 2), size=4)
    assert x.shape == (1, 1, 4, 4) and x.dtype == torch.float32 and x.min() == -1 and x.max() == 1
    small = tl.cells_as_tensor(np.full((3, 300, 300), 51, dtype=np.uint8), size=64)
    assert small.shape == (3, 1, 64, 64) and torch.allclose(small, torch.tensor(51 / 255 * 2 - 1))


def test_image_list_serves_images_in_memory_without_labels():
    grey, rgb = np.zeros((10, 12), np.uint8), np.full((7, 7, 3), 255, np.uint8)
    photos = tl.ImageList([grey, rgb, Image.fromarray(grey), rgb[1:5, 2:6]], tl.preprocess(16))
    assert len(photos) == 4
    for i in range(4):
        image, label = photos[i]
        assert image.shape == (3, 16, 16) and label == -1
    assert torch.equal(photos[3][0], photos[1][0])  # a crop (a view of an array) is read like the whole
    raw = tl.ImageList(iter([grey]))
    assert raw[0][0] is grey and len(raw) == 1


def test_per_class_subset_takes_exactly_n_of_each_class(elpv):
    train, _ = tl.elpv_split()
    chosen = tl.per_class_subset(elpv.labels, 5, seed=3, indices=train)
    assert np.bincount(elpv.labels[chosen]).tolist() == [5, 5] and set(chosen) <= set(train)
    assert np.array_equal(chosen, tl.per_class_subset(elpv.labels, 5, seed=3, indices=train))
    with pytest.raises(ValueError, match="Only"):
        tl.per_class_subset(elpv.labels, 5000, indices=train)


def _make_folder(root, classes=("cats", "dogs"), per_class=2):
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(root / name / f"{i}.png")
    return root


def test_image_folder_loads_classes_and_images(tmp_path):
    data = tl.load_image_folder(_make_folder(tmp_path / "pets"), transform=tl.preprocess(32))
    assert data.classes == ["cats", "dogs"] and len(data) == 4
    x, y = data[3]
    assert x.shape == (3, 32, 32) and y == 1


def test_corrupt_image_error_names_the_file(tmp_path):
    root = _make_folder(tmp_path / "pets")
    (root / "dogs" / "broken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(ValueError, match="broken.jpg"):
        tl.load_image_folder(root)


def test_empty_class_folder_is_an_error_not_skipped(tmp_path):
    root = _make_folder(tmp_path / "pets")
    (root / "birds").mkdir()
    with pytest.raises(ValueError, match="birds.*empty"):
        tl.load_image_folder(root)


@pytest.mark.parametrize("problem, message", [
    ("missing", "No such folder"), ("file", "is a file"), ("no_classes", "no class folders"), ("stray", "not an image"),
])
def test_bad_folders_get_errors_that_say_what_to_do(tmp_path, problem, message):
    root = tmp_path / "data"
    if problem == "file":
        root.write_text("oops")
    elif problem == "no_classes":
        root.mkdir()
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "lonely.png")
    elif problem == "stray":
        _make_folder(root)
        (root / "cats" / "notes.txt").write_text("hello")
    with pytest.raises((FileNotFoundError, NotADirectoryError, ValueError), match=message):
        tl.load_image_folder(root)


# ---------------------------------------------------------------- lesson 04's other two situations, offline

def test_faces_are_100_faces_and_100_non_faces_as_grey_images_like_the_cells():
    faces = tl.data.load_faces()
    assert len(faces) == 200 and faces.images.shape == (200, 25, 25) and faces.images.dtype == np.uint8
    assert np.bincount(faces.labels).tolist() == [100, 100] and faces.classes == ("non-face", "face")
    from skimage.data import lfw_subset
    np.testing.assert_allclose(faces.images / 255, lfw_subset(), atol=1 / 255)
    image, label = faces[0]
    assert image.size == (25, 25) and image.mode == "L" and label == 1  # the faces come first


def test_digits_are_sklearns_1797_digits_scaled_to_bytes():
    from sklearn.datasets import load_digits

    digits = tl.data.load_digits(transform=tl.preprocess(32))
    reference = load_digits()
    assert len(digits) == 1797 and digits.images.shape == (1797, 8, 8)
    assert np.array_equal(digits.labels, reference.target) and len(digits.classes) == 10
    assert np.array_equal(digits.images == 0, reference.images == 0) and digits.images.max() == 255
    x, y = digits[3]
    assert x.shape == (3, 32, 32) and y == reference.target[3]


def test_small_data_sets_are_cached_by_content_and_transform():
    a, b = tl.data.load_faces(tl.preprocess(64)), tl.data.load_faces(tl.preprocess(64))
    assert a.fingerprint == b.fingerprint
    assert a.fingerprint != tl.data.load_faces(tl.preprocess(96)).fingerprint
    assert a.fingerprint != tl.data.load_digits(tl.preprocess(64)).fingerprint


def test_stratified_split_keeps_every_class_share_and_never_overlaps():
    labels = np.repeat([0, 1, 2], [60, 30, 10])
    train, test = tl.data.stratified_split(labels, 0.25, seed=0)
    assert len(test) == 25 and not set(train) & set(test) and len(set(train) | set(test)) == 100
    assert np.bincount(labels[test]).tolist() == [15, 8, 2] or np.bincount(labels[test]).tolist() == [15, 7, 3]
    assert np.array_equal(tl.data.stratified_split(labels, 0.25, seed=0)[1], test)
    fit, val = tl.validation_split(train, seed=0, labels=labels)  # any labelled data, not only ELPV
    assert set(fit) | set(val) == set(train) and not set(val) & set(test)
