"""Contrastive fine-tuning validated by gallery matching.

``from facediag.train.trainer import TrainConfig, train_contrastive``; the objectives are in
``losses``, the train/validation split and P×K batches in ``data``, validation in ``validate``.
"""
