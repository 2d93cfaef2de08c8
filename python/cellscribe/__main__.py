"""``python -m cellscribe`` runs the command line."""

from .cli import main

main()
