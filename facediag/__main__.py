"""`python -m facediag` = the facediag command."""
from facediag.cli import main

main()
