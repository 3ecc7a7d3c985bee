"""Balanced batches inside training frameworks, one small module per framework.

Each module imports its framework only when one of its functions is called, so ``import balancer``
and ``import balancer.integrations`` never need any of them:

- :mod:`balancer.integrations.lightning`: PyTorch Lightning 2.x (``Trainer(strategy="ddp")``,
  the default ``use_distributed_sampler=True``, ``ckpt_path`` resume);
- :mod:`balancer.integrations.accelerate`: Hugging Face Accelerate (``accelerator.prepare``,
  ``save_state``/``load_state``);
- :mod:`balancer.integrations.transformers`: the Hugging Face ``Trainer`` (``max_steps`` and the
  LR schedule from :meth:`~balancer.BalancedDataLoader.total_batches`, ``resume_from_checkpoint``);
- :mod:`balancer.integrations.ray`: Ray Train (``TorchTrainer``, ``prepare_data_loader``);
- :mod:`balancer.integrations.torchdata`: torchdata's ``StatefulDataLoader`` with a balanced batch
  sampler as its batch source.
"""
