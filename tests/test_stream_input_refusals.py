"""Bad input to a balanced stream is refused with an error naming the argument (or the item's
position and keys), the value and the fix: never a hang or unbounded memory."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from balancer import BalancedStream, FineTuneSchedule, balance


class Records(IterableDataset):
    """Dict items ``{"x": i, "cls": label}``; ``labels`` picks each item's class."""

    def __init__(self, labels, key="cls"):
        self.labels = list(labels)
        self.key = key

    def __iter__(self):
        return ({"x": i, self.key: label} for i, label in enumerate(self.labels))


def serve(stream, batch_size=4):
    return list(DataLoader(stream, batch_size=batch_size))


def test_an_item_without_a_label_names_its_position_and_keys():
    stream = BalancedStream(Records([0, 1, 0], key="kind"), batch_size=2, classes=2,
                            labels="cls")
    with pytest.raises(ValueError, match=r"item 0 of the stream has no label at labels='cls': "
                                         r"it is a dict with keys \['x', 'kind'\]"):
        serve(stream, 2)


def test_default_labels_look_for_the_usual_keys_and_say_where_they_looked():
    stream = BalancedStream(Records([0, 1], key="kind"), batch_size=2, classes=2)
    with pytest.raises(ValueError, match=r"item 0 of the stream has no label where labels=None "
                                         r"looks .*'label', 'labels', 'target'.*keys \['x', "
                                         r"'kind'\]; pass labels="):
        serve(stream, 2)
    assert len(serve(BalancedStream(Records([0, 1] * 4, key="label"), batch_size=2,
                                    classes=2), 2)) == 4


def test_a_label_function_that_raises_is_reraised_with_the_position():
    def label(item):
        if item["x"] == 5:
            raise KeyError("broken record")
        return item["cls"]

    stream = BalancedStream(Records([0, 1] * 10), batch_size=4, classes=2, labels=label)
    with pytest.raises(KeyError, match=r"labels='label' raised KeyError on item 5 of the stream "
                                       r"\(a dict with keys \['x', 'cls'\]\): 'broken record'"):
        serve(stream)


def test_a_label_not_in_classes_is_refused_with_the_position():
    stream = BalancedStream(Records([0, 1, 2]), batch_size=2, classes=2, labels="cls")
    with pytest.raises(ValueError, match=r"item 2 of the stream has label 2, which is not one "
                                         r"of the classes 0..1 \(classes=2\)"):
        serve(stream, 2)
    stream = BalancedStream(Records(["cat", "dog", "cow"]), batch_size=2,
                            classes=["cat", "dog"], labels="cls")
    with pytest.raises(ValueError, match=r"item 2 of the stream has label 'cow', which is not "
                                         r"in classes=\['cat', 'dog'\]"):
        serve(stream, 2)


def test_a_multi_label_item_is_refused_saying_why():
    stream = BalancedStream(Records([[0, 1], [1]]), batch_size=2, classes=2, labels="cls")
    with pytest.raises(ValueError, match=r"item 0 of the stream has several labels \(\[0, 1\]\): "
                                         r"multi-label streams are not supported: each balanced "
                                         r"batch holds a fixed number of items per class"):
        serve(stream, 2)
    tensor_labels = Records([torch.tensor([1, 0]), torch.tensor([0, 1])])
    with pytest.raises(ValueError, match="multi-label streams are not supported"):
        serve(BalancedStream(tensor_labels, batch_size=2, classes=2, labels="cls"), 2)


def test_one_element_tensor_labels_are_read_as_their_value():
    labels = [torch.tensor(i % 2) for i in range(8)]
    batches = serve(BalancedStream(Records(labels), batch_size=4, classes=2, labels="cls"))
    assert [b["cls"].bincount().tolist() for b in batches] == [[2, 2]] * 2


def test_a_stream_shorter_than_one_batch_is_an_error_not_a_hang():
    stream = BalancedStream(Records([0, 1, 0]), batch_size=4, classes=2, labels="cls")
    with pytest.raises(ValueError, match=r"the stream gave only 3 item\(s\) in this pass, fewer "
                                         r"than one batch \(batch_size=4\)"):
        serve(stream)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(buffer_size=0), ValueError, r"buffer_size should be an integer >= 1, but got "
                                      r"buffer_size=0; pass the number of items each class keeps"),
    (dict(buffer_size=2.5), TypeError, r"buffer_size should be an integer, but got "
                                       r"buffer_size=2.5"),
    (dict(batch_size=0), ValueError, r"batch_size should be an integer >= 1, but got "
                                     r"batch_size=0"),
    (dict(wait=3), ValueError, r"wait should be an integer >= 4, but got wait=3; .*at least "
                               r"batch_size"),
    (dict(classes=None), TypeError, r"classes is required for a stream"),
    (dict(classes=1), ValueError, r"classes should be at least 2, but got classes=1"),
    (dict(classes=["a", "a"]), ValueError, r"classes should list each label value once"),
    (dict(classes="ab"), TypeError, r"classes should be the number of classes \(int\) or the "
                                    r"list of label values, but got classes='ab'"),
    (dict(labels=2.0), TypeError, r"labels should be a key of the item \(str or int\), a "
                                  r"function of the item, or None, but got labels=2.0"),
    (dict(split="rows"), ValueError, r"split should be one of \['auto', 'position', "
                                     r"'source'\], but got split='rows'"),
    (dict(schedule=3), TypeError, r"schedule should be a balancer.FineTuneSchedule or None"),
    (dict(rank=2, num_replicas=2), ValueError, r"rank should be an integer <= 1, but got rank=2"),
    (dict(seed=-1), ValueError, r"seed should be an integer >= 0, but got seed=-1"),
])
def test_bad_settings_are_refused_at_construction(kwargs, error, message):
    settings = dict(batch_size=4, classes=2, labels="cls") | kwargs
    with pytest.raises(error, match=message):
        BalancedStream(Records([0, 1] * 4), **settings)


def test_a_one_shot_iterator_or_a_map_style_dataset_is_refused_as_source():
    with pytest.raises(TypeError, match=r"source is an iterator \(generator\), which can be read "
                                        r"only once; pass a re-iterable"):
        BalancedStream((i for i in range(8)), batch_size=2, classes=2)
    dataset = TensorDataset(torch.zeros(4), torch.zeros(4))
    with pytest.raises(TypeError, match=r"source is a map-style Dataset \(TensorDataset\); "
                                        r"balance its DataLoader with balancer.balance"):
        BalancedStream(dataset, batch_size=2, classes=2)
    with pytest.raises(TypeError, match=r"source should be an iterable stream of items .* but "
                                        r"got int"):
        BalancedStream(3, batch_size=2, classes=2)


def test_set_epoch_outside_the_schedule_is_refused():
    stream = BalancedStream(Records([0, 1] * 4), batch_size=4, classes=2, labels="cls",
                            schedule=FineTuneSchedule(3))
    with pytest.raises(ValueError, match=r"epoch should be an integer <= 2, but got epoch=3"):
        stream.set_epoch(3)
    with pytest.raises(ValueError, match=r"epoch should be an integer >= 0, but got epoch=-1"):
        stream.set_epoch(-1)


def test_balance_of_a_stream_refuses_what_a_stream_cannot_do():
    loader = DataLoader(Records([0, 1] * 8), batch_size=4)
    with pytest.raises(TypeError, match=r"classes is required for a stream"):
        balance(loader, labels="cls")
    with pytest.raises(TypeError, match=r"balance\(\) got samples_per_epoch=100 for a stream "
                                        r"\(loader.dataset is an IterableDataset, Records\)"):
        balance(loader, labels="cls", classes=2, samples_per_epoch=100)
    with pytest.raises(TypeError, match=r"balance\(\) got sampler='label-balanced' for a stream"):
        balance(loader, labels="cls", classes=2, sampler="label-balanced")
    with pytest.raises(TypeError, match=r"balance\(\) got threshold=0.1 for a stream"):
        balance(loader, labels="cls", classes=2, threshold=0.1)
    with pytest.raises(ValueError, match=r"batch_size=None \(automatic batching disabled\)"):
        balance(DataLoader(Records([0, 1]), batch_size=None), labels="cls", classes=2)
    balanced = balance(loader, labels="cls", classes=2)
    with pytest.raises(ValueError, match=r"loader.dataset is already a BalancedStream"):
        balance(balanced, labels="cls", classes=2)


def test_classes_on_a_map_style_loader_is_refused():
    loader = DataLoader(TensorDataset(torch.zeros(4), torch.tensor([0, 1, 0, 1])), batch_size=2)
    with pytest.raises(TypeError, match=r"balance\(\) got classes=2, which only a stream"):
        balance(loader, labels=[0, 1, 0, 1], classes=2)
