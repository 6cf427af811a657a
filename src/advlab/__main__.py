"""``python -m advlab ...``: the command line (what ``torchrun -m advlab`` starts in every process)."""
import sys

from .cli import main

sys.exit(main())
