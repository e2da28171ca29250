"""Your functions. Each public function here is served as ``POST /functions/<name>``.

The JSON object in the request body becomes the keyword arguments; the return value is the JSON
response. Annotated arguments are checked, so a wrong type is a 400 for the caller, not a crash.
Raise ``BadRequest`` for input you refuse; any other exception is a 500, with its traceback in the
log and never in the response. A class with a ``handle`` method is served too, under its name in
snake_case, and is created once, so it can hold clients or caches.
"""

from faas_runtime import BadRequest


def add(a: float, b: float) -> float:
    """The sum of a and b."""
    return a + b


def subtract(a: float, b: float) -> float:
    """a minus b."""
    return a - b


def multiply(a: float, b: float) -> float:
    """The product of a and b."""
    return a * b


def divide(a: float, b: float) -> float:
    """a divided by b."""
    if b == 0:
        raise BadRequest("cannot divide by zero")
    return a / b


class Evaluate:
    """Applies a list of operations in turn: {"start": 1, "ops": [["add", 2], ["multiply", 3]]}."""

    OPS = {"add": add, "subtract": subtract, "multiply": multiply, "divide": divide}

    def handle(self, start: float, ops: list) -> float:
        value = start
        for op in ops:
            if not (isinstance(op, list) and len(op) == 2 and op[0] in self.OPS):
                raise BadRequest(f"each op is [name, number] with name one of {sorted(self.OPS)}")
            value = self.OPS[op[0]](value, op[1])
        return value
