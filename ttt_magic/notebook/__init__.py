"""The notebook layer: magics, streamed rendering, interpolation, widgets.

It uses the public API (``ttt_magic.api``) and nothing below it.
"""
