"""encode_labels: the canonical form of every accepted kind of labels."""

import numpy as np
import torch

from balancer.labels import encode_labels


def test_bool_labels_keep_bool_classes():
    for labels in ([True, False, True, True], np.array([True, False, True, True]),
                   torch.tensor([True, False, True, True])):
        encoded = encode_labels(labels)
        assert encoded.classes.dtype == np.bool_
        assert encoded.classes.tolist() == [False, True]
        assert encoded.codes.tolist() == [1, 0, 1, 1]
        assert encoded.counts.tolist() == [1, 3]


def test_integer_labels_keep_their_values():
    encoded = encode_labels(np.array([7, -2, 7, 100], dtype=np.int16))
    assert encoded.classes.tolist() == [-2, 7, 100]
    assert encoded.codes.tolist() == [1, 0, 1, 2]
