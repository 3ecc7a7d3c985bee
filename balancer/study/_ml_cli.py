"""``balancer study --multilabel``: the command line of the multi-label study.

Examples::

    balancer study --multilabel                          # semi-synthetic ChestX-ray14 (default)
    balancer study --multilabel --quick --out /tmp/ml    # seconds: one seed, two epochs
    balancer study --multilabel --data mine.npz          # arrays X (N, F) and Y (N, L)
    balancer study --multilabel --table t.csv --label-cols a,b,c --group-col patient
    balancer study --multilabel --table t.csv --label-col findings   # one '|'-joined column
    balancer study --multilabel --data yeast-train.arff.gz           # MULAN's ARFF layout

Options of the single-label study that mean nothing here (image options, losses and phases of
single-label strategies, post-hoc rows) are an error with ``--multilabel``, and the options
below are an error without it: nothing is silently ignored.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path
from typing import NoReturn

from balancer.study._ml_config import ML_QUICK, ML_STRATEGIES, MultiLabelStudyConfig

__all__ = ["add_multilabel_options", "multilabel_study", "reject_multilabel_options"]

# Single-label options that do not apply to the multi-label study, with why.
_NOT_HERE = {
    "dataset": "the multi-label study's default data is the semi-synthetic ChestX-ray14 set; "
               "pass --data or --table for your own",
    "csv": "the multi-label study trains on feature tables, not image manifests",
    "image_col": "there are no images in the multi-label study",
    "image_size": "there are no images in the multi-label study",
    "train_limit": "the semi-synthetic set's size is --synthetic-samples",
    "drw_epochs": "it belongs to the single-label ldam-drw strategy",
    "focal_gamma": "it belongs to the single-label focal strategy",
    "effective_beta": "it belongs to the single-label effective strategy",
    "drw_beta": "it belongs to the single-label ldam-drw strategy",
    "posthoc": "the multi-label study chooses per-label thresholds on validation instead",
    "ordinal": "multi-label findings are not ordered grades",
    "augment": "feature tables are not augmented",
    "drs_epochs": "it belongs to the single-label drs strategy",
    "crt_epochs": "it belongs to the single-label crt strategy",
    "posthoc_tau": "the multi-label study has no post-hoc rows",
    "balanced_posthoc_tau": "the multi-label study has no post-hoc rows",
    "threshold": "the multi-label study chooses per-label thresholds on validation",
    "tune": "the tuning mode covers the single-label strategies only",
    "tuned": "tuning records hold settings of the single-label strategies only",
    "jobs": "the multi-label study trains its runs in one process",
}
# Options that only steer the run (they mean the same with or without --multilabel).
_RUN = ("multilabel", "quick", "out", "overwrite", "resume", "no_progress")
# Options of the multi-label study only (their defaults are None, so "given" is "not None").
_ONLY_HERE = ("label_cols", "rfs_threshold", "synthetic_samples", "rarest")
# Shared options and the config field each one sets.
_SHARED = ("data", "table", "label_col", "split_col", "group_col", "strategies", "seeds",
           "epochs", "batch_size", "lr", "weight_decay", "finetune_epochs", "finetune_lr_scale",
           "finetune_freeze", "select", "width", "reference", "bootstrap", "la_tau", "device",
           "threads")


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def add_multilabel_options(parser: argparse.ArgumentParser) -> None:
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
    group.add_argument("--label-cols", type=_names, default=None, metavar="A,B,...",
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
_FIELD_FLAGS = {"samples": "--synthetic-samples"}


def as_flags(message: str, parser: argparse.ArgumentParser) -> str:
    """A config error names its field (``samples should be ..., but got samples=5``); on the
    command line it names the flag instead (``--synthetic-samples should be ..., but got
    --synthetic-samples 5``). Only fields that a flag of this parser sets are renamed."""
    flags = {action.dest: next((o for o in action.option_strings if o.startswith("--")), None)
             for action in parser._actions if action.option_strings}
    flags = {dest: flag for dest, flag in flags.items() if flag} | _FIELD_FLAGS
    names = "|".join(sorted(map(re.escape, flags), key=len, reverse=True))
    message = re.sub(rf"^({names}) should", lambda m: f"{flags[m.group(1)]} should", message)
    return re.sub(rf"(?<![\w\-'\[.])({names})=", lambda m: f"{flags[m.group(1)]} ", message)


def usage_error(parser: argparse.ArgumentParser, error: Exception) -> NoReturn:
    """Exit with ``error`` as a usage error of ``parser``, naming flags (see :func:`as_flags`)."""
    message = error.args[0] if isinstance(error, KeyError) and error.args else error
    parser.error(as_flags(str(message), parser))


def reject_multilabel_options(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
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


def build_multilabel_config(args: argparse.Namespace, given: set[str]) -> MultiLabelStudyConfig:
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
    if (args.data is not None or args.table is not None) and "samples" in settings:
        raise ValueError("--synthetic-samples sizes the default semi-synthetic set; remove it "
                         "when passing --data or --table")
    return MultiLabelStudyConfig(quick=bool(args.quick),
                                 progress=not args.no_progress and sys.stderr.isatty(),
                                 **settings)


def _default_out(config: MultiLabelStudyConfig) -> Path:
    from balancer.study._ml_data import SEMISYNTHETIC
    from balancer.study._outputs import default_out

    given = config.data or config.table
    name = Path(given).name.split(".")[0] if given else SEMISYNTHETIC
    return default_out(f"{name}-multilabel", quick=config.quick)


def multilabel_study(args: argparse.Namespace, parser: argparse.ArgumentParser,
                     command: str) -> int:
    """Run the multi-label study of ``args``: every input and folder error before training."""
    from balancer.study._multilabel import prepare_multilabel_data, run_multilabel_study
    from balancer.study._outputs import prepare_out
    from balancer.study._report import format_multilabel_table, write_outputs

    try:
        given = _given(parser, shlex.split(command)[2:])
        config = build_multilabel_config(args, given)
        out = Path(args.out) if args.out is not None else _default_out(config)
        if out.exists() and not out.is_dir():
            raise ValueError(f"out={str(out)!r} is a file; pass a folder for the run's outputs")
        data = prepare_multilabel_data(config)
        folder = prepare_out(out, config=config.to_dict(), overwrite=args.overwrite,
                             resume=args.resume)
    except (TypeError, ValueError, FileNotFoundError, KeyError) as error:
        usage_error(parser, error)
    if folder.done:
        print(f"Resuming {folder.path}: {len(folder.done)} finished run(s) kept", file=sys.stderr)
    results = run_multilabel_study(config, data, folder=folder)
    paths = write_outputs(results, config, folder.path, command=command)
    print()
    print(f"Test metrics on {results.attrs['source']}, mean ± std over seeds "
          f"{list(config.seeds)}:")
    print()
    print(format_multilabel_table(results))
    print()
    print(f"Report: {paths['report.md']}")
    print(f"Run folder: {folder.path} ({', '.join(p.name for p in paths.values())})")
    return 0
