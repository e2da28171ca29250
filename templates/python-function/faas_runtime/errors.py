"""Errors a function may raise to answer with a 4xx status."""


class HTTPError(Exception):
    """An error with an HTTP status and a message shown to the caller."""

    status = 500
    code = "error"

    def __init__(self, message, status=None, code=None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code


class BadRequest(HTTPError):
    """The caller's input is refused: 400."""

    status = 400
    code = "bad_request"


class NotFound(HTTPError):
    """The thing asked for does not exist: 404."""

    status = 404
    code = "not_found"
