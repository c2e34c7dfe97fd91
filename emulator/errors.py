"""Service errors, raised by state machines and answered by the wire layer in the protocol's own shape."""


class ApiError(Exception):
    """An AWS error: `code` becomes `__type` in JSON 1.1 responses."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def validation_error(message: str) -> ApiError:
    return ApiError("ValidationException", message)


def not_found(message: str) -> ApiError:
    return ApiError("ResourceNotFound", message)


def in_use(message: str) -> ApiError:
    return ApiError("ResourceInUse", message)


class PassThrough(Exception):
    """Raised by one of our handlers for a request that belongs to moto (e.g. tags on a non-labeling-job ARN)."""
