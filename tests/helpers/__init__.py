"""Shared helpers of the test suite that are not fixtures (fixtures live in ``conftest.py``).

Test modules import these by module, never from one another::

    from helpers.multilabel import check_resumes_everywhere, matrices

``tests/`` is on ``sys.path`` while pytest runs (its default "prepend" import mode puts the
directory of ``conftest.py`` and of every test module there), so ``helpers`` imports as a
top-level package without any path setting.

- ``helpers.sampler``: single-label plan checks (``check_epoch``, ``Usage``, ``global_plan``),
  index-only datasets (``Indexed``, ``NoLoad``), a custom schedule (``Alternating``), and the
  hypothesis strategies ``ADVERSARIAL_COUNTS`` and ``SEEDS``.
- ``helpers.multilabel``: the hypothesis strategy ``matrices`` of 0/1 label matrices and
  ``check_resumes_everywhere``, a resume from every position of an epoch.
- ``helpers.loss_cases``: every multi-label loss as ``fn(logits, target, reduction)``, random
  inputs, switches for the CPU kernel and the intra-op thread count, and a runner that returns
  a loss with the gradients of a first and a second backward.
- ``helpers.study``: the small, fast study settings ``FAST`` and ``usage_error``, the message
  of a command line the CLI refuses.
- ``helpers.reference_plan``: a bulk numpy build of one balanced epoch of
  ``BalancedBatchSampler``, the oracle ``test_reference_plan.py`` checks against the sampler and
  ``benchmarks/bench_sampler.py`` times the sampler against.

The private ``_*.py`` modules next to the tests (``_distributed.py``, ``_frameworks.py``,
``_resume_job.py``, ``_multilabel_ranks.py``, the ``_job_*.py`` scripts) also run in the
subprocesses of the multi-process and framework tests, whose scripts import them by name from
``tests/``; they stay there.
"""
