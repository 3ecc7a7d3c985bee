"""The registry of sampler kinds: every kind round-trips through ``balance(sampler=name)``,
its state id is what its checkpoints record, and every entry point builds through it."""

from __future__ import annotations

import numpy as np
import pytest
from torch.utils.data import DataLoader, Dataset

from balancer import (
    BalancedBatchSampler,
    FineTuneSchedule,
    MultiLabelBalancedSampler,
    RepeatFactorSampler,
    balance,
)
from balancer.samplers import SamplerKind, _registry, register, sampler_kind, sampler_kinds

SINGLE = np.random.default_rng(0).permutation(np.repeat([0, 1, 2], [30, 8, 3]))
MULTI = (np.random.default_rng(1).random((41, 4)) < [0.05, 0.2, 0.4, 0.1]).astype(np.int64)
MULTI[np.arange(41), np.random.default_rng(2).integers(0, 4, 41)] = 1  # every row labelled
OPTIONS = {"repeat-factor": {"threshold": 0.5}}


class Indexed(Dataset):
    """Item ``i`` is ``i``; the labels are given to ``balance`` directly."""

    def __len__(self) -> int:
        return len(SINGLE)

    def __getitem__(self, index: int) -> int:
        return index


class ArrayIndexed(Indexed):
    """Takes a whole batch of indices at once, as an array."""

    supports_index_arrays = True

    def __getitems__(self, indices: np.ndarray) -> list[int]:
        assert isinstance(indices, np.ndarray)
        return [int(i) for i in indices]


def labels_for(kind: SamplerKind) -> np.ndarray:
    return SINGLE if kind.labels == "single" else MULTI


def test_the_table_holds_the_released_kinds_with_their_checkpoint_ids():
    # State ids are written into every checkpoint: changing one breaks loading old ones.
    table = {kind.name: (kind.sampler_class, kind.labels, kind.state_id)
             for kind in sampler_kinds()}
    assert table == {
        "balanced": (BalancedBatchSampler, "single", None),
        "label-balanced": (MultiLabelBalancedSampler, "multi", "label-balanced"),
        "repeat-factor": (RepeatFactorSampler, "multi", "repeat-factor"),
    }
    for what in ("name", "sampler_class", "state_id"):
        values = [getattr(kind, what) for kind in sampler_kinds()]
        assert len(set(values)) == len(values), what


@pytest.mark.parametrize("kind", sampler_kinds(), ids=lambda kind: kind.name)
def test_every_kind_round_trips_through_balance(kind):
    labels, options = labels_for(kind), OPTIONS.get(kind.name, {})
    schedule = FineTuneSchedule(3, 1)
    loader = balance(DataLoader(Indexed(), batch_size=4, shuffle=True), labels, seed=5,
                     schedule=schedule, sampler=kind.name, **options)
    assert type(loader.batch_sampler) is kind.sampler_class
    assert sampler_kind(kind.name) is kind and sampler_kind(kind.sampler_class) is kind
    direct = kind.sampler_class(labels, 4, seed=5, schedule=schedule, **options)
    for epoch in range(3):
        loader.set_epoch(epoch)
        direct.set_epoch(epoch)
        assert [batch.tolist() for batch in loader] == list(direct)
    loader.set_epoch(1)
    iterator = iter(loader)
    next(iterator)
    state = loader.state_dict()
    assert state["settings"].get("plan", None) == kind.state_id
    assert ("plan" in state["settings"]) == (kind.state_id is not None)
    restored = balance(DataLoader(Indexed(), batch_size=4), labels, seed=5, schedule=schedule,
                       sampler=kind.sampler_class, **options)
    restored.load_state_dict(state)
    assert [batch.tolist() for batch in restored] == [batch.tolist() for batch in iterator]


def test_a_state_of_another_kind_names_the_kind_that_saved_it():
    built = {kind.name: kind.sampler_class(labels_for(kind), 4, **OPTIONS.get(kind.name, {}))
             for kind in sampler_kinds()}
    for saver in sampler_kinds():
        for loader in sampler_kinds():
            if saver is not loader:
                with pytest.raises(ValueError, match=rf"taken from a "
                                   rf"{saver.sampler_class.__name__}, not from a "
                                   rf"{loader.sampler_class.__name__}"):
                    built[loader.name].load_state_dict(built[saver.name].state_dict())


def test_an_unknown_name_or_an_option_of_another_kind_is_refused_with_the_kinds():
    with pytest.raises(ValueError, match=r"sampler should be one of \['balanced', "
                                         r"'label-balanced', 'repeat-factor'\].*sampler='nope'"):
        sampler_kind("nope")
    with pytest.raises(TypeError, match=r"threshold is not an option of BalancedBatchSampler "
                                        r"\(sampler='balanced'\).*pass sampler='repeat-factor'"):
        sampler_kind("balanced", {"threshold": 0.1})


class Tagged(BalancedBatchSampler):
    """A new kind, added as a module would add it: a class and its registry entry."""


@pytest.fixture
def tagged(monkeypatch):
    monkeypatch.setattr(_registry, "_KINDS", dict(_registry._KINDS))
    return register(SamplerKind(name="tagged", sampler_class=Tagged, labels="single",
                                state_id="tagged", read_labels=lambda dataset, labels: labels))


def test_register_refuses_a_name_class_or_state_id_already_taken(tagged):
    for clash in ({"name": "balanced"}, {"sampler_class": BalancedBatchSampler},
                  {"state_id": "repeat-factor"}):
        entry = {"name": "other", "sampler_class": type("Other", (Tagged,), {}),
                 "labels": "single", "state_id": "other", "read_labels": tagged.read_labels,
                 **clash}
        with pytest.raises(ValueError, match=rf"has the {next(iter(clash))} of the registered"):
            register(SamplerKind(**entry))


def test_a_registered_kind_is_built_by_balance_and_every_adapter(tagged, tmp_path):
    """One registry entry is all balance(), the adapters and the checkpoint checks need."""
    import lightning as L
    import torch
    import transformers
    from accelerate import Accelerator

    from balancer.integrations import lightning as balancer_lightning
    from balancer.integrations.accelerate import prepare
    from balancer.integrations.torchdata import stateful_loader
    from balancer.integrations.transformers import BalancedTrainer

    def plain():
        return DataLoader(Indexed(), batch_size=4, shuffle=True)

    reference = BalancedBatchSampler(SINGLE, 4, seed=2)
    expected = list(reference)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=2, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)  # real, not started: what the hook sees
    built = {
        "balance": balance(plain(), SINGLE, seed=2, sampler="tagged").batch_sampler,
        "lightning": balancer_lightning.balance(trainer, plain(), SINGLE, seed=2,
                                                sampler="tagged").batch_sampler,
        "accelerate": prepare(Accelerator(cpu=True), plain(), SINGLE, seed=2,
                              sampler="tagged").balanced_sampler,
        "torchdata": stateful_loader(plain(), SINGLE, seed=2, sampler="tagged").batch_sampler,
    }
    for where, sampler in built.items():
        assert type(sampler) is Tagged, where
        assert list(sampler) == expected, where
        assert sampler.state_dict()["settings"]["plan"] == "tagged", where
    with pytest.raises(ValueError, match=r"taken from a Tagged, not from a BalancedBatchSampler"):
        reference.load_state_dict(built["balance"].state_dict())
    args = transformers.TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[],
                                          num_train_epochs=2)
    hf = BalancedTrainer(model=torch.nn.Linear(2, 2), args=args, train_dataset=Indexed(),
                         labels=SINGLE, sampler="tagged")
    assert type(hf.get_train_dataloader().balanced_sampler) is Tagged


def test_accelerate_hands_index_arrays_to_a_dataset_that_takes_them_as_balance_does():
    from accelerate import Accelerator

    from balancer.integrations.accelerate import prepare

    for dataset, expected in ((ArrayIndexed(), "numpy"), (Indexed(), "list")):
        balanced = balance(DataLoader(dataset, batch_size=4), SINGLE, seed=4)
        prepared = prepare(Accelerator(cpu=True), DataLoader(dataset, batch_size=4), SINGLE,
                           seed=4)
        assert balanced.batch_sampler.batch_type == expected
        assert prepared.balanced_sampler.batch_type == expected
        assert [batch.tolist() for batch in prepared] == [batch.tolist() for batch in balanced]
