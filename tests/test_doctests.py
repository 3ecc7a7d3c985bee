"""The examples in the docstrings run and give the numbers they show."""

import doctest
import pathlib

import pytest

import balancer
from balancer import (
    _labels,
    _loader,
    _multilabel_labels,
    _multilabel_sampler,
    _sampler,
    _schedule,
    datasets,
    transforms,
)
from balancer.study import _metrics, _ml_data, _ml_metrics

MODULES = [_labels, _loader, _multilabel_labels, _multilabel_sampler, _sampler, _schedule,
           datasets, transforms, _metrics, _ml_data, _ml_metrics]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_every_module_with_examples_is_listed():
    root = pathlib.Path(balancer.__file__).parent
    with_examples = {
        "balancer." + ".".join(path.relative_to(root).with_suffix("").parts)
        for path in root.rglob("*.py") if ">>>" in path.read_text(encoding="utf-8")
    }
    assert with_examples <= {module.__name__ for module in MODULES}
