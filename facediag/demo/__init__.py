"""``facediag demo``: synthetic identities and the story that drives train, run-all and compare.

``faces`` draws the identities, ``contact_sheet`` shows them at HR and low resolution,
``story`` runs the six steps (``run_demo``).
"""
