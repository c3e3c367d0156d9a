"""Fake provider servers for tests: real HTTP on 127.0.0.1 (see ``server.py``)."""
