"""Backends: ``BaseBackend`` and the built-in wire-protocol implementations.

Importing this package imports no HTTP client: the provider modules are loaded
by the registry only when a backend is first used.
"""

from ..errors import ProviderError
from ..models import AIResponse, StreamEnd
from .base import BaseBackend

__all__ = ["AIResponse", "BaseBackend", "ProviderError", "StreamEnd"]
