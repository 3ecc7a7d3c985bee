"""Command line: ``balancer study`` (also ``python -m balancer study``).

Examples::

    balancer study                                   # the default study on shipped RetinaMNIST
    balancer study --dataset pneumoniamnist --seeds 0,1,2
    balancer study --data my_medmnist_layout.npz --strategies plain,balanced+finetune
    balancer study --csv manifest.csv --image-col path --label-col dx --group-col patient_id
    balancer study --table features.csv --label-col y     # a small MLP on numeric features
    balancer study --resume --out runs/mine          # continue an interrupted study
    balancer study --quick --out /tmp/smoke          # seconds: one seed, two short epochs
    balancer study --tune --dataset breastmnist --jobs 2   # choose key settings on validation
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

# Only the settings are imported here: the study's heavy imports (pandas, scikit-learn, tqdm,
# matplotlib) wait until a study runs, so `balancer study --help` and usage errors are quick.
from balancer.study._config import QUICK, TUNE_SEEDS, StudyConfig
from balancer.study._ml_cli import (
    add_multilabel_options,
    multilabel_study,
    reject_multilabel_options,
)
from balancer.study._strategies import POSTHOC_ROWS, SETTINGS, STRATEGIES, TUNABLE

__all__ = ["main"]

_DEFAULTS = StudyConfig(progress=False)

# Options that only mean something with one kind of data: given without it, they are an error
# rather than silently ignored.
_APPLIES = {
    "image_col": ("csv",), "image_size": ("csv",), "label_col": ("csv", "table"),
    "split_col": ("csv", "table"), "group_col": ("csv", "table"),
}


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 0,1,2, but got {text!r}") from None


def _name_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


class _Parser(argparse.ArgumentParser):
    """Usage errors print the one useful line first, then where to find the usage."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n(see '{self.prog} --help' for every "
                     f"option)\n")


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


def _study_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "study", help="compare weighting and resampling strategies on one data set",
        description="Train the same small CNN under several imbalance strategies and seeds, with "
                    "the same number of optimizer steps each; select on validation, report test "
                    "metrics (CSV, Markdown, plots, config JSON) in a run folder.",
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
                      help=f"with --csv or --table: train/val/test per row; without that column, "
                           f"a seeded 70/10/20 split per class (default: {_DEFAULTS.split_col})")
    data.add_argument("--group-col", default=None,
                      help="with --csv or --table: a group id per row (e.g. patient_id); no "
                           "group is in two splits, and the automatic split deals whole groups, "
                           "stratified by class")
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
    run.add_argument("--batch-size", type=int, default=_DEFAULTS.batch_size,
                     help="samples per optimizer step")
    run.add_argument("--lr", type=_finite, default=_DEFAULTS.lr, help="AdamW learning rate")
    run.add_argument("--weight-decay", type=_finite, default=_DEFAULTS.weight_decay,
                     help="AdamW weight decay")
    tuned = ("(default: the shipped tuned value for a shipped data set at the default budget, "
             "else {})")
    for setting in SETTINGS.values():  # every strategy's key settings, as declared
        run.add_argument(setting.flag, type=int if setting.field.endswith("_epochs") else _finite,
                         default=None, help=f"{setting.help} {tuned.format(setting.default_text())}")
    run.add_argument("--tuned", action=argparse.BooleanOptionalAction, default=True,
                     help="use the shipped tuned settings (balancer/study/tuned/<dataset>.json) "
                          "for the settings not given, where their budget is this run's")
    run.add_argument("--tune", action="store_true",
                     help="tuning mode: train every strategy's key setting on a small grid "
                          "(the same number of points and seeds for each) and choose it by "
                          "validation balanced accuracy; writes tuned.json and tune.md, reads "
                          "no test label (seeds default to 100,101)")
    run.add_argument("--jobs", type=int, default=_DEFAULTS.jobs,
                     help="train this many runs at once in parallel processes (one torch "
                          "thread each by default); the results are those of --jobs 1")
    run.add_argument("--drw-beta", type=_finite, default=_DEFAULTS.drw_beta,
                     help="ldam-drw's beta of the deferred class-balanced weights")
    run.add_argument("--finetune-freeze", action=argparse.BooleanOptionalAction,
                     default=_DEFAULTS.finetune_freeze,
                     help="freeze the backbone in balanced+finetune's fine-tune phase")
    run.add_argument("--select", choices=("best", "last"), default=_DEFAULTS.select,
                     help="last: final weights; best: highest validation balanced accuracy")
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
                     help="no progress bars (they are off anyway when stderr is not a terminal)")
    add_multilabel_options(parser)  # --multilabel and its options (balancer/study/_ml_cli.py)
    parser.set_defaults(handler=study, parser=parser)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="balancer", description="balancer command line")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                       parser_class=_Parser)
    _study_parser(subparsers)
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
               for key in ("image_col", "label_col", "split_col", "group_col", "image_size")}
    return StudyConfig(
        dataset=dataset or args.dataset, data=args.data, csv=args.csv, table=args.table,
        **columns,
        strategies=args.strategies if args.strategies is not None else tuple(STRATEGIES),
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
        finetune_freeze=args.finetune_freeze,
        drw_beta=args.drw_beta, reference=args.reference, bootstrap=args.bootstrap,
        tuned=args.tuned, jobs=args.jobs,
        ordinal=args.ordinal, posthoc=args.posthoc,
        select=args.select, augment=args.augment, width=args.width, device=args.device,
        threads=args.threads, quick=args.quick,
        # Progress bars only on a terminal: redirected to a file they are noise.
        progress=not args.no_progress and sys.stderr.isatty(), **chosen)


def _check_tune(args: argparse.Namespace, names: list[str | None],
                passed: set[str] = frozenset()) -> None:
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


def _default_out(config: StudyConfig, name: str | None = None) -> Path:
    from balancer.study._outputs import default_out

    given = config.data or config.csv or config.table
    return default_out(name or config.dataset or (Path(given).stem if given else "retinamnist"),
                       quick=config.quick)


def study(args: argparse.Namespace, parser: argparse.ArgumentParser, command: str) -> int:
    if args.multilabel:  # the multi-label study: its own settings, data and report
        return multilabel_study(args, parser, command)
    reject_multilabel_options(args, parser)
    from balancer.study._outputs import prepare_out
    from balancer.study._report import format_table, write_across, write_outputs
    from balancer.study._study import prepare_data, run_study

    names = ([n.strip() for n in args.dataset.split(",") if n.strip()]
             if args.dataset is not None and "," in args.dataset else [None])
    try:
        if len(set(names)) != len(names):
            raise ValueError(f"dataset={args.dataset!r} names a data set twice; name each once")
        if args.tune:
            from balancer.study._ml_cli import _given

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
        if args.tune:
            if out.exists() and any(out.iterdir()) and not args.overwrite:
                raise ValueError(f"out={str(out)!r} already holds files; pass --overwrite to "
                                 f"replace them or choose another --out")
            if args.overwrite and out.is_dir():
                from balancer.study._outputs import clear_previous

                clear_previous(out)  # as for a study: the folder never mixes two runs
            return _tune(first, data[names[0]], out, command)
        folders = {name: prepare_out(out if len(names) == 1 else out / name,
                                     config=config.to_dict(), overwrite=args.overwrite,
                                     resume=args.resume)
                   for name, config in configs.items()}
    except (TypeError, ValueError, FileNotFoundError, KeyError) as error:
        from balancer.study._ml_cli import usage_error

        usage_error(parser, error)
    per_dataset = {}
    for name, config in configs.items():
        folder = folders[name]
        if folder.done:
            print(f"Resuming {folder.path}: {len(folder.done)} finished run(s) kept",
                  file=sys.stderr)
        results = run_study(config, data[name], folder=folder)
        paths = write_outputs(results, config, folder.path, command=command, info=results.attrs)
        per_dataset[name or "retinamnist"] = results
        print()
        print(f"Test metrics on {results.attrs['source']}, mean ± std over seeds "
              f"{list(config.seeds)}:")
        print()
        print(format_table(results))
        print()
        print(f"Report: {paths['report.md']}")
        print(f"Run folder: {folder.path} ({', '.join(p.name for p in paths.values())})")
    if len(names) > 1:
        across = write_across(per_dataset, first, out, command=command)
        print(f"Across data sets: {across['across.md']}")
    return 0


def _tune(config: StudyConfig, data, out: Path, command: str) -> int:
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
        flags = " ".join(f"--{key.replace('_', '-')} {value}"
                         for key, value in record["settings"].items())
        print(f"Tuning record: {paths['tuned.json']}. Tuning records are read back for the "
              f"shipped data sets only; to use these settings on this data, pass {flags}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``balancer`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.handler(args, args.parser, "balancer " + shlex.join(argv))


if __name__ == "__main__":
    sys.exit(main())
