"""The ``balancer study`` command: its options, the checks of their combinations, and the runs
of both studies (single-label, and multi-label with ``--multilabel``).

Examples::

    balancer study                                   # the default study on shipped RetinaMNIST
    balancer study --dataset pneumoniamnist --seeds 0,1,2
    balancer study --data my_medmnist_layout.npz --strategies plain,balanced+finetune
    balancer study --csv manifest.csv --image-col path --label-col dx --group-col patient_id
    balancer study --table features.csv --label-col y     # a small MLP on numeric features
    balancer study --resume --out runs/mine          # continue an interrupted study
    balancer study --quick --out /tmp/smoke          # seconds: one seed, two short epochs
    balancer study --tune --dataset breastmnist --jobs 2   # choose key settings on validation

    balancer study --multilabel                          # semi-synthetic ChestX-ray14 (default)
    balancer study --multilabel --quick --out /tmp/ml    # seconds: one seed, two epochs
    balancer study --multilabel --data mine.npz          # arrays X (N, F) and Y (N, L)
    balancer study --multilabel --table t.csv --label-cols a,b,c --group-col patient
    balancer study --multilabel --table t.csv --label-col findings   # one '|'-joined column
    balancer study --multilabel --data yeast-train.arff.gz           # MULAN's ARFF layout

Options of the single-label study that mean nothing to the multi-label one (image options,
losses and phases of single-label strategies, post-hoc rows) are an error with ``--multilabel``,
and the multi-label options are an error without it: nothing is silently ignored.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from collections.abc import Set
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

# Only the settings are imported here: the study's heavy imports (pandas, scikit-learn, tqdm,
# matplotlib) wait until a study runs, so `balancer study --help` and usage errors are quick.
from balancer.study._config import (
    ML_QUICK,
    QUICK,
    TUNE_SEEDS,
    MultiLabelStudyConfig,
    StudyConfig,
    whole_run_phases,
)
from balancer.study._strategies import ML_STRATEGIES, POSTHOC_ROWS, SETTINGS, STRATEGIES, TUNABLE

if TYPE_CHECKING:  # the command imports these where it uses them (a fast --help)
    import pandas as pd

    from balancer.study._data import MultiLabelData, StudyData
    from balancer.study._outputs import RunFolder

__all__ = ["add_study_parser", "as_flags", "study", "usage_error"]

_DEFAULTS = StudyConfig(progress=False)

# Options that only mean something with one kind of data: given without it, they are an error
# rather than silently ignored.
_APPLIES = {
    "image_col": ("csv",), "image_size": ("csv",), "label_col": ("csv", "table"),
    "split_col": ("csv", "table"), "group_col": ("csv", "table"), "split": ("data", "csv", "table"),
    "impute": ("data", "table"),
}


# What --select keeps, in the words of the help text (the description names the default's).
_SELECT_TEXT = {"last": "final weights",
                "best": "weights of the epoch with the highest validation balanced accuracy"}


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 0,1,2, but got {text!r}") from None


def _name_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, but got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, but got {text!r}")
    return value


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends ``(default: X)`` to an option's help once: not where the help already states the
    default (BooleanOptionalAction adds it itself on Python < 3.14), not for a default of None
    (the help says in words what happens without the option), not for an on-only flag."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        on_only = action.nargs == 0 and not isinstance(action, argparse.BooleanOptionalAction)
        if "(default" in text or "%(default)" in text or action.default is None or on_only:
            return action.help
        return super()._get_help_string(action)


def add_study_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``study`` command and every option of both studies to ``subparsers``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "study", help="compare weighting and resampling strategies on one data set",
        description="Train the same small model (a CNN on images, an MLP on --table data) under "
                    "several imbalance strategies and seeds, with the same number of optimizer "
                    f"steps each; keep each run's {_SELECT_TEXT[_DEFAULTS.select]} (--select), "
                    "report test metrics (CSV, Markdown, plots, config JSON) in a run folder.",
        formatter_class=_HelpFormatter)
    data = parser.add_argument_group("data (at most one of --dataset, --data, --csv, --table)")
    source = data.add_mutually_exclusive_group()
    source.add_argument("--dataset", default=None,
                        help="a shipped data set: retinamnist, pneumoniamnist, breastmnist "
                             "(default: retinamnist, unless --data or --csv is given); several, "
                             "comma-separated, run one study each (in --out/<name>) and rank "
                             "the strategies across them (across.md)")
    source.add_argument("--data", default=None, metavar="PATH.npz",
                        help="an .npz file: images in the MedMNIST layout, or a table as arrays "
                             "X (samples x features) and y (class indices)")
    source.add_argument("--csv", default=None, metavar="MANIFEST.csv",
                        help="a CSV manifest of image files (paths relative to the CSV)")
    source.add_argument("--table", default=None, metavar="DATA.csv",
                        help="a CSV table: every column but --label-col/--split-col/--group-col "
                             "is a feature (text columns one-hot encoded), trained with a small "
                             "MLP; features standardised on the train split")
    data.add_argument("--image-col", default=None,
                      help=f"with --csv: the column of image paths (default: "
                           f"{_DEFAULTS.image_col})")
    data.add_argument("--label-col", default=None,
                      help=f"with --csv or --table: the column of class labels (default: "
                           f"{_DEFAULTS.label_col})")
    data.add_argument("--split-col", default=None,
                      help=f"with --csv or --table: train/val/test per row (a given column must "
                           f"exist); without it, the seeded automatic split of --split "
                           f"(default: {_DEFAULTS.split_col})")
    data.add_argument("--group-col", default=None,
                      help="with --csv or --table: a group id per row (e.g. patient_id); no "
                           "group is in two splits, and the automatic split deals whole groups, "
                           "stratified by class")
    data.add_argument("--split", default=None, metavar="TRAIN,VAL,TEST",
                      help="with --data, --csv or --table without a split column: the fractions "
                           "of the seeded automatic split, stratified by class (by label with "
                           "--multilabel) and by --group-col, and of the validation split "
                           "carved from train when the split has no val rows (default: "
                           "0.7,0.1,0.2)")
    data.add_argument("--impute", default=None, choices=("median", "mean"),
                      help="with --data (X/y) or --table: fill missing feature values with the "
                           "train split's median or mean (val and test get the train statistic); "
                           "default: missing values are an error")
    data.add_argument("--min-positives", type=int, default=None, metavar="K",
                      help="with --multilabel: drop the labels with fewer than K positives in "
                           "some split, naming them (default: every label is kept, and one "
                           "without a positive in a split is an error)")
    data.add_argument("--image-size", type=int, default=None,
                      help=f"with --csv: images are resized to this many pixels square (default: "
                           f"{_DEFAULTS.image_size})")
    data.add_argument("--train-limit", type=int, default=None,
                      help="train on a stratified slice of this many samples (default: all)")

    run = parser.add_argument_group("study")
    run.add_argument("--strategies", type=_name_list, default=None,
                     help=f"comma-separated, from: {', '.join(STRATEGIES)} (default: all)")
    run.add_argument("--seeds", type=_int_list, default=None,
                     help=f"comma-separated seeds (default: "
                          f"{','.join(map(str, _DEFAULTS.seeds))})")
    run.add_argument("--epochs", type=int, default=None,
                     help=f"budget in epochs of ceil(N/batch_size) steps (default: "
                          f"{_DEFAULTS.epochs})")
    run.add_argument("--min-steps", type=int, default=None, metavar="K",
                     help="raise --epochs, once the train split is loaded, so that every run "
                          "takes at least K optimizer steps (with or without --multilabel); "
                          "phase lengths given in epochs (--finetune-epochs, --drw-epochs, "
                          "--drs-epochs, --crt-epochs) keep their share of the run, scaled by "
                          "the same factor (default: exactly --epochs)")
    run.add_argument("--batch-size", type=int, default=_DEFAULTS.batch_size,
                     help="samples per optimizer step")
    run.add_argument("--lr", type=_finite, default=_DEFAULTS.lr, help="AdamW learning rate")
    run.add_argument("--weight-decay", type=_finite, default=_DEFAULTS.weight_decay,
                     help="AdamW weight decay")
    tuned = ("(default: the shipped tuned value for a shipped data set at the default budget, "
             "else {})")
    for setting in SETTINGS.values():  # every strategy's key settings, as declared
        kind = (dict(choices=setting.choices) if setting.choices
                else dict(type=int if setting.field.endswith("_epochs") else _finite))
        run.add_argument(setting.flag, default=None, **kind,
                         help=f"{setting.help} {tuned.format(setting.default_text())}")
    run.add_argument("--tuned", nargs="?", const=True, default=True, metavar="FILE",
                     help="use the shipped tuned settings (balancer/study/tuned/<dataset>.json) "
                          "for the settings not given, where their budget is this run's; with "
                          "FILE, the tuned.json of a --tune run on this data instead (refused "
                          "for other data or another budget) (default: on)")
    run.add_argument("--no-tuned", dest="tuned", action="store_false",
                     help="use no tuned settings: the library defaults")
    run.add_argument("--tune", action="store_true",
                     help="tuning mode: train every strategy's key setting on a small grid "
                          "(the same number of points and seeds for each) and choose it by "
                          "validation balanced accuracy; writes tuned.json and tune.md, reads "
                          "no test label (seeds default to 100,101)")
    run.add_argument("--jobs", type=int, default=_DEFAULTS.jobs,
                     help="train this many runs at once in parallel processes (one torch "
                          "thread each by default); the results are those of --jobs 1 (with or "
                          "without --multilabel)")
    run.add_argument("--drw-beta", type=_finite, default=_DEFAULTS.drw_beta,
                     help="ldam-drw's beta of the deferred class-balanced weights")
    run.add_argument("--finetune-freeze", action=argparse.BooleanOptionalAction,
                     default=_DEFAULTS.finetune_freeze,
                     help="freeze the backbone in balanced+finetune's fine-tune phase")
    run.add_argument("--select", choices=("best", "last"), default=_DEFAULTS.select,
                     help="; ".join(f"{key}: {text}" for key, text in _SELECT_TEXT.items()))
    run.add_argument("--augment", action=argparse.BooleanOptionalAction,
                     default=_DEFAULTS.augment,
                     help="random shifts of up to 2 pixels and horizontal flips in training")
    run.add_argument("--width", type=int, default=_DEFAULTS.width,
                     help="channels of the CNN's first block")
    run.add_argument("--reference", default=None,
                     help="the row the paired statistics compare every strategy with (default: "
                          "plain)")
    run.add_argument("--bootstrap", type=int, default=_DEFAULTS.bootstrap,
                     help="replicates of the paired bootstrap over seeds and test samples")
    run.add_argument("--posthoc", action=argparse.BooleanOptionalAction,
                     default=_DEFAULTS.posthoc,
                     help="add plain+posthoc and balanced+posthoc (post-hoc logit adjustment) "
                          "and, for two classes, plain+threshold, each tuned on validation "
                          "after training")
    run.add_argument("--ordinal", action=argparse.BooleanOptionalAction, default=None,
                     help="the classes are ordered grades: report the quadratic weighted kappa "
                          "(default: on for retinamnist, off otherwise)")
    run.add_argument("--positive-class", default=None, metavar="NAME",
                     help="for two classes: the class whose AUPRC and sensitivity at 95%% "
                          "specificity are reported, by name (or index 0/1) (default: class 1, "
                          "the second class)")
    run.add_argument("--device", default=_DEFAULTS.device, help="cpu, cuda or cuda:N")
    run.add_argument("--threads", type=int, default=_DEFAULTS.threads,
                     help="torch CPU threads (1 is fastest for this small CNN)")
    run.add_argument("--quick", action="store_true",
                     help="seconds-long smoke run: "
                          + ", ".join(f"{k}={v}" for k, v in QUICK.items()))
    run.add_argument("--out", default=None, metavar="DIR",
                     help="run folder (default: a new runs/<timestamp>-<data>); checked before "
                          "training, each finished run saved there at once")
    run.add_argument("--overwrite", action="store_true",
                     help="replace a previous study in --out (refused without it)")
    run.add_argument("--resume", action="store_true",
                     help="continue the study in --out: train only the runs it does not hold")
    run.add_argument("--no-progress", action="store_true",
                     help="no progress bars, and no line per finished run (printed instead of "
                          "the bars when stderr is not a terminal)")
    _add_multilabel_options(parser)  # --multilabel and the options only it reads
    parser.set_defaults(handler=study, parser=parser)
    return parser


def _config(args: argparse.Namespace, dataset: str | None = None) -> StudyConfig:
    source = next((name for name in ("dataset", "data", "csv", "table")
                   if getattr(args, name) is not None), None)
    for option, kinds in _APPLIES.items():
        if getattr(args, option) is not None and source not in kinds:
            flag = "--" + option.replace("_", "-")
            raise ValueError(f"{flag} applies only with {' or '.join('--' + k for k in kinds)}, "
                             f"but the data is {('--' + source) if source else 'the default '}"
                             f"{'' if source else '(shipped retinamnist)'}; remove {flag} or "
                             f"pass {' or '.join('--' + k for k in kinds)}")
    if args.resume and args.out is None:
        raise ValueError("--resume continues the study in a run folder; pass it with --out DIR")
    if not args.posthoc:
        for field in (s.field for row in POSTHOC_ROWS.values() for s in row.settings):
            if getattr(args, field) is not None:
                flag = "--" + field.replace("_", "-")
                raise ValueError(f"{flag} sets a post-hoc row, but --no-posthoc removes those "
                                 f"rows; remove {flag} or --no-posthoc")
    chosen = {"seeds": args.seeds, "epochs": args.epochs, "train_limit": args.train_limit,
              **{field: getattr(args, field) for field in SETTINGS}}
    for key, value in chosen.items():
        if value is not None:
            continue
        if key == "seeds" and args.tune:
            chosen[key] = TUNE_SEEDS
        elif args.quick and key in QUICK:
            chosen[key] = QUICK[key]  # phase lengths of 1 fit any budget
        elif key not in SETTINGS:
            chosen[key] = getattr(_DEFAULTS, key)
        # else left None: StudyConfig fills a key setting (tuned, or the library default)
    columns = {key: getattr(args, key) if getattr(args, key) is not None
               else getattr(_DEFAULTS, key)
               for key in ("image_col", "label_col", "split_col", "group_col", "image_size",
                           "split", "impute")}
    config = StudyConfig(
        dataset=dataset or args.dataset, data=args.data, csv=args.csv, table=args.table,
        **columns,
        strategies=args.strategies if args.strategies is not None else tuple(STRATEGIES),
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
        finetune_freeze=args.finetune_freeze,
        drw_beta=args.drw_beta, reference=args.reference, bootstrap=args.bootstrap,
        tuned=args.tuned is not False, jobs=args.jobs, min_steps=args.min_steps,
        tuned_file=args.tuned if isinstance(args.tuned, str) else None,
        ordinal=args.ordinal, posthoc=args.posthoc,
        select=args.select, augment=args.augment, width=args.width, device=args.device,
        threads=args.threads, quick=args.quick,
        # Progress bars only on a terminal: redirected to a file they are noise.
        progress=not args.no_progress and sys.stderr.isatty(), **chosen)
    _refuse_whole_run_phases(config, STRATEGIES,
                             {field for field in SETTINGS if getattr(args, field) is not None})
    return config


def _refuse_whole_run_phases(config: StudyConfig | MultiLabelStudyConfig, strategies: dict,
                             given: set[str]) -> None:
    """A phase length the user gave that lasts the whole run trains the strategy as another,
    single-phase one under its own name (as a phase of 0 would): refused, like 0."""
    for strategy, field in whole_run_phases(config, strategies):
        if field in given:
            flag = _flag(field)
            raise ValueError(f"{flag} {getattr(config, field)} equals --epochs {config.epochs}: "
                             f"{strategy}'s phase would cover the whole run, so it would never "
                             f"change phase and train as a single-phase strategy under its own "
                             f"name; pass {flag} below {config.epochs} (and 1 or more), or "
                             f"leave {strategy} out of --strategies")


def _check_tune(args: argparse.Namespace, names: list[str | None],
                passed: Set[str] = frozenset()) -> None:
    """--tune with options that mean nothing in the tuning mode is an error, not ignored
    (``passed``: the options given on the command line, for those with a default)."""
    if len(names) > 1:
        raise ValueError(f"--tune chooses the settings of one data set, but got "
                         f"--dataset {args.dataset}; run --tune once per data set")
    given = {"--resume": args.resume, "--reference": args.reference is not None,
             "--ordinal/--no-ordinal": args.ordinal is not None,
             # the bootstrap is of the paired statistics; tuning runs never read a record
             "--bootstrap": "bootstrap" in passed, "--tuned/--no-tuned": "tuned" in passed}
    given.update({"--" + field.replace("_", "-"): getattr(args, field) is not None
                  for fields in TUNABLE.values() for field in fields})
    wrong = [flag for flag, on in given.items() if on]
    if wrong:
        raise ValueError(f"--tune does not take {wrong[0]}: the tuning mode chooses every "
                         f"strategy's key setting from its grid and reports validation scores "
                         f"only (no paired statistics, no test metrics); remove {wrong[0]}")


def _default_out(config: StudyConfig | MultiLabelStudyConfig, name: str | None = None) -> Path:
    """A new run folder named after the data (``name`` if given) under ``runs/``."""
    from balancer.study._outputs import default_out

    if isinstance(config, MultiLabelStudyConfig):
        from balancer.study._data import SEMISYNTHETIC

        given = config.data or config.table
        name = f"{Path(given).name.split('.')[0] if given else SEMISYNTHETIC}-multilabel"
    else:
        given = config.data or config.csv or config.table
        name = name or config.dataset or (Path(given).stem if given else "retinamnist")
    return default_out(name, quick=config.quick)


def _print_run(strategy: str, seed: int, seconds: float) -> None:
    # Where no progress bar shows (stderr is not a terminal), one line per finished run, so a
    # redirected or piped study is not silent for hours.
    print(f"finished {strategy} seed {seed} in {seconds:.1f} s", file=sys.stderr, flush=True)


def _warn_budget(config: StudyConfig | MultiLabelStudyConfig,
                 data: StudyData | MultiLabelData) -> None:
    """One line on the console before training when runs will fall below the floor of
    optimizer steps (:data:`~balancer.study._config.MIN_RUN_STEPS` in all,
    :data:`~balancer.study._config.MIN_PHASE_STEPS` in a phase); the report repeats it."""
    from balancer.study._config import MIN_PHASE_STEPS, MIN_RUN_STEPS, below_floor, planned_steps
    from balancer.study._data import MultiLabelData

    rows = len(data.targets["train"] if isinstance(data, MultiLabelData)
               else data.labels["train"])
    low = {name: steps for name, steps in planned_steps(config, rows).items()
           if below_floor(*steps)}
    if low:
        print(f"balancer study: warning: {len(low)} strategy(ies) will train below the floor of "
              f"{MIN_RUN_STEPS} optimizer steps per run and {MIN_PHASE_STEPS} per phase: "
              + ", ".join(f"{name} ({total} steps, shortest phase {shortest})"
                          for name, (total, shortest) in low.items())
              + f"; pass --min-steps {MIN_RUN_STEPS} (or more) to raise the epochs",
              file=sys.stderr)


def _run(config: StudyConfig | MultiLabelStudyConfig, data: StudyData | MultiLabelData,
         folder: RunFolder, command: str, no_progress: bool = False) -> pd.DataFrame:
    """Run the study of ``config`` (either task) in its prepared ``folder``, write its report
    and print the main table; return the results. Without progress bars (and unless
    ``no_progress``), print a line per finished run."""
    from balancer.study._report import format_multilabel_table, format_table, write_outputs
    from balancer.study._study import run_study

    if folder.done:
        print(f"Resuming {folder.path}: {len(folder.done)} finished run(s) kept", file=sys.stderr)
    _warn_budget(config, data)
    results = run_study(config, data, folder=folder,
                        on_run=None if config.progress or no_progress else _print_run)
    paths = write_outputs(results, config, folder.path, command=command)
    table = (format_multilabel_table if isinstance(config, MultiLabelStudyConfig)
             else format_table)
    print()
    print(f"Test metrics on {results.attrs['source']}, mean ± std over seeds "
          f"{list(config.seeds)}:")
    print()
    print(table(results))
    print()
    print(f"Report: {paths['report.md']}")
    print(f"Run folder: {folder.path} ({', '.join(p.name for p in paths.values())})")
    return results


def study(args: argparse.Namespace, parser: argparse.ArgumentParser, command: str) -> int:
    if args.multilabel:  # the multi-label study: its own settings, data and report
        return _multilabel_study(args, parser, command)
    _reject_multilabel_options(args, parser)
    from balancer.study._outputs import prepare_out
    from balancer.study._report import write_across
    from balancer.study._study import prepare_data

    names = ([n.strip() for n in args.dataset.split(",") if n.strip()]
             if args.dataset is not None and "," in args.dataset else [None])
    try:
        if len(set(names)) != len(names):
            raise ValueError(f"dataset={args.dataset!r} names a data set twice; name each once")
        _check_split_flags(args)
        if args.tune:
            _check_tune(args, names, _given(parser, shlex.split(command)[2:]))
        configs = {name: _config(args, name) for name in names}
        first = configs[names[0]]
        out = Path(args.out) if args.out is not None else _default_out(
            first, "across" if len(names) > 1 else None)
        if out.exists() and not out.is_dir():
            raise ValueError(f"out={str(out)!r} is a file; pass a folder for the run's outputs")
        # Every input error surfaces before any training, for every data set.
        data = {name: prepare_data(config) for name, config in configs.items()}
        # plain+threshold exists for two classes only: a threshold for other data would be
        # silently ignored, so it is refused before any training.
        wider = [(name, d.num_classes) for name, d in data.items() if d.num_classes != 2]
        if args.threshold is not None and wider:
            name, classes = wider[0]
            raise ValueError(f"--threshold sets plain+threshold, a row of two-class data only, "
                             f"but {name or first.shipped_key() or 'the data'} has {classes} "
                             f"classes; remove --threshold")
        if isinstance(args.tuned, str):
            for name, prepared in data.items():
                _check_tuned_data(args.tuned, configs[name], prepared)
        if args.positive_class is not None:
            for name, config in configs.items():
                config.positive_class = _positive_index(args.positive_class, data[name])
        else:  # the default class 1 may be the common one: say so before training
            from balancer.study._config import majority_positive

            for name, config in configs.items():
                note = majority_positive(data[name].class_names, data[name].counts("train"),
                                         config.positive_class)
                if note:
                    print(f"balancer study: {name + ': ' if name else ''}{note}",
                          file=sys.stderr)
        if args.tune:
            if out.exists() and any(out.iterdir()) and not args.overwrite:
                raise ValueError(f"out={str(out)!r} already holds files; pass --overwrite to "
                                 f"replace them or choose another --out")
            if args.overwrite and out.is_dir():
                from balancer.study._outputs import clear_previous

                clear_previous(out)  # as for a study: the folder never mixes two runs
            _warn_budget(first, data[names[0]])
            return _tune(first, data[names[0]], out, command)
        # several data sets: every name is a string (names is [None] only for one)
        folders = {name: prepare_out(out if len(names) == 1 else out / str(name),
                                     config=config.to_dict(), overwrite=args.overwrite,
                                     resume=args.resume)
                   for name, config in configs.items()}
    except (TypeError, ValueError, FileNotFoundError, KeyError) as error:
        usage_error(parser, error)
    per_dataset = {}
    for name, config in configs.items():
        per_dataset[name or "retinamnist"] = _run(config, data[name], folders[name], command,
                                                  no_progress=args.no_progress)
    if len(names) > 1:
        across = write_across(per_dataset, first, out, command=command)
        print(f"Across data sets: {across['across.md']}")
    return 0


def _check_tuned_data(path: str, config: StudyConfig, data: StudyData) -> None:
    """A tuning record (``--tuned FILE``) applies only to the data it was tuned on: the same
    file content (wherever it lies now), label column, classes and task kind."""

    from balancer.study._config import read_tuning_record
    from balancer.study._tune import tuned_identity

    record = read_tuning_record(path)
    source = record.get("source")
    if "data" not in record:  # a record written before identities: its source string
        if source != data.source:
            raise ValueError(f"--tuned {path} was tuned on {source!r}, but this study's data "
                             f"is {data.source!r}; pass the tuned.json of a --tune run on "
                             f"this data")
        return
    there, here = record["data"], tuned_identity(config, data)
    differ = [key for key in sorted(set(there) | set(here)) if there.get(key) != here.get(key)]
    if differ:
        def shown(identity: dict) -> str:
            return ", ".join(f"{key} {identity.get(key)!r}" for key in differ)

        raise ValueError(f"--tuned {path} was tuned on other data: {source!r} ({shown(there)}), "
                         f"but this study's data is {data.source!r} ({shown(here)}); pass the "
                         f"tuned.json of a --tune run on this data")


def _positive_index(name: str, data: StudyData) -> int:
    """The index of the class ``name`` (a class name, or the index 0 or 1) of two-class
    ``data``: the positive class of AUPRC and sensitivity at 95% specificity."""
    names = [str(n) for n in data.class_names]
    if len(names) != 2:
        raise ValueError(f"--positive-class {name} chooses the positive class of a two-class "
                         f"task, but the data has {len(names)} classes {names}; remove "
                         f"--positive-class")
    if name in names:
        return names.index(name)
    if name in ("0", "1"):
        return int(name)
    raise ValueError(f"--positive-class {name} is not a class of the data; pass one of {names} "
                     f"(or the index 0 or 1)")


def _tune(config: StudyConfig, data: StudyData, out: Path, command: str) -> int:
    from balancer.study._tune import tune, write_tuning

    record = tune(config, data, command=command, run=out.name)
    paths = write_tuning(record, out)
    print(Path(paths["tune.md"]).read_text())
    print(f"Chosen settings: {record['settings']}")
    if record["dataset"]:
        print(f"Tuning record: {paths['tuned.json']} (copy it to "
              f"balancer/study/tuned/{record['dataset']}.json to make it the default of this "
              f"data set)")
    else:  # only a shipped data set's record is read back; for other data the flags are the way
        # At a short budget the grid of a phase is capped at --epochs, as its default is, so a
        # chosen phase can cover the whole run; as a flag that is refused (check_phases), so it
        # is left out of the flags and named, with the record as the route that applies it.
        epochs = record["budget"]["epochs"]
        whole = {key: value for key, value in record["settings"].items()
                 if key.endswith("_epochs") and value is not None and value >= epochs}
        as_flag = {key: f"--{key.replace('_', '-')} {value}"
                   for key, value in record["settings"].items()}
        flags = " ".join(flag for key, flag in as_flag.items() if key not in whole)
        left = "" if not whole else (
            f" ({', '.join(as_flag[key] for key in whole)} would cover the whole run of --epochs "
            f"{epochs}, which a flag may not: --tuned applies "
            f"{'it' if len(whole) == 1 else 'them'})")
        print(f"Tuning record: {paths['tuned.json']}; to use these settings on this data, pass "
              f"{flags or 'no flag'}{left}, or --tuned {paths['tuned.json']} (the report then "
              f"names the record)")
    return 0


# --------------------------------------------------------------- balancer study --multilabel
# Options that only steer the run (they mean the same with or without --multilabel).
_RUN = ("multilabel", "quick", "out", "overwrite", "resume", "no_progress")
# Options of the multi-label study only (their defaults are None, so "given" is "not None").
_ONLY_HERE = ("label_cols", "rfs_threshold", "synthetic_samples", "rarest", "min_positives")
# Shared options and the config field each one sets.
_SHARED = ("data", "table", "label_col", "split_col", "group_col", "strategies", "seeds",
           "epochs", "batch_size", "lr", "weight_decay", "finetune_epochs", "finetune_lr_scale",
           "finetune_freeze", "finetune_batchnorm", "select", "width", "reference", "bootstrap",
           "la_tau", "device", "threads", "impute", "jobs", "min_steps", "split")
# Single-label options that do not apply to the multi-label study, with why: the key settings
# of the single-label strategies (as declared) and the options below.
_NOT_HERE = {
    **{field: f"it belongs to the single-label {row} strategy"
       for row, fields in TUNABLE.items() if row in STRATEGIES
       for field in fields if field not in _SHARED},
    "dataset": "the multi-label study's default data is the semi-synthetic ChestX-ray14 set; "
               "pass --data or --table for your own",
    "csv": "the multi-label study trains on feature tables, not image manifests",
    "image_col": "there are no images in the multi-label study",
    "image_size": "there are no images in the multi-label study",
    "train_limit": "the semi-synthetic set's size is --synthetic-samples",
    "drw_beta": "it belongs to the single-label ldam-drw strategy",
    "posthoc": "the multi-label study chooses per-label thresholds on validation instead",
    "ordinal": "multi-label findings are not ordered grades",
    "augment": "feature tables are not augmented",
    "posthoc_tau": "the multi-label study has no post-hoc rows",
    "balanced_posthoc_tau": "the multi-label study has no post-hoc rows",
    "threshold": "the multi-label study chooses per-label thresholds on validation",
    "tune": "the tuning mode covers the single-label strategies only",
    "positive_class": "every label of a multi-label study is its own positive class",
    "tuned": "tuning records hold settings of the single-label strategies only",
}


def _add_multilabel_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--multilabel`` and the options only it uses to the ``study`` parser."""
    group = parser.add_argument_group(
        "multi-label study (--multilabel)",
        f"strategies: {', '.join(ML_STRATEGIES)}. Data: --data X/Y .npz or .arff[.gz], "
        f"--table CSV with --label-cols or --label-col; without either, the semi-synthetic "
        f"ChestX-ray14 set (real label rows and patient ids, generated features). Defaults "
        f"that differ with --multilabel: --epochs {MultiLabelStudyConfig.epochs}, --batch-size "
        f"{MultiLabelStudyConfig.batch_size}, --width {MultiLabelStudyConfig.width} (units of "
        f"the MLP's hidden layers)")
    group.add_argument("--multilabel", action="store_true",
                       help="run the multi-label study (per-label AUROC, AUPRC, F1)")
    group.add_argument("--label-cols", type=_name_list, default=None, metavar="A,B,...",
                       help="with --multilabel --table (or an ARFF file): the 0/1 label columns "
                            "(default for ARFF: its nominal {0,1} attributes)")
    group.add_argument("--rfs-threshold", type=float, default=None,
                       help="repeat-factor's t: labels rarer than this share are repeated "
                            f"(default: {MultiLabelStudyConfig.rfs_threshold})")
    group.add_argument("--synthetic-samples", type=int, default=None,
                       help="rows of the semi-synthetic ChestX-ray14 set, whole patients "
                            f"(default: {MultiLabelStudyConfig.samples})")
    group.add_argument("--rarest", type=int, default=None,
                       help="how many of the rarest labels the report lists "
                            f"(default: {MultiLabelStudyConfig.rarest})")


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


# Config fields set by a flag of another name.
_FIELD_FLAGS = {"samples": "--synthetic-samples", "tuned_file": "--tuned"}


def as_flags(message: str, parser: argparse.ArgumentParser) -> str:
    """A config error names its field (``samples should be ..., but got samples=5``); on the
    command line it names the flag instead (``--synthetic-samples should be ..., but got
    --synthetic-samples 5``). Only fields that a flag of this parser sets are renamed."""
    flags = {action.dest: next((o for o in action.option_strings if o.startswith("--")), None)
             for action in parser._actions if action.option_strings}
    named = {dest: flag for dest, flag in flags.items() if flag} | _FIELD_FLAGS
    names = "|".join(sorted(map(re.escape, named), key=len, reverse=True))
    message = re.sub(rf"^({names}) should", lambda m: f"{named[m.group(1)]} should", message)
    return re.sub(rf"(?<![\w\-'\[.])({names})=", lambda m: f"{named[m.group(1)]} ", message)


def usage_error(parser: argparse.ArgumentParser, error: Exception) -> NoReturn:
    """Exit with ``error`` as a usage error of ``parser``, naming flags (see :func:`as_flags`)."""
    message = error.args[0] if isinstance(error, KeyError) and error.args else error
    parser.error(as_flags(str(message), parser))


def _reject_multilabel_options(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """In the single-label study, a multi-label-only option is a usage error."""
    given = [_flag(dest) for dest in _ONLY_HERE if getattr(args, dest) is not None]
    if given:
        parser.error(f"{given[0]} applies only to the multi-label study; add --multilabel or "
                     f"remove {given[0]}")


def _given(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The destinations the user actually passed (parsed again with a sentinel default)."""
    sentinel = object()
    saved = [(action, action.default) for action in parser._actions]
    try:
        for action, _ in saved:
            action.default = sentinel
        parsed = parser.parse_args(argv)
    finally:
        for action, default in saved:
            action.default = default
    options = {action.dest for action in parser._actions if action.option_strings}
    return {dest for dest, value in vars(parsed).items()
            if value is not sentinel and dest in options}


def _check_split_flags(args: argparse.Namespace) -> None:
    """Before the data is loaded, the split flags a file would make moot: a ``--split-col``
    that is not a column of the CSV (the file would otherwise be split automatically, its real
    split column turned into a feature), and ``--split`` when the file's own split already has
    train, val and test rows (neither the automatic split nor a carved validation split is
    drawn, so the fractions would be silently ignored). Unreadable files are left to the
    loader, whose errors name them."""
    file = args.table if args.table is not None else args.csv
    column = args.split_col if args.split_col is not None else "split"
    own: set[str] = set()
    where = ""
    if file is not None and Path(file).is_file():
        import pandas as pd

        try:
            columns = [str(c) for c in pd.read_csv(file, nrows=0).columns]
            if args.split_col is not None and args.split_col not in columns:
                raise ValueError(f"--split-col {args.split_col!r} is not a column of {file} (it "
                                 f"has {columns}); pass --split-col with one of those, or leave "
                                 f"--split-col out to split automatically (--split)")
            if args.split is not None and column in columns:
                values = pd.read_csv(file, usecols=[column])[column]
                own = set(values.astype(str).str.strip().str.lower())
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError):
            return
        where = f"{file} has its own split column {column!r}"
    elif args.data is not None and args.split is not None and Path(args.data).is_file():
        import numpy as np

        try:
            with np.load(args.data, allow_pickle=False) as archive:
                if "split" in getattr(archive, "files", ()):
                    own = set(np.char.lower(np.char.strip(archive["split"].astype(str))).ravel())
        except Exception:  # a damaged file: the loader names it
            return
        where = f"{args.data} has its own split column 'split'"
    if args.split is not None and {"train", "val", "test"} <= own:
        raise ValueError(f"--split {args.split} sets the fractions of the automatic split (and "
                         f"the val share carved from train when a split has no val rows), but "
                         f"{where} with train, val and test rows, so neither is drawn; remove "
                         f"--split, or drop the file's split to split by the fractions")


def _multilabel_config(args: argparse.Namespace, given: set[str]) -> MultiLabelStudyConfig:
    """The config of ``args``; ``given`` are the options passed (the rest keep the multi-label
    defaults, which differ from the single-label ones)."""
    for dest, why in _NOT_HERE.items():
        if dest in given:
            raise ValueError(f"{_flag(dest)} does not apply with --multilabel ({why}); remove "
                             f"{_flag(dest)}")
    # An option added to the single-label study later is refused here until it is sorted into
    # one of the lists above, so it can never be silently ignored.
    for dest in sorted(given - set(_SHARED) - set(_ONLY_HERE) - set(_RUN)):
        raise ValueError(f"{_flag(dest)} does not apply with --multilabel; remove {_flag(dest)}")
    if "resume" in given and args.resume and args.out is None:
        raise ValueError("--resume continues the study in a run folder; pass it with --out DIR")
    settings = {dest: getattr(args, dest) for dest in _SHARED if dest in given}
    if args.quick:
        settings = {**{k: v for k, v in ML_QUICK.items()}, **settings}
    if args.label_cols is not None:
        settings["label_cols"] = args.label_cols
    if args.rfs_threshold is not None:
        settings["rfs_threshold"] = args.rfs_threshold
    if args.synthetic_samples is not None:
        settings["samples"] = args.synthetic_samples
    if args.rarest is not None:
        settings["rarest"] = args.rarest
    if args.min_positives is not None:
        settings["min_positives"] = args.min_positives
    if (args.data is not None or args.table is not None) and "samples" in settings:
        raise ValueError("--synthetic-samples sizes the default semi-synthetic set; remove it "
                         "when passing --data or --table")
    config = MultiLabelStudyConfig(quick=bool(args.quick),
                                   progress=not args.no_progress and sys.stderr.isatty(),
                                   **settings)
    _refuse_whole_run_phases(config, ML_STRATEGIES, given)
    return config


def _multilabel_study(args: argparse.Namespace, parser: argparse.ArgumentParser,
                     command: str) -> int:
    """Run the multi-label study of ``args``: every input and folder error before training."""
    from balancer.study._outputs import prepare_out
    from balancer.study._study import prepare_data

    try:
        given = _given(parser, shlex.split(command)[2:])
        _check_split_flags(args)
        config = _multilabel_config(args, given)
        out = Path(args.out) if args.out is not None else _default_out(config)
        if out.exists() and not out.is_dir():
            raise ValueError(f"out={str(out)!r} is a file; pass a folder for the run's outputs")
        data = prepare_data(config)
        folder = prepare_out(out, config=config.to_dict(), overwrite=args.overwrite,
                             resume=args.resume)
    except (TypeError, ValueError, FileNotFoundError, KeyError) as error:
        usage_error(parser, error)
    _run(config, data, folder, command, no_progress=args.no_progress)
    return 0
