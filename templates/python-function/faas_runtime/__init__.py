"""A small asyncio runtime that serves plain Python functions over HTTP (standard library only)."""

from .errors import BadRequest, HTTPError, NotFound
from .server import Runtime, discover, serve, traceparent

__all__ = ["BadRequest", "HTTPError", "NotFound", "Runtime", "discover", "serve", "traceparent"]
