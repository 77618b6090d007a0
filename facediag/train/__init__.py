"""Contrastive fine-tuning validated by gallery matching.

``from facediag.train.trainer import TrainConfig, train_contrastive``: ``trainer`` is the public
entry and ``loop`` the run; the run uses ``config`` (settings and output paths), ``data`` (the
split and P×K batches), ``model`` (model, optimiser, LR schedule), ``losses`` (objectives),
``validate`` (a facediag.Monitor per held-out set, read into rows), ``history`` (rows, report
files), ``display`` (the epoch table) and ``resume`` (the saved state, RNGs); the torchrun
environment is ``facediag.distributed``, shared with run-all and compare. Imports point one way: trainer →
loop → the others; none of them imports loop or trainer.
"""
