"""``ttt_magic.widgets``: the selector panel and ask box (needs the ``widgets`` extra).

An alias of ``ttt_magic.notebook.widgets`` so users can write
``ttt_magic.widgets.panel()`` without knowing the package layout.
"""

from .notebook.widgets import *  # noqa: F403
from .notebook.widgets import ask_box, panel  # noqa: F401
