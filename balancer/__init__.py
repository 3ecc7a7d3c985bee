"""balancer: train classifiers on class-imbalanced data.

Equal-frequency minibatches drawn from circular per-class buffers, a fine-tune phase at the
true class frequencies, and wrappers that add both to an existing ``DataLoader``.
"""

from balancer._schedule import FineTuneSchedule, set_train_mode
from balancer.datasets import SHIPPED_DATASETS, MedMNIST, load_chestxray14_labels, load_medmnist
from balancer.labels import MultiLabels, labels_of
from balancer.loader import BalancedDataLoader, balance, balanced_loader
from balancer.samplers import BalancedBatchSampler, MultiLabelBalancedSampler, RepeatFactorSampler
from balancer.streams import BalancedStream
from balancer.transforms import RandomFlipShift, random_flip_shift

__all__ = [
    "SHIPPED_DATASETS",
    "BalancedBatchSampler",
    "BalancedDataLoader",
    "BalancedStream",
    "FineTuneSchedule",
    "MedMNIST",
    "MultiLabelBalancedSampler",
    "MultiLabels",
    "RandomFlipShift",
    "RepeatFactorSampler",
    "balance",
    "balanced_loader",
    "labels_of",
    "load_chestxray14_labels",
    "load_medmnist",
    "random_flip_shift",
    "set_train_mode",
]

__version__ = "0.2.0"
