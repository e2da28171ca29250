"""Functions the runtime's tests call."""

import asyncio

from faas_runtime import BadRequest


def add(a: float, b: float) -> float:
    return a + b


def greet(name: str, greeting: str = "hello") -> str:
    return f"{greeting}, {name}"


def explode():
    secret = "do-not-leak"
    raise RuntimeError(f"boom with {secret}")


def refuse(reason: str):
    raise BadRequest(reason)


def unserializable():
    return object()


def echo(value):
    return value


async def slow_double(x: int) -> int:
    await asyncio.sleep(0)
    return x * 2


class Counter:
    def __init__(self):
        self.count = 0

    def handle(self, step: int = 1) -> int:
        self.count += step
        return self.count


def _private():
    return "hidden"


def whose_trace():
    """The traceparent this call is served in."""
    from faas_runtime import traceparent

    return traceparent()
