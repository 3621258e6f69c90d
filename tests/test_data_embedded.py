import numpy as np
import pytest
import torch

from ddlib.data import canonical_name, load_dataset
from ddlib.data.embedded import stratified_split
from ddlib.core.runtime import make_generator


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist5k")


def test_mnist5k_shapes_split_and_balance(mnist):
    assert mnist.images_train.shape == (4000, 1, 28, 28)
    assert mnist.images_test.shape == (1000, 1, 28, 28)
    assert mnist.images_train.dtype == torch.float32
    assert mnist.num_classes == 10 and mnist.im_size == (28, 28) and mnist.channel == 1
    assert torch.bincount(mnist.labels_train).tolist() == [400] * 10
    assert torch.bincount(mnist.labels_test).tolist() == [100] * 10


def test_mnist5k_is_normalised_with_train_statistics(mnist):
    assert abs(float(mnist.images_train.mean())) < 1e-4
    assert abs(float(mnist.images_train.std()) - 1) < 1e-3
    raw = mnist.denormalize(mnist.images_train)
    assert float(raw.min()) > -1e-5 and float(raw.max()) < 1 + 1e-5
    assert 0.1 < mnist.mean[0] < 0.15  # MNIST's mean pixel is about 0.13


def test_mnist5k_is_deterministic():
    a, b = load_dataset("mnist5k"), load_dataset("mnist5k")
    assert torch.equal(a.images_train, b.images_train) and torch.equal(a.labels_test, b.labels_test)


def test_digits_shapes():
    digits = load_dataset("digits")
    assert digits.images_train.shape[1:] == (1, 8, 8)
    assert len(digits.labels_train) + len(digits.labels_test) == 1797
    assert digits.num_classes == 10


def test_class_index_points_at_the_right_labels(mnist):
    for c in range(mnist.num_classes):
        index = mnist.class_indices[c]
        assert len(index) == 400 and bool((mnist.labels_train[index] == c).all())


def test_sample_class_is_seeded_and_without_replacement(mnist):
    a = mnist.sample_class(3, 5, make_generator(1))
    b = mnist.sample_class(3, 5, make_generator(1))
    assert torch.equal(a, b) and a.shape == (5, 1, 28, 28)
    everything = mnist.sample_class(3, 400, make_generator(2))
    assert len(torch.unique(everything.flatten(1), dim=0)) == len(torch.unique(mnist.images_of_class(3).flatten(1), dim=0))
    with pytest.raises(ValueError, match="class 10 out of range"):
        mnist.sample_class(10, 1, make_generator(0))


def test_draw_class_gives_at_most_the_class_like_the_dm_code(mnist):
    """DM's get_images(c, n): a shuffle cut to n, so a short class gives each of its images once."""
    assert torch.equal(mnist.draw_class(3, 5, make_generator(1)), mnist.sample_class(3, 5, make_generator(1)))
    everything = mnist.draw_class(3, 1000, make_generator(2))
    assert everything.shape == (400, 1, 28, 28)
    own = mnist.images_of_class(3).flatten(1)
    assert torch.equal(torch.unique(everything.flatten(1), dim=0), torch.unique(own, dim=0))
    with pytest.raises(ValueError, match="class 10 out of range"):
        mnist.draw_class(10, 1, make_generator(0))


def test_stratified_split_every_fifth_per_class():
    labels = np.array([0] * 10 + [1] * 5)
    train, test = stratified_split(labels)
    assert test.tolist() == [4, 9, 14]
    assert sorted(train.tolist() + test.tolist()) == list(range(15))


def test_unknown_name_and_missing_root():
    assert canonical_name("CIFAR-10") == "cifar10"
    with pytest.raises(ValueError, match="unknown data set 'cifar11'"):
        load_dataset("cifar11")
    with pytest.raises(ValueError, match="pass data_root"):
        load_dataset("cifar10")


def test_repr_names_the_data_set(mnist):
    assert "mnist5k" in repr(mnist) and "train=4000" in repr(mnist)
