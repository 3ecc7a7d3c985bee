import pytest

from balancer import FineTuneSchedule


def test_phases_and_counts():
    schedule = FineTuneSchedule(total_epochs=6, finetune_epochs=2)
    assert [schedule.phase(e) for e in range(6)] == ["balanced"] * 4 + ["finetune"] * 2
    assert [schedule.is_finetune(e) for e in range(6)] == [False] * 4 + [True] * 2
    assert schedule.balanced_epochs == 4
    assert [schedule.balanced_epochs_before(e) for e in range(6)] == [0, 1, 2, 3, 4, 4]
    assert repr(schedule) == ("FineTuneSchedule(total_epochs=6, finetune_epochs=2, "
                              "batchnorm='train')")


@pytest.mark.parametrize("total, finetune, phases", [
    (3, 0, ["balanced"] * 3),
    (3, 3, ["finetune"] * 3),
    (1, 1, ["finetune"]),
])
def test_edge_schedules(total, finetune, phases):
    schedule = FineTuneSchedule(total, finetune)
    assert [schedule.phase(e) for e in range(total)] == phases


def test_state_dict_roundtrip():
    schedule = FineTuneSchedule(10, 3, batchnorm="frozen")
    other = FineTuneSchedule(2, 0)
    other.load_state_dict(schedule.state_dict())
    assert other.state_dict() == {"total_epochs": 10, "finetune_epochs": 3}
    assert other.batchnorm == "train"  # a policy of the loop, not of the phases: not restored
    assert other.phase(7) == "finetune"


@pytest.mark.parametrize("args, error, match", [
    ((0, 0), ValueError, "total_epochs should be an integer >= 1, but got total_epochs=0; "
                         "pass the number of epochs you train, fine-tune included"),
    ((5, 6), ValueError, r"finetune_epochs=6.*\[0, total_epochs=5\]"),
    ((5, -1), ValueError, "finetune_epochs=-1"),
    ((5.0, 1), TypeError, "total_epochs should be an integer"),
    ((5, None), TypeError, "finetune_epochs should be an integer"),
])
def test_bad_construction(args, error, match):
    with pytest.raises(error, match=match):
        FineTuneSchedule(*args)


def test_bad_epochs_and_states():
    schedule = FineTuneSchedule(4, 1)
    with pytest.raises(ValueError, match=r"epoch=4.*epochs 0..3"):
        schedule.phase(4)
    with pytest.raises(ValueError, match="epoch=-1"):
        schedule.phase(-1)
    with pytest.raises(ValueError, match=r"missing \['finetune_epochs'\]"):
        schedule.load_state_dict({"total_epochs": 3})
    with pytest.raises(ValueError, match="finetune_epochs=9"):
        schedule.load_state_dict({"total_epochs": 3, "finetune_epochs": 9})
    assert schedule.state_dict() == {"total_epochs": 4, "finetune_epochs": 1}  # unchanged
