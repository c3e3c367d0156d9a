"""``python -m ttt_magic``: see ``ttt_magic.cli``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
