"""The one input pipeline and the symmetries of a solar cell (tlcourse/transforms.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import tlcourse as tl
from tlcourse.transforms import QuarterTurn, random_dihedral


def _image(height=40, width=30, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (height, width), dtype=np.uint8))


def _poses(image: torch.Tensor) -> list[torch.Tensor]:
    """The eight poses of a square image: four quarter turns, with and without a mirror."""
    return [torch.rot90(t, k, dims=(-2, -1)) for t in (image, image.flip(-1)) for k in range(4)]


def test_preprocess_gives_a_square_three_channel_image_scaled_like_the_weights():
    x = tl.preprocess(16)(_image())
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])  # grey copied to three channels
    assert -1.0 <= float(x.min()) < 0 < float(x.max()) <= 1.0


def test_preprocess_takes_other_normalisation_statistics():
    image = _image()
    unit = tl.preprocess(16, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))(image)
    torch.testing.assert_close(unit, tl.preprocess(16)(image) * 0.5 + 0.5)
    assert repr(tl.preprocess(16, mean=(0.2,) * 3, std=(0.3,) * 3)) != repr(tl.preprocess(16))  # its own cache entry


def test_quarter_turn_turns_an_image_like_torch_rot90():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    for turns in range(4):
        assert torch.equal(QuarterTurn(turns)(x), torch.rot90(x, turns, dims=(-2, -1)))
    assert torch.equal(QuarterTurn(4)(x), x) and torch.equal(QuarterTurn(-1)(x), QuarterTurn(3)(x))


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
def test_preprocess_with_turns_equals_rot90_of_preprocess(turns):
    image = _image()
    expected = torch.rot90(tl.preprocess(16)(image), turns, dims=(-2, -1))
    assert torch.equal(tl.preprocess(16, turns=turns)(image), expected)


@pytest.mark.parametrize("turns", [0, 1, 3])
def test_a_mirrored_view_is_the_left_right_flip_then_the_turn(turns):
    image = _image()
    expected = torch.rot90(tl.preprocess(16)(image).flip(-1), turns, dims=(-2, -1))
    assert torch.equal(tl.preprocess(16, turns=turns, mirror=True)(image), expected)


def test_each_view_gets_its_own_cache_key_and_no_turn_shares_the_lessons_cache():
    reprs = {repr(tl.preprocess(32, turns=k, mirror=m)) for k in range(4) for m in (False, True)}
    assert len(reprs) == 8
    assert repr(tl.preprocess(32, turns=0)) == repr(tl.preprocess(32)) == repr(tl.preprocess(32, turns=4))


def test_augmented_preprocess_shows_each_image_in_only_its_eight_dihedral_poses():
    image = _image(24, 24)
    poses = _poses(tl.preprocess(16)(image))
    augment = tl.preprocess(16, augment=True)
    torch.manual_seed(0)
    seen = set()
    for _ in range(200):
        x = augment(image)
        matches = [i for i, pose in enumerate(poses) if torch.equal(x, pose)]
        assert matches, "augmentation produced something that is not a pose of the cell"
        seen.add(matches[0])
    assert seen == set(range(8))  # every pose is reached (missing one in 200 draws: p < 1e-10)
    assert repr(augment) != repr(tl.preprocess(16))


def test_random_dihedral_turns_each_image_into_one_of_its_eight_poses():
    images = torch.arange(2 * 16, dtype=torch.float32).reshape(2, 1, 4, 4).repeat(16, 1, 1, 1)
    before = images.clone()
    out = random_dihedral(images, torch.Generator().manual_seed(0))
    assert torch.equal(images, before)  # the input is not modified in place
    for original, moved in zip(images, out):
        assert any(torch.equal(moved, pose) for pose in _poses(original))
    assert len({tuple(o.flatten().tolist()) for o in out[::2]}) > 1  # not always the same pose


def test_random_dihedral_reaches_all_eight_poses_and_repeats_with_a_seeded_generator():
    image = torch.arange(16, dtype=torch.float32).reshape(1, 4, 4)
    batch = image.expand(400, 1, 4, 4)
    out = random_dihedral(batch, torch.Generator().manual_seed(1))
    poses = _poses(image)
    reached = {next(i for i, pose in enumerate(poses) if torch.equal(o, pose)) for o in out}
    assert reached == set(range(8))
    assert torch.equal(out, random_dihedral(batch, torch.Generator().manual_seed(1)))


def test_random_dihedral_treats_a_single_image_as_a_batch_of_one():
    image = torch.arange(2 * 5 * 5, dtype=torch.float32).reshape(2, 5, 5)
    torch.manual_seed(0)
    for _ in range(10):
        out = random_dihedral(image)
        assert out.shape == image.shape and any(torch.equal(out, pose) for pose in _poses(image))
