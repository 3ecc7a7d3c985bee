"""The study's settings, checked once, before any data is loaded or any model trained."""

from __future__ import annotations

import json
import math
import numbers
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from balancer._schedule import check_batchnorm
from balancer._validation import check_int
from balancer.study._strategies import (
    LIBRARY_DEFAULTS,
    ML_STRATEGIES,
    SETTINGS,
    STRATEGIES,
    TUNABLE,
    Strategy,
)

__all__ = ["BUDGET", "LIBRARY_DEFAULTS", "MIN_PHASE_STEPS", "MIN_RUN_STEPS", "QUICK", "TUNABLE",
           "TUNED_DIR", "TUNE_SEEDS", "StudyConfig", "below_floor", "load_tuned", "planned_steps"]

#: What ``--quick`` changes: one seed, two short epochs on a 256-sample slice of the train split.
QUICK: dict[str, Any] = {"seeds": (0,), "epochs": 2, "finetune_epochs": 1, "drw_epochs": 1,
                         "train_limit": 256}

#: Shipped data sets whose classes are ordered grades (quadratic weighted kappa applies).
_ORDINAL = {"retinamnist"}

#: The settings that define the training budget: tuned values apply only to a study with the
#: same ones (a phase length tuned for 12 epochs means nothing for 6).
BUDGET = ("epochs", "batch_size", "lr", "weight_decay", "width", "augment", "select",
          "train_limit", "finetune_freeze", "min_steps")

#: The floor of a run's budget, in optimizer steps: a run below it is named in the report and
#: on the console, with the fix ``--min-steps``. AdamW's first moment averages over about
#: ``1 / (1 - beta1) = 10`` steps: a phase of fewer than 20 steps (two such spans) ends while the
#: momentum still mostly carries the previous phase (or, for crt's re-initialised head, before
#: its first moment has settled), and a run of fewer than 100 steps (ten spans) has barely left
#: its initialisation, so whatever it reports says more about the start than the strategy.
MIN_RUN_STEPS = 100
MIN_PHASE_STEPS = 20

#: The seeds of the tuning runs (``balancer study --tune``), apart from the study's own 0..4.
TUNE_SEEDS = (100, 101)

#: Where the shipped tuned settings live, one ``<dataset>.json`` per shipped data set.
TUNED_DIR = Path(__file__).with_name("tuned")


def load_tuned(dataset: str | None) -> dict[str, Any] | None:
    """The shipped tuning record of ``dataset`` (see ``balancer study --tune``), or None."""
    if not dataset:
        return None
    path = TUNED_DIR / f"{dataset.lower()}.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def read_tuning_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The tuning record at ``path`` (the ``tuned.json`` a ``--tune`` run writes): a JSON object
    with its ``budget`` and ``settings``. A missing file, a file that is not JSON (``tune.md``
    passed by mistake) or JSON of another shape is a ``ValueError`` naming ``tuned_file`` and
    the fix, not an ``OSError`` or a ``KeyError`` later."""
    fix = "pass the tuned.json of a --tune run on this data"
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"tuned_file={path} does not exist or is not a file; {fix}")
    try:
        record = json.loads(file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        where = f" at line {error.lineno}" if isinstance(error, json.JSONDecodeError) else ""
        raise ValueError(f"tuned_file={path} is not a JSON tuning record (unreadable as JSON"
                         f"{where}); {fix}") from None
    if (not isinstance(record, dict) or not isinstance(record.get("budget"), dict)
            or not isinstance(record.get("settings"), dict)):
        raise ValueError(f"tuned_file={path} is not a tuning record (a JSON object with "
                         f"'budget' and 'settings'); {fix}")
    return record


def check_strategies(strategies: Any, valid: Any, kind: str = "") -> tuple[str, ...]:
    """``strategies`` (names or one comma-separated string) as a tuple, each a key of ``valid``
    and named once; ``kind`` qualifies the names in the messages (e.g. ``"multi-label "``)."""
    if isinstance(strategies, str):
        strategies = tuple(s.strip() for s in strategies.split(",") if s.strip())
    strategies = tuple(strategies)
    if not strategies:
        raise ValueError(f"strategies is empty; choose from {list(valid)}")
    unknown = [s for s in strategies if s not in valid]
    if unknown:
        raise ValueError(f"unknown {kind}strategy {unknown[0]!r} in strategies="
                         f"{list(strategies)}; valid {kind}strategies are {', '.join(valid)}")
    if len(set(strategies)) != len(strategies):
        raise ValueError(f"strategies={list(strategies)} lists a strategy twice; name each once")
    return strategies


def check_seeds(seeds: Any) -> tuple[int, ...]:
    """``seeds`` as a tuple of distinct integers >= 0."""
    seeds = tuple(seeds)
    if not seeds:
        raise ValueError("seeds is empty; pass at least one seed, e.g. --seeds 0,1,2")
    for seed in seeds:
        check_int("seeds", seed, minimum=0, maximum=2**63 - 1, fix="seeds are integers >= 0")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds={list(seeds)} repeats a seed; repeated seeds give identical "
                         f"runs, pass distinct seeds")
    return seeds

def _check_float(name: str, value: Any, *, low: float, high: float | None = None,
                 low_open: bool = False, high_open: bool = False, fix: str = "") -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} should be a number, but got {name}={value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} should be a finite number, but got {name}={value}"
                         f"{fix and '; ' + fix}")
    bad_low = value <= low if low_open else value < low
    bad_high = high is not None and (value >= high if high_open else value > high)
    if bad_low or bad_high:
        bound = f"> {low}" if low_open else f">= {low}"
        if high is not None:
            bound += f" and < {high}" if high_open else f" and <= {high}"
        raise ValueError(f"{name} should be {bound}, but got {name}={value}{fix and '; ' + fix}")
    return value


def check_phases(config: Any, strategies: dict[str, Strategy]) -> None:
    """A phased strategy whose phase has 0 epochs would train as another row, under its own
    name: refused."""
    for strategy, declared in strategies.items():
        if declared.phase is None or strategy not in config.strategies:
            continue
        field, same_as = declared.phase
        if getattr(config, field) == 0:
            raise ValueError(f"{field}=0 leaves {strategy} without its phase, so it would train "
                             f"as {same_as}; pass {field}=1 or more, or leave {strategy} out of "
                             f"the strategies")


def whole_run_phases(config: Any, strategies: dict[str, Strategy]) -> list[tuple[str, str]]:
    """The ``(strategy, field)`` of every phased strategy of ``config`` whose phase lasts all
    ``epochs``: it never changes phase, so it trains as a single-phase strategy under its own
    name. A phase length given so is refused by the command line; one that a short budget
    caps (``--quick``, or ``epochs`` below the default) is named in the report."""
    return [(strategy, declared.phase[0]) for strategy, declared in strategies.items()
            if declared.phase is not None and strategy in config.strategies
            and getattr(config, declared.phase[0]) == config.epochs]


def planned_steps(config: Any, train_rows: int) -> dict[str, tuple[int, int]]:
    """Per trained strategy of ``config``: the optimizer steps of a run on ``train_rows``
    training rows, and those of its shortest phase (the whole run for a single-phase strategy,
    or one whose phase covers the whole run). The training loops count the same numbers as
    they train (``steps`` and ``shortest_phase_steps`` in ``results.csv``)."""
    per_epoch = -(-train_rows // config.batch_size)
    planned = {}
    for name in config.strategies:
        declared = config._strategies()[name]
        phase = getattr(config, declared.phase[0]) if declared.phase is not None else 0
        epochs = min(phase, config.epochs - phase) if 0 < phase < config.epochs else config.epochs
        planned[name] = (config.epochs * per_epoch, epochs * per_epoch)
    return planned


def below_floor(steps: int, shortest: int) -> bool:
    """Whether a run of ``steps`` optimizer steps whose shortest phase has ``shortest`` falls
    below the floor (:data:`MIN_RUN_STEPS`, :data:`MIN_PHASE_STEPS`)."""
    return steps < MIN_RUN_STEPS or shortest < MIN_PHASE_STEPS


def majority_positive(class_names: Any, train_counts: Any, positive: int) -> str | None:
    """For two classes whose positive class (AUPRC, sensitivity at 95% specificity) is the more
    frequent one in the train split, the sentence that says so and names the flag that scores
    the rarer class; else None. A file coding the common class as 1 would otherwise report
    those two metrics on the easy class without a word."""
    names, counts = [str(n) for n in class_names], [int(n) for n in train_counts]
    if len(names) != 2 or counts[positive] <= counts[1 - positive]:
        return None
    return (f"{names[positive]!r} (class {positive}) is the majority class of the train split "
            f"({counts[positive]} of {sum(counts)}), so AUPRC and sensitivity at 95% specificity "
            f"score the common class; pass --positive-class {names[1 - positive]} to score the "
            f"rarer one")


def _usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class SharedSettings:
    """The settings and checks both studies share, declared once; :class:`StudyConfig` (one
    label per sample) and :class:`~balancer.study._config.MultiLabelStudyConfig` (several)
    hold the fields, with the defaults of their task, and say in the class variables below what
    differs in the messages."""

    #: ``"single"`` or ``"multi"``: the task kind, whose strategies the config runs.
    task: ClassVar[str]
    #: What ``select="best"`` maximises on validation.
    _selected_by: ClassVar[str]
    #: What ``width`` is, and an example of ``threads``.
    _width_is: ClassVar[str]
    _threads_example: ClassVar[int]
    #: The fix of a CUDA device asked for on a machine without one.
    _cuda_fix: ClassVar[str]

    # The fields both hold (each declares them as dataclass fields, with its own defaults;
    # annotations alone on this plain class add no field).
    strategies: tuple[str, ...]
    seeds: tuple[int, ...]
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    select: str
    width: int
    reference: str | None
    bootstrap: int
    device: str
    threads: int
    jobs: int
    min_steps: int | None
    budget_from: dict[str, Any] | None

    def _strategies(self) -> dict[str, Strategy]:
        return STRATEGIES if self.task == "single" else ML_STRATEGIES

    def _validate_shared(self) -> None:
        """The checks of the shared settings: the strategies, seeds and budget first."""
        defaults: Any = type(self)  # its class attributes are the dataclass fields' defaults
        kind = "" if self.task == "single" else "multi-label "
        self.strategies = check_strategies(self.strategies, self._strategies(), kind)
        self.seeds = check_seeds(self.seeds)
        self.epochs = check_int("epochs", self.epochs, minimum=1,
                                fix=f"pass the number of epochs to train, e.g. --epochs "
                                    f"{defaults.epochs}")
        self.batch_size = check_int("batch_size", self.batch_size, minimum=1,
                                    fix=f"pass samples per batch, e.g. --batch-size "
                                        f"{defaults.batch_size}")
        self.width = check_int("width", self.width, minimum=1,
                               fix=f"pass {self._width_is}, e.g. --width {defaults.width}")
        self.threads = check_int("threads", self.threads, minimum=1,
                                 fix=f"pass the number of CPU threads torch may use, e.g. "
                                     f"{self._threads_example}")
        self.bootstrap = check_int("bootstrap", self.bootstrap, minimum=100,
                                   fix="a 95% interval needs at least 100 replicates, e.g. 1000")
        if self.min_steps is not None:
            self.min_steps = check_int("min_steps", self.min_steps, minimum=1,
                                       fix=f"pass the fewest optimizer steps a run may take, "
                                           f"e.g. --min-steps {MIN_RUN_STEPS}, or leave it "
                                           f"unset to train exactly --epochs")
        self.lr = _check_float("lr", self.lr, low=0.0, low_open=True)
        self.weight_decay = _check_float("weight_decay", self.weight_decay, low=0.0)
        if self.select not in ("best", "last"):
            raise ValueError(f"select should be 'best' (highest {self._selected_by}) or "
                             f"'last', but got select={self.select!r}")
        # reference stays None when not given (resolved by reference_row()), so a config copied
        # with other strategies does not carry a choice that was only a default.
        if self.reference is not None and self.reference not in self.strategies:
            known = ("" if self.reference in self._strategies() or self.task != "single"
                     else " (not a strategy at all)")
            raise ValueError(f"unknown reference strategy reference={self.reference!r}{known}: "
                             f"it must be one of the strategies run, {list(self.strategies)}; "
                             f"pass one of those or add it to strategies")

    def _validate_jobs(self) -> None:
        """The checks of ``jobs``: whole runs in parallel CPU processes, at most one per CPU."""
        self.jobs = check_int("jobs", self.jobs, minimum=1,
                              fix="pass the number of runs to train in parallel processes, "
                                  "e.g. --jobs 2 on two cores")
        cpus = _usable_cpus()
        if self.jobs > max(cpus, 2):  # 2 always: a one-core machine may still test --jobs 2
            raise ValueError(f"jobs={self.jobs} would start {self.jobs} training processes on a "
                             f"machine with {cpus} usable CPU(s); pass --jobs {max(cpus, 2)} "
                             f"or fewer (each process trains one run at a time)")
        if self.jobs > 1 and self.device != "cpu":
            raise ValueError(f"jobs={self.jobs} trains runs in parallel CPU processes, but "
                             f"device={self.device!r}; pass --jobs 1 on a GPU")

    def _validate_device(self) -> None:
        """The check of ``device``, last: the other settings' errors say more."""
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device should be 'cpu' or 'cuda' (or 'cuda:N'), but got "
                             f"device={self.device!r}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device={self.device!r} was asked for, but torch.cuda.is_available() "
                             f"is False on this machine{self._cuda_fix}")

    # Design note: --min-steps
    # ``epochs`` counts passes of ``ceil(N / batch_size)`` steps, so a small train split gets few
    # optimizer steps. ``min_steps`` raises the run's epochs, once the train split's size is
    # known (:meth:`apply_min_steps`), to the fewest that give every run at least that many
    # steps. A phase given in epochs (the last ``finetune_epochs``, ``drw_epochs``,
    # ``drs_epochs``, ``crt_epochs``) keeps its share of the run: it is scaled by the same
    # factor, rounded, at least 1 epoch, and a phase shorter than the run stays shorter (at
    # most ``epochs - 1``). So "the last 3 of 12 epochs" becomes "the last 25 of 100", and
    # crt's re-initialised head gets more steps, not just its backbone. Everything that
    # compares budgets (tuning records) compares the given ones (:meth:`given_budget`).

    def phase_fields(self) -> tuple[str, ...]:
        """The settings that give a phase's length in epochs (of this config's task)."""
        return tuple(dict.fromkeys(declared.phase[0] for declared in self._strategies().values()
                                   if declared.phase is not None))

    def scale_phase(self, value: int) -> int:
        """A phase length in the given budget's epochs as the run's (see the note above): the
        value itself unless ``min_steps`` raised ``epochs``."""
        if self.budget_from is None or value == 0:
            return value
        given, raised = self.budget_from["epochs"], self.epochs
        if value >= given:
            return raised  # a phase of the whole run stays one (the report names it)
        return min(max(1, math.floor(value * raised / given + 0.5)), raised - 1)

    def given_budget(self) -> dict[str, Any]:
        """The budget settings (:data:`BUDGET`) as given, before ``min_steps`` raised
        ``epochs``: what tuning records are made for and compared with."""
        budget = {key: getattr(self, key, None) for key in BUDGET}
        if self.budget_from is not None:
            budget["epochs"] = self.budget_from["epochs"]
        return budget

    def apply_min_steps(self, train_rows: int) -> None:
        """Raise ``epochs`` so that a run of ``train_rows`` training rows takes at least
        ``min_steps`` optimizer steps, and scale the phase lengths with it (see the note);
        ``budget_from`` records the given epochs and the scaling. Nothing changes without
        ``min_steps``, when the run already has enough steps, or on a second call."""
        if self.min_steps is None or self.budget_from is not None:
            return
        per_epoch = -(-train_rows // self.batch_size)
        needed = -(-self.min_steps // per_epoch)
        if needed <= self.epochs:
            return
        phases = {name: getattr(self, name) for name in self.phase_fields()}
        self.budget_from = {"epochs": self.epochs, "min_steps": self.min_steps,
                            "steps_per_epoch": per_epoch}
        self.epochs = needed
        for name, value in phases.items():
            if value is not None:
                setattr(self, name, self.scale_phase(value))
        self.budget_from["phases"] = {name: [value, getattr(self, name)]
                                      for name, value in phases.items()}

    def reference_row(self) -> str:
        """``reference``, or ``plain`` when it is run, else the first strategy."""
        if self.reference is not None:
            return self.reference
        return "plain" if "plain" in self.strategies else self.strategies[0]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]


@dataclass(kw_only=True)
class StudyConfig(SharedSettings):
    """Everything that defines a study run; saved as ``config.json`` next to the results.

    Data (at most one of ``dataset``, ``data``, ``csv``, ``table``; none means the shipped
    RetinaMNIST):
        dataset: a shipped name (``retinamnist``, ``pneumoniamnist``, ``breastmnist``).
        data: a ``.npz`` file in the MedMNIST layout, or with arrays ``X`` and ``y``.
        csv: a CSV manifest (``image_col``, ``label_col``, optional ``split_col`` and
            ``group_col``), images resized to ``image_size``.
        table: a CSV table of features (``label_col``, optional ``split_col``, ``group_col``);
            trained with a small MLP.
        group_col: a column of group ids (e.g. patient id) kept within one split.
        split: train, val and test fractions of the automatic split (data without a split).
        impute: ``"median"`` or ``"mean"``: missing feature values (tables) are filled with
            the train split's statistic; ``None`` refuses them.
        train_limit: use only a stratified slice of this many training samples (for ``--quick``).

    Training (identical for every strategy):
        strategies, seeds: the rows and the repetitions.
        epochs: the budget, in epochs of ``ceil(N / batch_size)`` optimizer steps each.
        min_steps: raise ``epochs`` (once the train split is loaded) so that every run takes at
            least this many optimizer steps; the phase lengths below keep their share of the
            run (scaled by the same factor, at least 1 epoch, shorter than the run when they
            were). ``budget_from`` records the given epochs and the scaling. ``None``: exactly
            ``epochs``.
        batch_size, lr, weight_decay: AdamW settings.
        finetune_epochs: balanced+finetune's last epochs at the true frequencies.
        finetune_lr_scale, finetune_freeze: learning-rate factor and frozen backbone in
            balanced+finetune's fine-tune phase.
        finetune_batchnorm: BatchNorm in the fine-tune phase, ``"frozen"`` or ``"train"``
            (:func:`balancer.set_train_mode`); the study's default is ``"train"``, the behaviour
            its pinned results and shipped tuning records were made with.
        drw_epochs: ldam-drw's last epochs with class-balanced weights (the paper re-weights the
            last 20% of training).
        drs_epochs: drs's last epochs on BalancedBatchSampler batches (shuffled before).
        crt_epochs: crt's last epochs: classifier re-initialised and retrained alone on
            balanced batches, backbone frozen (plain training before).
        posthoc_tau, balanced_posthoc_tau, threshold: the settings of the post-hoc rows
            (``None``: chosen per seed on validation, see :mod:`balancer.study._posthoc`).
        tuned: fill the tunable settings left unset (:data:`TUNABLE`: the ones above, ``la_tau``,
            ``focal_gamma`` and ``effective_beta``) from the shipped tuning record of the data
            set (``balancer/study/tuned/<dataset>.json``, written by ``balancer study --tune``)
            when its budget (:data:`BUDGET`) is this config's; otherwise, and with
            ``tuned=False``, from :data:`LIBRARY_DEFAULTS` (phase lengths capped at
            ``epochs``). ``tuned_from`` records the file, the tuning run and the values taken.
        select: ``"last"`` evaluates the final weights (a fixed budget for everyone);
            ``"best"`` keeps the epoch with the highest validation balanced accuracy.
        augment: random shifts of up to 2 pixels and horizontal flips.
        width: channels of the CNN's first block.
        reference: the row every other strategy is compared with in the paired statistics
            (default ``plain``, or the first strategy when ``plain`` is not run).
        bootstrap: replicates of the paired bootstrap over seeds and test samples.
        ordinal: the classes are ordered grades, so the quadratic weighted kappa is reported
            (default: a property of the data set, True for RetinaMNIST's grades only).
        posthoc: add the rows derived after training with a shift chosen on validation:
            ``plain+posthoc``, ``balanced+posthoc`` (logit adjustment) and, for two classes,
            ``plain+threshold`` (see :mod:`balancer.study._posthoc`).
        device, threads: where to train; ``threads`` is ``torch.set_num_threads`` on CPU (per
            process with ``jobs``).
        jobs: train this many runs at once in spawned processes (CPU only); every run is a
            function of its seed, so the results are those of ``jobs=1``.
        ece_bins: bins of the expected calibration error.
        tuned_file: a tuning record written by ``--tune`` (its ``tuned.json``) to take the key
            settings from instead of the shipped one (``--tuned FILE``); refused where its
            budget is not this config's.
        positive_class: for two classes, the index of the class whose AUPRC and sensitivity at
            95% specificity are reported (1 by default; ``--positive-class NAME``).
    """

    dataset: str | None = None
    data: str | None = None
    csv: str | None = None
    table: str | None = None
    group_col: str | None = None
    image_col: str = "path"
    label_col: str = "label"
    split_col: str = "split"
    image_size: int = 28
    split: tuple[float, float, float] = (0.7, 0.1, 0.2)
    impute: str | None = None
    train_limit: int | None = None

    strategies: tuple[str, ...] = tuple(STRATEGIES)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    epochs: int = 12
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    finetune_epochs: int | None = None
    finetune_lr_scale: float | None = None
    finetune_freeze: bool = False
    finetune_batchnorm: str | None = None
    drw_epochs: int | None = None
    drs_epochs: int | None = None
    crt_epochs: int | None = None
    select: str = "last"
    augment: bool = True
    width: int = 16

    focal_gamma: float | None = None
    effective_beta: float | None = None
    ldam_max_margin: float = 0.5
    ldam_scale: float = 30.0
    drw_beta: float = 0.99
    la_tau: float | None = None
    hinge_margin: float = 1.0
    posthoc_tau: float | None = None
    balanced_posthoc_tau: float | None = None
    threshold: float | None = None
    tuned: bool = True
    tuned_from: dict[str, Any] | None = None

    reference: str | None = None
    bootstrap: int = 1000
    ordinal: bool | None = None
    posthoc: bool = True

    device: str = "cpu"
    threads: int = 1
    jobs: int = 1
    ece_bins: int = 15
    quick: bool = False
    progress: bool = True
    positive_class: int = 1
    tuned_file: str | None = None
    min_steps: int | None = None
    budget_from: dict[str, Any] | None = None

    task: ClassVar[str] = "single"
    _selected_by: ClassVar[str] = "validation balanced accuracy"
    _width_is: ClassVar[str] = "the CNN's channel width"
    _threads_example: ClassVar[int] = 2
    _cuda_fix: ClassVar[str] = (f" (torch {torch.__version__}); pass --device cpu, or install a "
                                f"CUDA build of torch on a GPU machine")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``TypeError``/``ValueError`` naming the setting, its value and the fix."""
        self._validate_shared()
        if not isinstance(self.tuned, bool):
            raise TypeError(f"tuned should be True (use the shipped tuned settings where they "
                            f"apply) or False, but got tuned={self.tuned!r}")
        if self.tuned_file is not None:
            read_tuning_record(self.tuned_file)  # refused before the data is loaded
        self._resolve_tunable()
        for name in (field for field in SETTINGS if field.endswith("_epochs")):
            setattr(self, name, check_int(name, getattr(self, name), minimum=0,
                                          maximum=self.epochs,
                                          fix=f"it must lie in [0, epochs={self.epochs}]"))
        check_phases(self, STRATEGIES)
        self._validate_jobs()
        self.positive_class = check_int("positive_class", self.positive_class, minimum=0,
                                        maximum=1, fix="it is the index of a two-class task's "
                                                       "positive class, 0 or 1")
        self.ece_bins = check_int("ece_bins", self.ece_bins, minimum=1,
                                  fix="pass the number of calibration bins, e.g. 15")
        self.image_size = check_int("image_size", self.image_size, minimum=8,
                                    fix="the CNN pools twice, so images need at least 8 pixels")
        if self.train_limit is not None:
            self.train_limit = check_int("train_limit", self.train_limit, minimum=2,
                                         fix="keep at least 2 training images, or leave it unset "
                                             "to use them all")
        self.finetune_lr_scale = _check_float("finetune_lr_scale", self.finetune_lr_scale,
                                              low=0.0, low_open=True)
        self.finetune_batchnorm = check_batchnorm(self.finetune_batchnorm)
        self.focal_gamma = _check_float("focal_gamma", self.focal_gamma, low=0.0)
        self.effective_beta = _check_float("effective_beta", self.effective_beta, low=0.0,
                                           high=0.999999)
        self.drw_beta = _check_float("drw_beta", self.drw_beta, low=0.0, high=0.999999)
        self.ldam_max_margin = _check_float("ldam_max_margin", self.ldam_max_margin, low=0.0,
                                            low_open=True)
        self.ldam_scale = _check_float("ldam_scale", self.ldam_scale, low=0.0, low_open=True)
        self.la_tau = _check_float("la_tau", self.la_tau, low=0.0)
        self.hinge_margin = _check_float("hinge_margin", self.hinge_margin, low=0.0,
                                         low_open=True)
        for name in ("posthoc_tau", "balanced_posthoc_tau"):
            if getattr(self, name) is not None:
                setattr(self, name, _check_float(name, getattr(self, name), low=0.0,
                                                 fix="or leave it unset to choose it per seed "
                                                     "on validation"))
        if self.threshold is not None:
            self.threshold = _check_float("threshold", self.threshold, low=0.0, low_open=True,
                                          high=1.0, fix="a probability in (0, 1), or leave it "
                                                        "unset to choose it per seed on "
                                                        "validation")
            if self.threshold == 1.0:
                raise ValueError("threshold should be < 1 (class 1 would never be predicted), "
                                 "but got threshold=1.0")
        # ordinal stays None when not given (resolved by is_ordinal()), so a config copied with
        # other data does not carry a choice that was only a default.
        if self.ordinal is not None and not isinstance(self.ordinal, bool):
            raise TypeError(f"ordinal should be True, False or None, but got "
                            f"ordinal={self.ordinal!r}")
        given = [n for n in ("dataset", "data", "csv", "table") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(f"pass only one of dataset, data, csv and table, but got {given}")
        from balancer.study._data import split_fractions

        self.split = split_fractions(self.split, "split")
        if self.impute is not None and self.impute not in ("median", "mean"):
            raise ValueError(f"impute should be 'median' or 'mean', but got "
                             f"impute={self.impute!r}")
        self._validate_device()

    def shipped_key(self) -> str | None:
        """The shipped data set this config trains on (lower case), or None for the user's."""
        if self.dataset is not None:
            return self.dataset.lower()
        if all(getattr(self, n) is None for n in ("data", "csv", "table")):
            return "retinamnist"
        return None

    def _resolve_tunable(self) -> None:
        """Fill every tunable setting left unset: from the shipped tuning record of the data set
        when ``tuned`` and its budget matches this config's, else from :data:`LIBRARY_DEFAULTS`
        (phase lengths capped at ``epochs``). ``tuned_from`` records which came from where."""
        unset = [name for names in TUNABLE.values() for name in names
                 if getattr(self, name) is None]
        if not unset:
            return  # everything given (or resolved by an earlier validate): tuned_from stays
        budget = self.given_budget()
        record: dict[str, Any] | None
        if self.tuned_file is not None:
            record = read_tuning_record(self.tuned_file)
            wrong = {key: record["budget"].get(key) for key in BUDGET
                     if record["budget"].get(key) != budget[key]}
            if wrong:
                raise ValueError(
                    f"tuned_file={self.tuned_file!r} was tuned for another budget: "
                    + ", ".join(f"{key}={value!r} there but {budget[key]!r} here"
                                for key, value in wrong.items())
                    + "; run the study at that budget, or tune again at this one")
        else:
            record = load_tuned(self.shipped_key()) if self.tuned and not self.quick else None
        # A record without a key of the budget (min_steps, added later) was made without it.
        applies = record is not None and all(
            record["budget"].get(key) == budget[key] for key in BUDGET)
        taken = dict((self.tuned_from or {}).get("settings") or {})
        for name in unset:
            if applies and record is not None and record["settings"].get(name) is not None:
                setattr(self, name, record["settings"][name])
                taken[name] = record["settings"][name]
            elif LIBRARY_DEFAULTS[name] is not None:
                default = LIBRARY_DEFAULTS[name]
                setattr(self, name, min(default, budget["epochs"]) if name.endswith("_epochs")
                        else default)
            if name.endswith("_epochs") and getattr(self, name) is not None:
                setattr(self, name, self.scale_phase(getattr(self, name)))
        shipped = f"balancer/study/tuned/{self.shipped_key()}.json"
        self.tuned_from = {
            "file": (self.tuned_file or shipped) if record else None,
            "applies": bool(applies), "run": record.get("run") if record else None,
            "settings": taken}

    def is_ordinal(self) -> bool:
        """``ordinal``, or whether the shipped data set's classes are ordered grades."""
        if self.ordinal is not None:
            return self.ordinal
        shipped = self.dataset or ("retinamnist" if all(
            getattr(self, n) is None for n in ("data", "csv", "table")) else None)
        return (shipped or "").lower() in _ORDINAL


# ---------------------------------------------------------------------------------------------
# The multi-label study (``balancer study --multilabel``)
# ---------------------------------------------------------------------------------------------
__all__ += ["ML_QUICK", "MultiLabelStrategy", "MultiLabelStudyConfig"]


#: A row of the multi-label study: a :class:`~balancer.study._strategies.Strategy` declared
#: with ``task="multi"``.
MultiLabelStrategy = Strategy


#: What ``--quick`` changes in the multi-label study: one seed, two epochs, fewer bootstrap replicates.
ML_QUICK: dict[str, Any] = {"seeds": (0,), "epochs": 2, "finetune_epochs": 1,
                            "bootstrap": 200}


@dataclass(kw_only=True)
class MultiLabelStudyConfig(SharedSettings):
    """Everything that defines a multi-label study; saved as ``study.json`` and ``config.json``.

    Data (at most one of ``data`` and ``table``; neither means the semi-synthetic ChestX-ray14
    set of ``samples`` rows, see :func:`~balancer.study._data.semisynthetic_chestxray14`):
        data: an ``.npz`` with ``X`` and ``Y`` (optional ``names``, ``groups``, ``split``), or an
            ``.arff``/``.arff.gz`` file (MULAN layout).
        table: a CSV table; its labels are ``label_cols`` (0/1 columns) or ``label_col`` (one
            ``|``-separated column).
        split_col, group_col: a train/val/test column and a group (patient) column of the table.
        split: train, val and test fractions of the automatic split (data without a split),
            and of the validation split carved from train when the data's split has train and
            test rows only, as in the single-label study.

    Training (identical for every strategy; every strategy takes ``epochs * ceil(N /
    batch_size)`` optimizer steps, ``N`` the training rows):
        strategies, seeds, epochs, batch_size, lr, weight_decay, min_steps: as in the
            single-label study.
        finetune_epochs, finetune_lr_scale, finetune_freeze: label-balanced+finetune's last
            epochs at the true frequencies, their learning-rate factor, a frozen backbone.
        finetune_batchnorm: BatchNorm of the MLP in that fine-tune phase, ``"train"``
            (re-estimated at the true frequencies, the default the pinned results were made
            with) or ``"frozen"`` (:func:`balancer.set_train_mode`), as in the single-label
            study.
        rfs_threshold: repeat-factor sampling's ``t`` (labels rarer than ``t`` are repeated).
        asl_gamma_neg, asl_gamma_pos, asl_clip: the asymmetric loss's settings (the paper's).
        la_tau: sigmoid-la's ``tau``.
        width: units per hidden layer of the MLP.
        select: ``"last"`` (final weights) or ``"best"`` (highest validation macro AUPRC).
        reference, bootstrap: the row of the paired statistics, and its bootstrap replicates.
        rarest: how many of the rarest labels (by train positives) the report lists.
        jobs: train this many runs at once in spawned processes (CPU only), as in the
            single-label study: the results are those of ``jobs=1``.
    """

    data: str | None = None
    table: str | None = None
    label_cols: tuple[str, ...] | None = None
    label_col: str | None = None
    split_col: str = "split"
    group_col: str | None = None
    samples: int = 8000
    split: tuple[float, float, float] = (0.7, 0.1, 0.2)
    impute: str | None = None
    min_positives: int | None = None

    strategies: tuple[str, ...] = tuple(ML_STRATEGIES)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    epochs: int = 10
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    finetune_epochs: int | None = None
    finetune_lr_scale: float = 0.1
    finetune_freeze: bool = False
    finetune_batchnorm: str = "train"
    rfs_threshold: float = 0.1
    asl_gamma_neg: float = 4.0
    asl_gamma_pos: float = 0.0
    asl_clip: float = 0.05
    la_tau: float = 1.0
    width: int = 64
    select: str = "last"
    reference: str | None = None
    bootstrap: int = 1000
    rarest: int = 3

    device: str = "cpu"
    threads: int = 1
    quick: bool = False
    progress: bool = True
    multilabel: bool = True  # marks the saved settings as a multi-label study's
    jobs: int = 1
    min_steps: int | None = None
    budget_from: dict[str, Any] | None = None

    task: ClassVar[str] = "multi"
    _selected_by: ClassVar[str] = "validation macro AUPRC"
    _width_is: ClassVar[str] = "the MLP's hidden units"
    _threads_example: ClassVar[int] = 1
    _cuda_fix: ClassVar[str] = "; pass --device cpu"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``TypeError``/``ValueError`` naming the setting, its value and the fix."""
        self._validate_shared()
        if self.finetune_epochs is None:
            self.finetune_epochs = min(1, self.epochs)
        self.finetune_epochs = check_int("finetune_epochs", self.finetune_epochs, minimum=0,
                                         maximum=self.epochs,
                                         fix=f"it must lie in [0, epochs={self.epochs}]")
        check_phases(self, ML_STRATEGIES)
        self._validate_jobs()
        self.samples = check_int("samples", self.samples, minimum=500,
                                 fix="the semi-synthetic set needs at least 500 rows so that "
                                     "rare findings reach every split, e.g. 8000")
        self.rarest = check_int("rarest", self.rarest, minimum=0,
                                fix="pass how many of the rarest labels to list, e.g. 3")
        self.finetune_lr_scale = _check_float("finetune_lr_scale", self.finetune_lr_scale,
                                              low=0.0, low_open=True)
        self.finetune_batchnorm = check_batchnorm(self.finetune_batchnorm)
        self.rfs_threshold = _check_float("rfs_threshold", self.rfs_threshold, low=0.0,
                                          high=1.0, low_open=True,
                                          fix="labels rarer than this share are repeated, "
                                              "e.g. 0.1")
        self.asl_gamma_neg = _check_float("asl_gamma_neg", self.asl_gamma_neg, low=0.0)
        self.asl_gamma_pos = _check_float("asl_gamma_pos", self.asl_gamma_pos, low=0.0)
        self.asl_clip = _check_float("asl_clip", self.asl_clip, low=0.0, high=1.0,
                                     high_open=True,
                                     fix="it is the probability margin shifted off the "
                                         "negatives; the paper's is 0.05, 0 turns it off")
        self.la_tau = _check_float("la_tau", self.la_tau, low=0.0)
        if self.data is not None and self.table is not None:
            raise ValueError(f"pass only one of data and table, but got data={self.data!r} and "
                             f"table={self.table!r}")
        from balancer.study._data import split_fractions

        self.split = split_fractions(self.split, "split")
        if self.label_cols is not None:
            if isinstance(self.label_cols, str):
                self.label_cols = tuple(c.strip() for c in self.label_cols.split(",")
                                        if c.strip())
            self.label_cols = tuple(self.label_cols)
            twice = sorted({c for i, c in enumerate(self.label_cols)
                            if c in self.label_cols[:i]})
            if twice:
                raise ValueError(f"--label-cols {','.join(self.label_cols)} names the column(s) "
                                 f"{twice} more than once; list each label column once")
        if self.table is not None and (self.label_cols is None) == (self.label_col is None):
            raise ValueError("a multi-label table needs its labels: pass label_cols (--label-cols "
                             "A,B,C, 0/1 columns) or label_col (--label-col NAME, one "
                             "'|'-separated column), exactly one")
        if self.table is None and self.data is None and self.label_cols is not None:
            raise ValueError(f"label_cols={list(self.label_cols)} applies to a CSV table or an "
                             f"ARFF file, but the data is the semi-synthetic ChestX-ray14 set "
                             f"(all 14 findings); pass --table or --data, or remove --label-cols")
        if self.table is None and self.label_col is not None:
            raise ValueError(f"label_col={self.label_col!r} applies only to a CSV table; pass "
                             f"--table, or remove --label-col")
        if self.table is None and (self.group_col is not None or self.split_col != "split"):
            raise ValueError("group_col and split_col apply only to a CSV table (an .npz holds "
                             "them as the arrays 'groups' and 'split' or 'is_train'; the "
                             "semi-synthetic set is split by patient); pass --table, or remove "
                             "them")
        self._validate_device()
