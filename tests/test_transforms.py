"""balancer.transforms: the flips and shifts per batch, their draws, and their streams."""

import pickle

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, Dataset

from balancer.study._train import augment
from balancer.transforms import RandomFlipShift, random_flip_shift


def reference(images, generator, shift):
    """Each image moved on its own with slices, from the same draws in the same order."""
    b, _c, h, w = images.shape
    flip = torch.rand(b, generator=generator) < 0.5
    offsets = torch.randint(0, 2 * shift + 1, (2, b), generator=generator)
    out = torch.zeros_like(images)
    for k in range(b):
        image = images[k].flip(2) if flip[k] else images[k]
        dy, dx = shift - int(offsets[0, k]), shift - int(offsets[1, k])  # the move, in pixels
        r0, r1, c0, c1 = max(dy, 0), min(h, h + dy), max(dx, 0), min(w, w + dx)
        if r0 < r1 and c0 < c1:  # else the image moved out of its frame entirely
            out[k, :, r0:r1, c0:c1] = image[:, r0 - dy: r1 - dy, c0 - dx: c1 - dx]
    return out


@given(seed=st.integers(0, 2**32), batch=st.integers(1, 9), channels=st.sampled_from([1, 3]),
       height=st.integers(1, 9), width=st.integers(1, 9), shift=st.integers(0, 4))
@settings(max_examples=60, deadline=None)
def test_equals_per_image_slicing_and_the_study_augmentation(seed, batch, channels, height,
                                                             width, shift):
    images = torch.rand(batch, channels, height, width,
                        generator=torch.Generator().manual_seed(seed))
    generators = [torch.Generator().manual_seed(seed) for _ in range(3)]
    ours = random_flip_shift(images, generators[0], shift=shift)
    assert ours.shape == images.shape and ours.is_contiguous()
    torch.testing.assert_close(ours, reference(images, generators[1], shift), rtol=0, atol=0)
    # Bit for bit the study's augmentation from the same generator state (so it can switch).
    torch.testing.assert_close(ours, augment(images, generators[2], shift), rtol=0, atol=0)
    # The generators advanced alike: the next draws agree too.
    assert len({float(torch.rand(1, generator=g)) for g in generators}) == 1


def test_deterministic_given_the_generator_and_dtype_agnostic():
    images = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8)
    a = random_flip_shift(images, torch.Generator().manual_seed(1))
    b = random_flip_shift(images, torch.Generator().manual_seed(1))
    c = random_flip_shift(images, torch.Generator().manual_seed(2))
    assert a.dtype == torch.uint8 and torch.equal(a, b) and not torch.equal(a, c)
    torch.testing.assert_close(
        random_flip_shift(images.float(), torch.Generator().manual_seed(1)), a.float())


def test_draws_are_uniform_over_flips_and_shifts():
    """Distribution: one bright pixel at (4, 2) of a 9 x 9 image lands on row 4 + dy and on
    column 2 + dx (unflipped) or 6 + dx (flipped), dy and dx uniform in -2..2, flip 1/2."""
    n = 20_000
    image = torch.zeros(n, 1, 9, 9)
    image[:, 0, 4, 2] = 1.0
    moved = random_flip_shift(image, torch.Generator().manual_seed(0), shift=2)
    assert torch.equal(moved.sum((1, 2, 3)), torch.ones(n))  # nothing falls off the image
    where = moved.reshape(n, -1).argmax(1)
    rows, cols = torch.bincount(where // 9, minlength=9), torch.bincount(where % 9, minlength=9)
    assert rows[[0, 1, 7, 8]].sum() == 0 and (rows[2:7] - n / 5).abs().max() < 300
    expected = torch.tensor([1, 1, 1, 1, 2, 1, 1, 1, 1]) * n / 10  # column 4: both flips
    assert (cols - expected).abs().max() < 300


def test_random_flip_shift_follows_the_device_of_the_images():
    images = torch.rand(4, 1, 5, 5)
    out = random_flip_shift(images, torch.Generator().manual_seed(0))
    assert out.device == images.device


def test_class_streams_are_pure_functions_of_seed_and_epoch():
    images = torch.rand(32, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    first, same = RandomFlipShift(seed=4), RandomFlipShift(seed=4)
    assert torch.equal(first(images), same(images))
    assert torch.equal(first(images), same(images))  # the streams continue alike
    other = RandomFlipShift(seed=5)
    assert not torch.equal(RandomFlipShift(seed=4)(images), other(images))
    first.set_epoch(3)
    fresh = RandomFlipShift(seed=4)
    fresh.set_epoch(3)
    assert torch.equal(first(images), fresh(images))
    assert not torch.equal(fresh(images), RandomFlipShift(seed=4)(images))
    # A copy sent to a worker restarts its own stream instead of carrying the position.
    clone = pickle.loads(pickle.dumps(first))
    restarted = RandomFlipShift(seed=4)
    restarted.set_epoch(3)
    assert torch.equal(clone(images), restarted(images))
    assert repr(first) == "RandomFlipShift(shift=2, seed=4)"


class Copies(Dataset):
    """The same image at every index, flipped and shifted by the transform in the worker."""

    def __init__(self, transform):
        self.image = torch.arange(100.0).reshape(1, 10, 10)
        self.transform = transform

    def __len__(self):
        return 256

    def __getitem__(self, index):
        return self.image

    def __getitems__(self, indices):
        return list(self.transform(self.image.expand(len(indices), 1, 10, 10).contiguous()))


def test_workers_draw_independent_reproducible_streams():
    def run():
        loader = DataLoader(Copies(RandomFlipShift(seed=0)), batch_size=64, num_workers=2)
        return list(loader)

    batches, again = run(), run()
    assert all(torch.equal(a, b) for a, b in zip(batches, again, strict=True))
    # Batches 0 and 1 come from workers 0 and 1, which start from different streams.
    assert not torch.equal(batches[0], batches[1])
    main = list(DataLoader(Copies(RandomFlipShift(seed=0)), batch_size=64))
    assert not torch.equal(main[0], batches[0])


@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda: random_flip_shift([[0.0]], torch.Generator()), TypeError,
     "images should be a .* tensor, but got list; convert"),
    (lambda: random_flip_shift(torch.zeros(1, 5, 5), torch.Generator()), ValueError,
     r"\(B, C, H, W\) batch, but got a tensor of shape \(1, 5, 5\); add a batch dimension"),
    (lambda: random_flip_shift(torch.zeros(1, 1, 5, 5), 0), TypeError,
     "generator should be a torch.Generator, but got int"),
    (lambda: random_flip_shift(torch.zeros(1, 1, 5, 5), torch.Generator(), shift=-1), ValueError,
     "shift should be an integer >= 0, but got shift=-1"),
    (lambda: RandomFlipShift(shift=1.5), TypeError, "shift should be an integer, but got shift=1.5"),
    (lambda: RandomFlipShift(seed=-3), ValueError, "seed should be an integer >= 0"),
    (lambda: RandomFlipShift().set_epoch("1"), TypeError, "epoch should be an integer"),
    (lambda: RandomFlipShift()(torch.zeros(5, 5)), ValueError, "add a batch dimension"),
])
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
