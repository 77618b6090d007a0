"""`python -m facediag.cli` = the facediag command (torchrun -m facediag.cli train-contrastive ...)."""
from facediag.cli import main

main()
