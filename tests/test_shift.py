"""Distances between data sets and images from elsewhere (lesson 05, tlcourse/shift.py)."""
from __future__ import annotations

import numpy as np
import pytest

import tlcourse as tl
from tlcourse.shift import frechet_distance, mmd


def test_mmd_separates_shifted_samples_from_samples_of_one_distribution():
    rng = np.random.default_rng(0)
    a, b, shifted = rng.normal(size=(200, 5)), rng.normal(size=(200, 5)), rng.normal(size=(200, 5)) + 1.0
    assert abs(mmd(a, b, bandwidth=2.0)) < 0.01 < mmd(a, shifted, bandwidth=2.0)


def test_mmd_is_symmetric_and_grows_with_the_shift():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(100, 3))
    distances = [mmd(a, rng.normal(size=(100, 3)) + shift, bandwidth=1.5) for shift in (0.5, 1.0, 2.0)]
    assert distances == sorted(distances)
    b = rng.normal(size=(80, 3)) + 1
    assert mmd(a, b, 1.5) == pytest.approx(mmd(b, a, 1.5))


def test_frechet_distance_matches_the_closed_form_for_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20000, 2))
    b = rng.normal(size=(20000, 2)) * 2 + 3     # mean shift 3 per axis, std 1 -> 2
    # closed form: |3,3|^2 + trace(I + 4I - 2*2I) = 18 + 2
    assert frechet_distance(a, b) == pytest.approx(20, rel=0.03)
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("distance", ["frechet", "mmd"])
def test_distance_matrix_is_symmetric_and_puts_shifted_samples_further(distance):
    rng = np.random.default_rng(0)
    samples = {"a": rng.normal(size=(150, 8)), "b": rng.normal(size=(150, 8)), "shifted": rng.normal(size=(150, 8)) + 1}
    matrix = tl.shift.distance_matrix(samples, distance=distance, dims=4)
    assert matrix.shape == (3, 3) and np.allclose(matrix, matrix.T, atol=1e-6)
    assert np.all(np.diag(matrix) == 0)
    assert matrix[0, 1] < matrix[0, 2] and matrix[0, 1] < matrix[1, 2]


def test_distance_matrix_rejects_an_unknown_distance():
    with pytest.raises(ValueError, match="frechet.*mmd"):
        tl.shift.distance_matrix({"a": np.zeros((4, 2)), "b": np.ones((4, 2))}, distance="euclid")


def test_random_crops_are_square_pieces_of_the_photo():
    photo = np.arange(40 * 60 * 3, dtype=np.uint8).reshape(40, 60, 3)
    crops = tl.shift.random_crops(photo, count=5, seed=0, min_fraction=0.5)
    assert len(crops) == 5
    assert all(c.shape[0] == c.shape[1] and 20 <= c.shape[0] <= 40 and c.shape[2] == 3 for c in crops)
    # each crop is a window of the photo, cut out where it lay
    assert all(any(np.array_equal(c, photo[t:t + len(c), l:l + len(c)]) for t in range(41 - len(c))
                   for l in range(61 - len(c))) for c in crops)
    again = tl.shift.random_crops(photo, count=5, seed=0, min_fraction=0.5)
    assert all(np.array_equal(a, b) for a, b in zip(crops, again))


def test_rendered_words_are_dark_text_on_white_and_bold_is_darker():
    regular = tl.shift.render_words(["defect", "crack"], bold=False, renders=2, seed=0)
    bold = tl.shift.render_words(["defect", "crack"], bold=True, renders=2, seed=0)
    assert len(regular) == 4 and regular[0].shape == (160, 160) and regular[0].max() == 255 and regular[0].min() < 50
    assert np.mean([b.mean() for b in bold]) < np.mean([r.mean() for r in regular])
