"""Hostile tests of the README's sampler promises.

Sections attacked: "Balanced batches in ten lines" (G1-G3, batch composition, samples_per_epoch,
set_epoch / state_dict / replicas, batch types, and the "Misuse is loud" list), "Wrap an existing
DataLoader", "Checkpoint and resume" and "Distributed training".

The first part holds the findings: each test fails on the code it was written against and its
docstring names the promise it breaks, the reproduction, and expected vs observed. The second
part (under "holds") holds the attacks that the library survived; they stay as regression tests.
"""

from __future__ import annotations

import datetime
import io
import os
import socket
import time
import warnings
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
import torch
import torch.multiprocessing as mp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils.data import (
    ConcatDataset,
    DataLoader,
    Dataset,
    DistributedSampler,
    Subset,
)

from balancer import BalancedBatchSampler, FineTuneSchedule, balance, balanced_loader, labels_of


# ---------------------------------------------------------------------- helpers
def make_labels(counts, seed=0):
    labels = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng(seed).shuffle(labels)
    return labels


class Indexed(Dataset):
    """Items are their own index; ``targets`` are the labels; never loads anything else."""

    def __init__(self, labels):
        self.targets = list(np.asarray(labels).tolist())

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        return index


class NoLoad(Dataset):
    """A dataset whose items must never be read (labels come from metadata only)."""

    def __init__(self, labels, attribute="targets"):
        setattr(self, attribute, labels)
        self._length = len(labels)

    def __len__(self):
        return self._length

    def __getitem__(self, index):
        raise AssertionError(f"item {index} was loaded")


class Alternating:
    """A custom schedule with fine-tune epochs *between* balanced ones (no
    ``balanced_epochs_before``, so the sampler has to count them itself)."""

    def __init__(self, pattern):
        self.pattern = pattern

    def phase(self, epoch):
        return self.pattern[epoch % len(self.pattern)]


def as_lists(batches):
    return [[int(i) for i in batch] for batch in batches]


def global_plan(samplers, epoch):
    """Every rank's batches of ``epoch``, interleaved into the global plan (rank r serves
    global batches r, r + R, ...); asserts G3's equal batch count per rank."""
    shards = []
    for sampler in samplers:
        sampler.set_epoch(epoch)
        shards.append(as_lists(sampler))
    assert len({len(shard) for shard in shards}) == 1, "ranks yield different batch counts"
    replicas = len(shards)
    return [shards[g % replicas][g // replicas] for g in range(len(shards[0]) * replicas)]


class Usage:
    """Per-sample use counts, checked against G2 after every global batch (vectorised)."""

    def __init__(self, labels):
        self.labels = np.asarray(labels)
        self.order = np.argsort(self.labels, kind="stable")
        counts = np.bincount(self.labels)
        self.starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        self.counts = np.zeros(len(labels), dtype=np.int64)

    def add(self, plan):
        for position, batch in enumerate(plan):
            np.add.at(self.counts, batch, 1)
            grouped = self.counts[self.order]
            spread = (np.maximum.reduceat(grouped, self.starts)
                      - np.minimum.reduceat(grouped, self.starts))
            assert spread.max() <= 1, (
                f"G2: after global batch {position} the use counts of class "
                f"{int(np.argmax(spread))} differ by {int(spread.max())}")


def check_epoch(labels, plan, batch_size, *, full=True, cap=None, strict_size=False):
    """G1 (full epochs), the cap's coverage rule, and the per-batch class composition."""
    labels = np.asarray(labels)
    counts = np.bincount(labels)
    classes, largest = len(counts), int(counts.max())
    used = np.bincount([i for batch in plan for i in batch], minlength=len(labels))
    if full:
        assert used.min() >= 1, f"G1: samples never drawn {np.flatnonzero(used == 0)[:8]}"
        padding = int(used.sum()) - classes * largest
        assert padding >= 0
        for cls in range(classes):
            draws = int(used[labels == cls].sum())
            assert largest <= draws <= largest + -(-padding // classes), (cls, draws, padding)
        if padding == 0:
            for cls in np.flatnonzero(counts == largest):
                assert (used[labels == cls] == 1).all(), "G1: largest class not exactly once"
    if cap is not None:
        for cls in range(classes):
            if counts[cls] <= cap // classes:
                assert used[labels == cls].min() >= 1, f"cap: class {cls} not covered"
    for position, batch in enumerate(plan):
        if len(batch) != batch_size:
            assert not strict_size and position == len(plan) - 1, "short batch not last"
            continue
        per_class = np.bincount(labels[batch], minlength=classes)
        if batch_size >= classes:
            assert per_class.min() >= batch_size // classes
            assert per_class.max() <= -(-batch_size // classes)
        else:
            assert per_class.max() <= 1, "B < C: a class repeats inside a batch"


# ======================================================================================
# FINDINGS: each test below fails on the library as it stands (broken promises)
# ======================================================================================

def test_finding_checkpoint_after_the_last_epoch_breaks_state_dict_and_len():
    """Promise (README "Checkpoint and resume"): "A checkpoint taken after the last batch of an
    epoch points at the start of the next epoch (`loader.epoch` is then `epoch + 1`), so the
    loop above neither repeats a finished epoch nor skips one."

    Reproduction: schedule = FineTuneSchedule(3, 1); train all 3 epochs; save
    loader.state_dict() (epoch 3, batches_done 0); in a new process build the loader and
    load_state_dict(state) -- accepted. Then loader.state_dict() (e.g. the script's final
    checkpoint save, or a job that is requeued after it finished) and len(loader) raise
    ValueError("epoch should be an integer <= 2 ... the schedule covers epochs 0..2").

    Expected: a restored end-of-run position can be saved again (it is the same position), and
    len() is 0 or at least does not raise. Observed: ValueError from the schedule.
    """
    labels = make_labels([7, 3])
    schedule = FineTuneSchedule(3, 1)
    loader = balance(DataLoader(Indexed(labels), batch_size=4), schedule=schedule)
    for epoch in range(3):
        loader.set_epoch(epoch)
        list(loader)
    state = loader.state_dict()
    assert (state["epoch"], state["batches_done"]) == (3, 0)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    restored = balance(DataLoader(Indexed(labels), batch_size=4), schedule=schedule)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert restored.epoch == 3
    for epoch in range(restored.epoch, 3):  # the README loop: runs nothing, correctly
        restored.set_epoch(epoch)
    assert restored.state_dict()["epoch"] == 3  # raises ValueError today
    assert len(restored) == 0


def test_finding_set_epoch_after_loading_the_end_of_run_state_blames_an_epoch_never_passed():
    """Promise (README "Checkpoint and resume" and "Misuse is loud": errors name the argument
    and *the value*): after the end-of-run checkpoint is restored (epoch 3 of a 3-epoch
    schedule), the loader must still take the user's calls.

    Reproduction: as in the test above, restored.load_state_dict(end_state), then
    restored.set_epoch(2) (e.g. to re-run the last epoch) or restored.phase.

    Expected: set_epoch(2) works (2 is a valid epoch; the sampler itself accepts it), phase
    reports something or a clear error. Observed: ValueError "epoch should be an integer <= 2,
    but got epoch=3" -- BalancedDataLoader.set_epoch asks the schedule about the *previous*
    epoch 3, so the message names a value the caller never passed.
    """
    labels = make_labels([7, 3])
    schedule = FineTuneSchedule(3, 1)
    loader = balance(DataLoader(Indexed(labels), batch_size=4), schedule=schedule)
    for epoch in range(3):
        loader.set_epoch(epoch)
        list(loader)
    restored = balance(DataLoader(Indexed(labels), batch_size=4), schedule=schedule)
    restored.load_state_dict(loader.state_dict())
    sampler = BalancedBatchSampler(labels, 4, schedule=schedule)
    sampler.load_state_dict(loader.state_dict())
    sampler.set_epoch(2)  # the sampler takes it
    restored.set_epoch(2)  # the loader raises ValueError about epoch=3
    assert restored.phase == "finetune" and len(restored) == len(sampler)


def test_finding_plain_dataloader_iterator_keeps_yielding_old_epoch_after_set_epoch():
    """Promise (README "Misuse is loud"): set_epoch while an iteration runs ends it.

    Found: with a plain DataLoader(batch_sampler=sampler, num_workers=1, prefetch_factor=8),
    batches the workers had already fetched still came out of the old iterator after
    set_epoch(1): the sampler cannot recall what a plain DataLoader prefetched. The README now
    says exactly that, and this test checks what it says: the sampler's state moves to the new
    epoch at once, the plain DataLoader may still hand out the prefetched batches of the old
    one (and no more than those), and a balance() loader refuses them.
    """
    labels = [0] * 7 + [1] * 3
    sampler = BalancedBatchSampler(labels, 4, seed=0)
    epoch0 = as_lists(sampler)
    sampler.set_epoch(0)
    loader = DataLoader(Indexed(labels), batch_sampler=sampler, num_workers=1,
                        prefetch_factor=8)
    iterator = iter(loader)
    assert next(iterator).tolist() == epoch0[0]
    sampler.set_epoch(1)
    assert (sampler.state_dict()["epoch"], sampler.state_dict()["batches_done"]) == (1, 0)
    stale = [batch.tolist() for batch in iterator]
    assert stale == epoch0[1: 1 + len(stale)]  # only old batches already fetched
    balanced = balance(DataLoader(Indexed(labels), batch_size=4, num_workers=1,
                                  prefetch_factor=8), seed=0)
    old = iter(balanced)
    next(old)
    balanced.set_epoch(1)
    with pytest.raises(RuntimeError, match=r"ended by set_epoch\(1\)"):
        next(old)
    del iterator, old


def test_finding_mixed_unorderable_labels_give_a_raw_numpy_traceback():
    """Promise (README "Misuse is loud"): "Bad labels (...) raise a ValueError/TypeError that
    names the argument, the value and the fix."

    Reproduction: BalancedBatchSampler(pd.Series([1, "a", datetime.date(2020, 1, 1)] * 2), 2)
    (an object column with a stray date), or [pd.Timestamp("2020"), 1, 1], or [1, object(), 1].

    Expected: an error that names `labels`, the offending value/position and a fix (e.g. "cast
    the labels to str"). Observed: numpy's bare TypeError "'<' not supported between instances
    of 'datetime.date' and 'int'" raised from numpy/core/fromnumeric.py, naming nothing.
    (Mixed ints and strings are accepted, so this is only the unorderable case.)
    """
    for labels in (pd.Series([1, "a", datetime.date(2020, 1, 1)] * 2),
                   [pd.Timestamp("2020-01-01"), 1, 1]):
        with pytest.raises((TypeError, ValueError), match="labels"):
            BalancedBatchSampler(labels, 2)


def test_finding_object_dtype_continuous_floats_are_accepted_as_classes():
    """Promise (README "Misuse is loud"): "Bad labels (... continuous floats such as
    `torch.rand(N)` ...) raise a ValueError".

    Reproduction: scores = np.random.default_rng(0).random(40);
    BalancedBatchSampler(scores.astype(object), 8) -- the same scores in an object array (what
    a pandas object column or a list mixing floats with other values gives) -- and
    BalancedBatchSampler([0.25, "neg", 0.75, "neg"], 2).

    Expected: the same ValueError as for the float array ("holds non-integer floats").
    Observed: accepted silently; every distinct score becomes its own class (40 classes of one
    sample each), i.e. a silently wrong plan.
    """
    scores = np.random.default_rng(0).random(40)
    with pytest.raises(ValueError, match="non-integer floats"):
        BalancedBatchSampler(scores, 8)  # the float array is refused ...
    with pytest.raises(ValueError, match="non-integer floats"):
        sampler = BalancedBatchSampler(scores.astype(object), 8)  # ... the same as objects not
        pytest.fail(f"accepted as {len(sampler.classes)} classes")


def test_finding_a_csv_column_of_scores_is_accepted_while_the_same_dataframe_column_is_not(
        tmp_path):
    """Promise (README "Misuse is loud" and "Wrap an existing DataLoader"): continuous floats
    are refused with a ValueError; labels may be given as `(dataframe_or_csv_path, "dx")`.

    Reproduction: df = DataFrame({"path": ..., "score": rng.random(20).round(3)});
    df.to_csv(path); BalancedBatchSampler(labels_of(df, "score"), 4) is refused ("non-integer
    floats"), but BalancedBatchSampler(labels_of(path, "score"), 4) -- the same column read
    from the CSV (balance(loader, labels=(path, "score")) takes this path) -- is accepted.

    Expected: both refused (the CSV reader keeps the column as strings, so the float check
    never runs). Observed: the CSV's 20 distinct scores become 20 one-sample classes, a
    silently wrong plan when the wrong column is named.
    """
    frame = pd.DataFrame({"path": [f"{i}.png" for i in range(20)],
                          "score": np.random.default_rng(0).random(20).round(3)})
    path = tmp_path / "manifest.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError, match="non-integer floats"):
        BalancedBatchSampler(labels_of(frame, "score"), 4)
    with pytest.raises(ValueError, match="non-integer floats"):
        sampler = BalancedBatchSampler(labels_of(str(path), "score"), 4)
        pytest.fail(f"the CSV column was accepted as {len(sampler.classes)} classes")


def test_finding_huge_epoch_numbers_overflow_inside_numpy():
    """Promise (README "Misuse is loud"): "bad settings raise a ValueError/TypeError that names
    the argument, the value and the fix."

    Reproduction: s = BalancedBatchSampler([0]*5 + [1]*2, 2); s.set_epoch(2**63) (accepted),
    then next(iter(s)); likewise set_epoch(2**64), and load_state_dict() of a state whose
    "epoch" is 2**70 (accepted without complaint).

    Expected: set_epoch / load_state_dict refuse an epoch the plan cannot address, with a
    ValueError naming `epoch`. Observed: accepted, then OverflowError("Python int too large to
    convert to C long") from balancer/samplers/_balanced.py / _rng.py at the first batch.
    """
    sampler = BalancedBatchSampler([0] * 5 + [1] * 2, 2)
    for epoch in (2**63, 2**64):
        try:
            sampler.set_epoch(epoch)
        except ValueError as error:
            assert "epoch" in str(error)
            continue
        with pytest.raises(ValueError, match="epoch"):
            next(iter(sampler))
    state = {**BalancedBatchSampler([0] * 5 + [1] * 2, 2).state_dict(), "epoch": 2**70}
    with pytest.raises(ValueError, match="epoch"):
        BalancedBatchSampler([0] * 5 + [1] * 2, 2).load_state_dict(state)


def test_finding_torch_layouts_give_raw_torch_errors():
    """Promise (README "Misuse is loud"): bad labels raise a ValueError/TypeError "that names
    the argument, the value and the fix".

    Found: torch.tensor([0, 1, 1]).to_sparse() and a meta-device tensor raised torch's own
    errors. Now a sparse tensor is read as its dense values (absent entries are class 0, as in
    to_dense()), and a meta tensor, which holds no values, is refused naming `labels`.
    """
    dense = BalancedBatchSampler(torch.tensor([0, 1, 1, 0]), 2)
    sparse = BalancedBatchSampler(torch.tensor([0, 1, 1, 0]).to_sparse(), 2)
    assert sparse.class_counts.tolist() == dense.class_counts.tolist() == [2, 2]
    assert list(sparse) == list(dense)
    with pytest.raises(TypeError, match="labels is a tensor on the meta device"):
        BalancedBatchSampler(torch.tensor([0, 1, 1], device="meta"), 2)


def test_finding_masked_array_labels_use_the_masked_values():
    """Promise (README "Misuse is loud"): "Bad labels (... missing ...) raise a ValueError".

    Reproduction: BalancedBatchSampler(np.ma.array([0, 1, 1, 0], mask=[0, 1, 0, 0]), 2).

    Expected: the masked (missing) label at position 1 is refused like NaN / None / pd.NA.
    Observed: the mask is ignored; the hidden value 1 is used as the sample's class.
    """
    with pytest.raises(ValueError, match="missing"):
        BalancedBatchSampler(np.ma.array([0, 1, 1, 0], mask=[0, 1, 0, 0]), 2)


def test_finding_column_vector_message_contradicts_the_flattening_promise():
    """Promise (sampler docstring / encode_labels: "A column vector of shape (N, 1) is
    flattened"; README: bad labels get an error that names the fix).

    Reproduction: BalancedBatchSampler(np.matrix([[0], [1], [1]]), 2).

    Expected: flattened like any (N, 1) array. Observed: ValueError "labels should be 1-D
    ... but got shape (3, 1). Multi-label targets are not supported" -- the message calls a
    column vector multi-label (np.matrix stays 2-D under [:, 0]).
    """
    sampler = BalancedBatchSampler(np.matrix([[0], [1], [1]]), 2)
    assert sampler.class_counts.tolist() == [1, 2]


def test_finding_a_loop_that_breaks_early_repeats_the_same_batches_silently():
    """Promise (README "Misuse is loud", its reason): forgetting set_epoch is loud "(otherwise
    every epoch would repeat epoch 0 and a schedule would never fine-tune)". This is a gap in
    the letter of the promise (which speaks of an epoch that *ended*), not of its purpose.

    Reproduction: loader = balance(DataLoader(ds, batch_size=4)); for 3 "epochs":
    for step, batch in enumerate(loader): if step == 2: break   (a steps-per-epoch cap, no
    set_epoch).

    Expected: the same UserWarning as for a finished epoch (the loop is in exactly the
    situation the warning exists for). Observed: no warning; every "epoch" trains on the same
    first three batches of epoch 0 forever.
    """
    loader = balance(DataLoader(Indexed(make_labels([30, 6])), batch_size=4))
    seen = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            got = []
            for step, batch in enumerate(loader):
                got.append(batch.tolist())
                if step == 2:
                    break
            seen.append(got)
    assert seen[0] == seen[1] == seen[2]  # the silent repetition
    assert any("set_epoch" in str(w.message) for w in caught), "no warning was given"


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _gloo_rank(rank, world, port, out_dir):
    """Two scenarios in one pair of gloo processes (spawning costs ~10 s on this machine):
    1. every rank passes rank=0 explicitly (a hard-coded rank);
    2. rank 1's labels differ: a per-rank shard that holds one class."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    import torch.distributed as dist

    dist.init_process_group("gloo", rank=rank, world_size=world,
                            timeout=timedelta(seconds=8))
    labels = [0] * 6 + [1] * 3

    def attempt(build):
        try:
            return f"built {as_lists(build())}"
        except Exception as error:  # the type is what the tests check
            return f"{type(error).__name__}: {error}"

    same_rank = attempt(lambda: BalancedBatchSampler(labels, 2, seed=0, num_replicas=world,
                                                     rank=0))
    own = labels if rank == 0 else [0] * 9
    bad_labels = attempt(lambda: BalancedBatchSampler(own, 2, seed=0))
    for name, result in (("same_rank", same_rank), ("bad_labels", bad_labels)):
        with open(os.path.join(out_dir, f"{name}{rank}.txt"), "w") as record:
            record.write(result)
    try:
        dist.destroy_process_group()
    except Exception:  # teardown after a failed peer
        pass


@pytest.fixture(scope="module")
def gloo_records(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("gloo")
    context = mp.start_processes(_gloo_rank, args=(2, _free_port(), str(out_dir)),
                                 nprocs=2, join=False, start_method="spawn")
    deadline = time.monotonic() + 120
    while not context.join(timeout=1.0):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the gloo ranks did not finish")
    return {path.stem: path.read_text() for path in out_dir.iterdir()}


def test_finding_a_rank_refusing_its_labels_leaves_the_other_ranks_with_a_gloo_error(
        gloo_records):
    """Promise (README "Misuse is loud" and "Distributed training"): "ranks that disagree
    (`seed=rank`, labels in another order, a shorter dataset) get a `ValueError` naming what
    differs"; "construction checks that every rank built the same plan".

    Reproduction: 2 gloo ranks; rank 0 builds BalancedBatchSampler([0]*6 + [1]*3, 2), rank 1
    BalancedBatchSampler([0]*9, 2) (its labels differ: a per-rank shard with one class).

    Expected: every rank gets a ValueError naming what differs. Observed: rank 1 raises its
    own ValueError before the collective, and rank 0, waiting in all_gather_object, gets
    gloo's RuntimeError "Connection closed/reset by peer" when rank 1 exits -- or hangs until
    the process-group timeout if rank 1 stays alive (30 min by default for gloo).
    """
    assert gloo_records["bad_labels1"].startswith("ValueError")
    assert gloo_records["bad_labels0"].startswith("ValueError"), gloo_records["bad_labels0"]


def test_finding_every_rank_passing_rank_0_trains_on_the_same_shard_silently(gloo_records):
    """Promise (README "Misuse is loud"): under a process group, construction compares the
    ranks' settings so that ranks "get a ValueError naming what differs, instead of silently
    training on overlapping shards".

    Reproduction: 2 gloo ranks, each builds BalancedBatchSampler(labels, 2, seed=0,
    num_replicas=2, rank=0) -- a hard-coded rank (the same happens through balance() with a
    DistributedSampler(dataset, num_replicas=2, rank=0)).

    Expected: a ValueError (the all_gather already runs; the ranks' `rank` values collide).
    Observed: both ranks build without complaint and yield identical batches: the whole run
    trains on rank 0's half of the plan twice and never sees the other half.
    """
    results = gloo_records["same_rank0"], gloo_records["same_rank1"]
    assert not all(result.startswith("built") for result in results), (
        f"both ranks built the same shard: {results[0][:80]}")


# ======================================================================================
# holds: attacks the library survived (each is a real check and would fail on a regression)
# ======================================================================================

ADVERSARIAL_COUNTS = st.one_of(
    # one huge class and many singletons
    st.builds(lambda n, k: [n] + [1] * k, st.integers(2, 120), st.integers(1, 10)),
    # two equal largest classes
    st.builds(lambda n, rest: [n, n, *rest], st.integers(1, 120),
              st.lists(st.integers(1, 120), max_size=3)),
    # n_c just above / below n_max / 2, and n_max - 1
    st.builds(lambda n, deltas: [n] + [max(1, n // 2 + d) for d in deltas] + [max(1, n - 1)],
              st.integers(2, 150), st.lists(st.integers(-1, 1), min_size=1, max_size=4)),
    st.lists(st.integers(1, 150), min_size=2, max_size=7),
)
SEEDS = st.sampled_from([0, 1, 2**32 + 5, 2**63, 2**64 - 1])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(counts=ADVERSARIAL_COUNTS, batch_size=st.sampled_from([1, 2, 3, 7, 16, 33, 64, 1000]),
       num_replicas=st.sampled_from([1, 2, 3, 5, 8]), drop_last=st.booleans(), seed=SEEDS,
       epochs=st.integers(3, 8), alternate=st.booleans())
def test_holds_g1_g2_g3_and_composition_in_every_epoch(counts, batch_size, num_replicas,
                                                       drop_last, seed, epochs, alternate):
    """G1 coverage, G2 use counts after every global batch (across epochs and across fine-tune
    epochs placed between balanced ones), G3 equal batch counts, floor/ceil composition, with
    adversarial class counts, batch sizes 1 and > N, up to 8 replicas and extreme seeds."""
    labels = make_labels(counts, seed % 5)
    schedule = Alternating(["balanced", "finetune", "balanced", "balanced", "finetune"]) \
        if alternate else None
    try:
        samplers = [BalancedBatchSampler(labels, batch_size, seed=seed, drop_last=drop_last,
                                         num_replicas=num_replicas, rank=rank,
                                         schedule=schedule)
                    for rank in range(num_replicas)]
    except ValueError as error:  # refused up front, as promised: a fine-tune epoch of no batch
        assert drop_last and schedule is not None and "gives no batch" in str(error)
        return
    if len(samplers[0]) * num_replicas * batch_size > 40_000:
        return
    usage = Usage(labels)
    for epoch in range(epochs):
        plan = global_plan(samplers, epoch)
        if schedule is not None and schedule.phase(epoch) == "finetune":
            flat = [i for batch in plan for i in batch]
            assert sorted(flat[: len(labels)]) == list(range(len(labels))) or drop_last
            continue
        check_epoch(labels, plan, batch_size, strict_size=drop_last or num_replicas > 1)
        usage.add(plan)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(counts=ADVERSARIAL_COUNTS, batch_size=st.sampled_from([1, 2, 5, 16, 64]),
       num_replicas=st.sampled_from([1, 2, 8]), drop_last=st.booleans(),
       cap_fraction=st.floats(0.01, 2.0), seed=SEEDS)
def test_holds_samples_per_epoch_cap_keeps_g2_and_covers_small_classes(
        counts, batch_size, num_replicas, drop_last, cap_fraction, seed):
    labels = make_labels(counts)
    cap = max(batch_size, int(cap_fraction * len(counts) * max(counts)))
    samplers = [BalancedBatchSampler(labels, batch_size, seed=seed, drop_last=drop_last,
                                     samples_per_epoch=cap, num_replicas=num_replicas, rank=r)
                for r in range(num_replicas)]
    usage = Usage(labels)
    for epoch in range(6):
        plan = global_plan(samplers, epoch)
        check_epoch(labels, plan, batch_size, full=False, cap=cap,
                    strict_size=drop_last or num_replicas > 1)
        usage.add(plan)


def test_holds_g1_g2_over_many_epochs_near_half_the_largest_class():
    """Classes of n_max / 2 +- 1 and n_max - 1 over 40 epochs (cycle groups of the small
    classes roll over several times, and every straddling chain is exercised)."""
    counts = [61, 31, 30, 29, 60, 1]
    labels = make_labels(counts, 3)
    samplers = [BalancedBatchSampler(labels, 7, seed=2**64 - 1, num_replicas=3, rank=r)
                for r in range(3)]
    usage = Usage(labels)
    for epoch in range(40):
        plan = global_plan(samplers, epoch)
        check_epoch(labels, plan, 7, strict_size=True)
        usage.add(plan)


def test_holds_batches_larger_than_the_in_batch_order_pool():
    """B > 16384 takes the per-row shuffle path; G1 and composition still hold."""
    labels = make_labels([20000, 20000, 3])
    samplers = [BalancedBatchSampler(labels, 16385, seed=1, num_replicas=2, rank=r,
                                     drop_last=True) for r in range(2)]
    for epoch in range(2):
        check_epoch(labels, global_plan(samplers, epoch), 16385, strict_size=True)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(counts=ADVERSARIAL_COUNTS, batch_size=st.sampled_from([1, 3, 16]),
       num_replicas=st.sampled_from([1, 2, 8]), drop_last=st.booleans(),
       epoch=st.integers(0, 12), alternate=st.booleans(), seed=SEEDS,
       batch_type=st.sampled_from(["list", "numpy", "tensor"]))
def test_holds_direct_epochs_resume_everywhere_batch_types_and_total_batches(
        counts, batch_size, num_replicas, drop_last, epoch, alternate, seed, batch_type):
    labels = make_labels(counts)
    schedule = Alternating(["balanced", "finetune", "balanced"]) if alternate else None
    rank = epoch % num_replicas

    def build(kind="list"):
        return BalancedBatchSampler(labels, batch_size, seed=seed, drop_last=drop_last,
                                    schedule=schedule, num_replicas=num_replicas, rank=rank,
                                    batch_type=kind)

    try:
        walked, lengths = build(), []
    except ValueError as error:  # refused up front, as promised: a fine-tune epoch of no batch
        assert drop_last and schedule is not None and "gives no batch" in str(error)
        return
    for e in range(epoch + 1):
        walked.set_epoch(e)
        full = as_lists(walked)
        lengths.append(len(full))
    assert build().total_batches(epoch + 1) == sum(lengths)
    direct = build(batch_type)
    direct.set_epoch(epoch)
    assert as_lists(direct) == full
    if len(full) > 60:
        positions = [0, 1, len(full) // 2, len(full) - 1]
    else:
        positions = range(len(full))
    for done in positions:
        walked.set_epoch(epoch)
        iterator = iter(walked)
        for _ in range(done):
            next(iterator)
        restored = build(batch_type)
        restored.load_state_dict(walked.state_dict())
        assert len(restored) == len(full) - done
        restored.set_epoch(epoch)  # the README loop calls it: the resume must survive it
        assert as_lists(restored) == full[done:]


def test_holds_end_of_epoch_checkpoint_points_at_the_next_epoch():
    labels = make_labels([9, 2])
    sampler = BalancedBatchSampler(labels, 4, schedule=FineTuneSchedule(3, 1))
    sampler.set_epoch(1)
    list(sampler)
    state = sampler.state_dict()
    assert (state["epoch"], state["batches_done"]) == (2, 0)
    restored = BalancedBatchSampler(labels, 4, schedule=FineTuneSchedule(3, 1))
    restored.load_state_dict(state)
    assert restored.epoch == 2 and restored.phase == "finetune"


def test_holds_extreme_seed_survives_torch_save_weights_only():
    labels = make_labels([9, 2])
    sampler = BalancedBatchSampler(labels, 4, seed=2**64 - 1)
    iterator = iter(sampler)
    next(iterator)
    buffer = io.BytesIO()
    torch.save(sampler.state_dict(), buffer)
    buffer.seek(0)
    restored = BalancedBatchSampler(labels, 4, seed=2**64 - 1)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert list(restored) == list(iterator)
    assert BalancedBatchSampler(labels, 4, seed=0).state_dict()["settings"]["seed"] == 0


def test_holds_loader_resume_with_persistent_prefetching_workers():
    """Checkpoint mid-epoch with 2 persistent workers and prefetch_factor=4: a fresh loader
    yields exactly the batches the loop had not received, then the following epochs."""
    labels = make_labels([13, 5, 2]).tolist()
    schedule = FineTuneSchedule(3, 1)

    def build():
        return balance(DataLoader(Indexed(labels), batch_size=4, num_workers=2,
                                  prefetch_factor=4, persistent_workers=True),
                       schedule=schedule)

    reference = balance(DataLoader(Indexed(labels), batch_size=4), schedule=schedule)
    epochs = []
    for epoch in range(3):
        reference.set_epoch(epoch)
        epochs.append([batch.tolist() for batch in reference])
    loader = build()
    loader.set_epoch(1)
    iterator = iter(loader)
    for _ in range(3):
        next(iterator)
    state = loader.state_dict()
    assert (state["epoch"], state["batches_done"]) == (1, 3)
    del iterator, loader
    resumed = build()
    resumed.load_state_dict(state)
    got = []
    for epoch in range(resumed.epoch, 3):
        resumed.set_epoch(epoch)
        got.append([batch.tolist() for batch in resumed])
    assert got == [epochs[1][3:], epochs[2]]


def test_holds_seed_none_resume_is_refused_until_the_seed_is_given():
    labels = make_labels([9, 2])
    loader = balance(DataLoader(Indexed(labels), batch_size=4), seed=None)
    iterator = iter(loader)
    next(iterator)
    state = loader.state_dict()
    with pytest.raises(ValueError, match=r"seed=None.*state\['settings'\]\['seed'\]"):
        balance(DataLoader(Indexed(labels), batch_size=4), seed=None).load_state_dict(state)
    fixed = balance(DataLoader(Indexed(labels), batch_size=4), seed=state["settings"]["seed"])
    fixed.load_state_dict(state)
    assert [b.tolist() for b in fixed] == [b.tolist() for b in iterator]


def test_holds_misuse_warns_once_and_set_epoch_or_load_mid_iteration_raise():
    labels = make_labels([10, 3])
    sampler = BalancedBatchSampler(labels, 4, schedule=FineTuneSchedule(3, 1))
    list(sampler)
    with pytest.warns(UserWarning, match=r"without set_epoch\(\).*fine-tune.*set_epoch"):
        list(sampler)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        list(sampler)  # once
    sampler.set_epoch(0)
    state = sampler.state_dict()
    iterator = iter(sampler)
    next(iterator)
    sampler.load_state_dict(state)
    with pytest.raises(RuntimeError, match="load_state_dict"):
        next(iterator)
    loader = balance(DataLoader(Indexed(labels), batch_size=4))
    iterator = iter(loader)
    next(iterator)
    loader.load_state_dict(loader.state_dict())
    with pytest.raises(RuntimeError, match="load_state_dict"):
        next(iterator)


@pytest.mark.parametrize("labels, kind, match", [
    ([], ValueError, "empty"),
    ([3, 3, 3], ValueError, "single class"),
    (np.array([0.0, np.nan, 1.0]), ValueError, r"missing label \(nan\) at position 1"),
    (np.array([0.0, np.inf, 1.0]), ValueError, r"non-integer floats \(inf"),
    (torch.tensor([0.5, 1.0, 1.0], dtype=torch.bfloat16), ValueError, "non-integer"),
    (pd.Series([1, None, 1], dtype="Int64"), ValueError, r"missing label \(<NA>\)"),
    (pd.Series(["a", None, "a"], dtype="category"), ValueError, "missing label"),
    (pd.Series(["x", None, "y"], dtype="string"), ValueError, r"missing label \(<NA>\)"),
    (np.array(["2020-01-01", "NaT", "2020-01-01"], dtype="datetime64[D]"), ValueError,
     "missing label"),
    ([{0}, {1}, {0}], ValueError, "multi-label"),
    ([[0, 1], [1], [0]], ValueError, "ragged"),
    (np.zeros((3, 2)), ValueError, r"shape \(3, 2\)"),
    (torch.tensor(1), ValueError, r"shape \(\)"),
    ((i for i in range(3)), TypeError, "generator"),
    (pd.DataFrame({"a": [0, 1]}), TypeError, "DataFrame"),
])
def test_holds_bad_labels_are_refused_clearly(labels, kind, match):
    with pytest.raises(kind, match=match):
        BalancedBatchSampler(labels, 2)


@pytest.mark.parametrize("labels, classes, counts", [
    (torch.tensor([True, False, True]), [False, True], [1, 2]),
    (np.array([2**64 - 1, 0, 0], dtype=np.uint64), [0, 2**64 - 1], [2, 1]),
    (torch.tensor([1, 0, 0], dtype=torch.uint64), [0, 1], [2, 1]),
    (torch.tensor([0.0, 2.0, 2.0], dtype=torch.bfloat16), [0.0, 2.0], [1, 2]),
    (pd.Series([1, 0, 1], dtype="Int64"), [0, 1], [1, 2]),
    (pd.Series(["b", "a", "b"], dtype="category"), ["a", "b"], [1, 2]),
    (pd.Series(["x", "y", "x"], dtype="string"), ["x", "y"], [2, 1]),
    ([1, "1", 1], [1, "1"], [2, 1]),  # 1 and "1" stay two classes
    (np.array([-2**63, 2**63 - 1, 0]), [-2**63, 0, 2**63 - 1], [1, 1, 1]),
    ([2**70, 0, 2**70], [0, 2**70], [1, 2]),
])
def test_holds_strange_label_dtypes_are_classes(labels, classes, counts):
    sampler = BalancedBatchSampler(labels, 2)
    assert sampler.classes.tolist() == classes
    assert sampler.class_counts.tolist() == counts


@pytest.mark.parametrize("call, kind, match", [
    (lambda: BalancedBatchSampler([0, 1], 0), ValueError, "batch_size=0; pass a positive"),
    (lambda: BalancedBatchSampler([0, 1], 2.0), TypeError, "batch_size=2.0"),
    (lambda: BalancedBatchSampler([0, 1], 2, seed=-1), ValueError, "seed=-1"),
    (lambda: BalancedBatchSampler([0, 1], 2, seed=2**64), ValueError, "seed=18446744073709551616"),
    (lambda: BalancedBatchSampler([0, 1], 2, seed=True), TypeError, "seed=True"),
    (lambda: BalancedBatchSampler([0, 1], 2, drop_last=1), TypeError, "drop_last=1"),
    (lambda: BalancedBatchSampler([0, 1], 2, num_replicas=0), ValueError, "num_replicas=0"),
    (lambda: BalancedBatchSampler([0, 1], 2, num_replicas=8, rank=8), ValueError, "rank=8"),
    (lambda: BalancedBatchSampler([0, 1], 4, samples_per_epoch=3), ValueError,
     "samples_per_epoch=3"),
    (lambda: BalancedBatchSampler([0, 1], 2, schedule="last2"), TypeError, "phase"),
    (lambda: BalancedBatchSampler([0, 1], 2, batch_type="array"), ValueError, "batch_type"),
    (lambda: BalancedBatchSampler([0, 1], 2).set_epoch(-1), ValueError, "epoch=-1"),
    (lambda: BalancedBatchSampler([0, 1], 2).set_epoch(1.0), TypeError, "epoch=1.0"),
    (lambda: BalancedBatchSampler([0, 1], 2, schedule=FineTuneSchedule(3, 1)).set_epoch(3),
     ValueError, "covers epochs 0..2"),
    (lambda: BalancedBatchSampler([0, 1], 2).load_state_dict({}), ValueError, "missing"),
    (lambda: BalancedBatchSampler([0, 1] * 3, 2).load_state_dict(
        BalancedBatchSampler([1, 0] * 3, 2).state_dict()), ValueError, "different labels"),
    (lambda: BalancedBatchSampler([0, 1] * 3, 2).load_state_dict(
        BalancedBatchSampler([0, 1] * 3, 2, num_replicas=2).state_dict()), ValueError,
     "num_replicas: saved 2, here 1"),
    (lambda: BalancedBatchSampler([0, 1] * 3, 3, drop_last=True, num_replicas=4,
                                  schedule=FineTuneSchedule(2, 1)), ValueError,
     "fine-tune epoch of 6 samples gives no batch"),
    (lambda: FineTuneSchedule(5, 6), ValueError, "finetune_epochs=6"),
])
def test_holds_bad_settings_are_refused_with_the_argument_named(call, kind, match):
    with pytest.raises(kind, match=match):
        call()


def test_holds_balance_keeps_settings_and_finds_labels_without_loading():
    def init_worker(worker_id):
        del worker_id

    def collate(batch):
        return batch

    generator = torch.Generator().manual_seed(3)
    dataset = NoLoad([0, 0, 0, 1, 1, 2])
    plain = DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=collate, timeout=7,
                       worker_init_fn=init_worker, generator=generator, prefetch_factor=5,
                       persistent_workers=True, drop_last=True)
    loader = balance(plain)
    for name in ("num_workers", "collate_fn", "timeout", "worker_init_fn", "generator",
                 "prefetch_factor", "persistent_workers", "pin_memory"):
        assert getattr(loader, name) == getattr(plain, name), name
    assert loader.batch_sampler.drop_last and loader.batch_sampler.batch_size == 2
    table = pd.DataFrame({"dx": ["a", "b", "b", "a", "c", "c"]})
    assert labels_of(dataset, (table, "dx")).tolist() == table["dx"].tolist()
    assert labels_of(dataset, ([{"k": i % 2} for i in range(6)], "k")).tolist() == [0, 1] * 3
    assert labels_of(dataset, lambda index: index % 3).tolist() == [0, 1, 2] * 2
    nested = Subset(ConcatDataset([Subset(dataset, [0, 3]), NoLoad([5, 6], "labels")]),
                    torch.tensor([3, 0, 1]))
    assert labels_of(nested).tolist() == [6, 0, 1]
    assert labels_of(Subset(dataset, [-1, 0])).tolist() == [2, 0]
    with pytest.raises(ValueError, match=r"in_order=False with num_workers > 0"):
        balanced_loader(dataset, 2, num_workers=1, in_order=False)
    with pytest.raises(ValueError, match=r"custom sampler \(WeightedRandomSampler\)"):
        balance(DataLoader(dataset, batch_size=2, sampler=torch.utils.data.WeightedRandomSampler(
            [1.0] * 6, 6)))


def test_holds_distributed_sampler_lends_replicas_to_balance():
    """Without a process group, a DistributedSampler's num_replicas/rank shard one plan: equal
    batch counts per rank, and together the single global plan of a 3-replica sampler."""
    labels = make_labels([13, 5, 2])
    shards = []
    for rank in range(3):
        dataset = Indexed(labels)
        loader = balance(DataLoader(dataset, batch_size=4, sampler=DistributedSampler(
            dataset, num_replicas=3, rank=rank)), seed=5)
        loader.set_epoch(1)
        shards.append([batch.tolist() for batch in loader])
    samplers = [BalancedBatchSampler(labels, 4, seed=5, num_replicas=3, rank=r)
                for r in range(3)]
    plan = global_plan(samplers, 1)
    assert [shards[g % 3][g // 3] for g in range(len(plan))] == plan


def test_holds_every_rank_resumes_from_rank_0s_checkpoint():
    """README "Distributed training": "Save the checkpoint from rank 0; every rank loads the
    same file." Three ranks (via DistributedSampler), checkpoint of rank 0 mid-epoch: each
    rank continues with exactly its own remaining batches."""
    labels = make_labels([13, 5, 2])

    def build(rank):
        dataset = Indexed(labels)
        return balance(DataLoader(dataset, batch_size=2, sampler=DistributedSampler(
            dataset, num_replicas=3, rank=rank)), seed=11, schedule=FineTuneSchedule(3, 1))

    full = []
    for rank in range(3):
        loader = build(rank)
        loader.set_epoch(1)
        full.append([batch.tolist() for batch in loader])
    rank0 = build(0)
    rank0.set_epoch(1)
    iterator = iter(rank0)
    for _ in range(4):
        next(iterator)
    state = rank0.state_dict()
    for rank in range(3):
        restored = build(rank)
        restored.load_state_dict(state)
        restored.set_epoch(restored.epoch)
        assert [batch.tolist() for batch in restored] == full[rank][4:]


def test_holds_persistent_workers_with_early_breaks_and_mid_iteration_set_epoch():
    """Persistent workers keep prefetched batches of the previous iteration; none of them may
    leak into the next epoch (early `break` each epoch, and set_epoch mid-iteration)."""
    labels = make_labels([40, 9, 3]).tolist()
    reference = balance(DataLoader(Indexed(labels), batch_size=4))
    want = []
    for epoch in range(3):
        reference.set_epoch(epoch)
        want.append([batch.tolist() for batch in reference])
    loader = balance(DataLoader(Indexed(labels), batch_size=4, num_workers=2,
                                persistent_workers=True, prefetch_factor=3))
    for epoch in range(2):
        loader.set_epoch(epoch)
        got = []
        for step, batch in enumerate(loader):
            got.append(batch.tolist())
            if step == 3 + epoch:
                break
        assert got == want[epoch][: len(got)]
        assert loader.state_dict()["batches_done"] == len(got)
    loader.set_epoch(0)
    iterator = iter(loader)
    next(iterator)
    loader.set_epoch(2)
    assert [batch.tolist() for batch in loader] == want[2]
    del iterator


def test_holds_resuming_a_resumed_iteration_at_every_pair_of_positions():
    """A checkpoint taken inside an iteration that was itself resumed (rank 1 of 2,
    drop_last, extreme seed, a schedule): the second restore yields exactly what is left."""
    labels = make_labels([31, 7, 2])

    def build():
        return BalancedBatchSampler(labels, 3, seed=2**64 - 1, num_replicas=2, rank=1,
                                    drop_last=True, schedule=FineTuneSchedule(4, 1))

    for epoch in (1, 3):
        reference = build()
        reference.set_epoch(epoch)
        full = as_lists(reference)
        for first in range(len(full)):
            for second in range(len(full) - first - 1):
                a = build()
                a.set_epoch(epoch)
                iterator = iter(a)
                for _ in range(first):
                    next(iterator)
                b = build()
                b.load_state_dict(a.state_dict())
                iterator = iter(b)
                for _ in range(second):
                    next(iterator)
                c = build()
                c.load_state_dict(b.state_dict())
                c.set_epoch(c.epoch)
                assert as_lists(c) == full[first + second:]
