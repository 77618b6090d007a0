"""The monitor inside other people's trainers: one module per trainer, each an optional extra
(``facediag.integrations.lightning``: ``pip install 'facediag[lightning]'``)."""
