"""BatchNorm in the fine-tune phase: ``set_train_mode`` and its entries on the schedule and the
loader keep the balanced phase's running statistics (``"frozen"``) or re-estimate them
(``"train"``), and leave balanced epochs and every parameter's training alone."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from balancer import BalancedBatchSampler, FineTuneSchedule, balance, set_train_mode


class _Nested(nn.Module):
    """BatchNorm2d inside a block inside the model, BatchNorm1d in the head, and a GroupNorm
    (normalises each sample alone: never touched)."""

    def __init__(self) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                   nn.GroupNorm(2, 4), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Dropout(0.5),
                                  nn.Linear(6, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(x))


def _model() -> _Nested:
    torch.manual_seed(0)
    return _Nested()


def _batchnorms(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _statistics(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: buffer.clone() for name, buffer in model.named_buffers()}


def _epoch(model: nn.Module, *, seed: int = 1) -> None:
    """Two optimizer steps on inputs shifted away from the statistics' initial values."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        inputs = torch.randn(8, 1, 5, 5, generator=generator) * 3 + 2
        targets = torch.randint(0, 3, (8,), generator=generator)
        loss = nn.functional.cross_entropy(model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_frozen_finetune_keeps_running_statistics_and_trains_every_parameter():
    model = _model()
    before = _statistics(model)
    weights = {name: p.clone() for name, p in model.named_parameters()}
    set_train_mode(model, "finetune", batchnorm="frozen")
    assert model.training and model.head[2].training  # dropout still on
    assert not any(bn.training for bn in _batchnorms(model))
    assert model.block[3].training  # GroupNorm: no running statistics, left in train mode
    _epoch(model)
    for name, buffer in model.named_buffers():
        torch.testing.assert_close(buffer, before[name], rtol=0, atol=0)
    for name, parameter in model.named_parameters():  # affine weights included
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
        assert not torch.equal(parameter, weights[name]), name


@pytest.mark.parametrize("phase, batchnorm", [("finetune", "train"), ("balanced", "frozen"),
                                              ("balanced", "train")])
def test_train_mode_and_balanced_epochs_update_running_statistics(phase, batchnorm):
    model = _model()
    before = _statistics(model)
    assert set_train_mode(model, phase, batchnorm=batchnorm) is model
    assert all(module.training for module in model.modules())  # exactly model.train()
    _epoch(model)
    for bn in _batchnorms(model):
        assert int(bn.num_batches_tracked) == 2
    changed = [name for name, buffer in model.named_buffers()
               if name.endswith("running_mean") and not torch.equal(buffer, before[name])]
    assert changed == ["block.1.running_mean", "head.1.running_mean"]


def test_frozen_mode_is_undone_by_the_next_balanced_or_train_call():
    model = _model()
    set_train_mode(model, "finetune", batchnorm="frozen")
    set_train_mode(model, "balanced")
    assert all(module.training for module in model.modules())
    model.eval()
    set_train_mode(model, "finetune", batchnorm="frozen")  # from eval: all but BatchNorm trains
    assert model.head[2].training and not model.head[1].training


def test_sync_batchnorm_is_frozen_too():
    model = nn.Sequential(nn.Linear(3, 4), nn.SyncBatchNorm(4))
    set_train_mode(model, "finetune", batchnorm="frozen")
    assert model.training and not model[1].training


def test_schedule_train_mode_follows_its_phases_and_policy():
    model = _model()
    assert FineTuneSchedule(3, 1).batchnorm == "train"  # the default: as before 0.2.0
    frozen = FineTuneSchedule(3, 1, batchnorm="frozen")
    frozen.train_mode(model, 1)
    assert all(bn.training for bn in _batchnorms(model))
    frozen.train_mode(model, 2)
    assert not any(bn.training for bn in _batchnorms(model))
    FineTuneSchedule(3, 1, batchnorm="train").train_mode(model, 2)
    assert all(bn.training for bn in _batchnorms(model))
    with pytest.raises(ValueError, match="epoch=3"):
        frozen.train_mode(model, 3)


def test_loader_train_mode_uses_the_current_phase_and_the_schedules_policy():
    dataset = TensorDataset(torch.randn(12, 1, 5, 5), torch.tensor([0] * 9 + [1] * 3))
    model = _model()
    for batchnorm, frozen_in_finetune in (("frozen", True), ("train", False)):
        loader = balance(DataLoader(dataset, batch_size=4), labels=dataset.tensors[1], seed=0,
                         schedule=FineTuneSchedule(2, 1, batchnorm=batchnorm))
        loader.set_epoch(0)
        assert loader.train_mode(model) is model
        assert all(bn.training for bn in _batchnorms(model))
        loader.set_epoch(1)
        loader.train_mode(model)
        assert [bn.training for bn in _batchnorms(model)] == [not frozen_in_finetune] * 2
    no_schedule = balance(DataLoader(dataset, batch_size=4), labels=dataset.tensors[1], seed=0)
    no_schedule.train_mode(model)
    assert all(module.training for module in model.modules())


def test_the_default_is_train_mode_everywhere():
    """Without a setting, the fine-tune epoch re-estimates BatchNorm statistics (as before 0.2.0
    and as the study's evidence was measured)."""
    model = _model()
    set_train_mode(model, "finetune")
    assert all(module.training for module in model.modules())
    FineTuneSchedule(2, 1).train_mode(model.eval(), 1)
    assert all(module.training for module in model.modules())


_FIX = "pass batchnorm='frozen'"


@pytest.mark.parametrize("batchnorm, error", [("eval", ValueError), ("Frozen", ValueError),
                                              (True, TypeError), (None, TypeError)])
def test_bad_batchnorm(batchnorm, error):
    match = rf"batchnorm should be one of \['frozen', 'train'\], but got batchnorm={batchnorm!r}"
    with pytest.raises(error, match=match):
        FineTuneSchedule(3, 1, batchnorm=batchnorm)
    with pytest.raises(error, match=_FIX):
        set_train_mode(_model(), "finetune", batchnorm=batchnorm)


def test_bad_model_and_phase():
    with pytest.raises(TypeError, match="model should be a torch.nn.Module, but got model of "
                                        "type list"):
        set_train_mode([nn.Linear(2, 2)], "finetune")
    with pytest.raises(ValueError, match="phase should be 'balanced' or 'finetune', but got "
                                         "phase=1; pass schedule.phase"):
        set_train_mode(_model(), 1)
    with pytest.raises(TypeError, match="positional arguments"):
        FineTuneSchedule(3, 1, "frozen")  # batchnorm is keyword-only


def test_a_sampler_checkpoint_resumes_under_either_policy():
    """The policy changes no batch: it is not part of the schedule's state, which the sampler
    compares on resume (so checkpoints from before the setting load too)."""
    labels = torch.tensor([0] * 9 + [1] * 3)
    saved = BalancedBatchSampler(labels, 4, seed=0, schedule=FineTuneSchedule(2, 1))
    saved.set_epoch(1)
    state = saved.state_dict()
    resumed = BalancedBatchSampler(labels, 4, seed=0,
                                   schedule=FineTuneSchedule(2, 1, batchnorm="train"))
    resumed.load_state_dict(state)
    assert list(resumed) == list(saved)
