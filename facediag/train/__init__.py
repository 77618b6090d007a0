"""Contrastive fine-tuning validated by gallery matching."""
