"""The project's own error types: every failure a person can cause maps to one of these."""


class TokenclubError(Exception):
    """Base for errors that carry a one-line, user-facing reason."""


class NotFoundError(TokenclubError):
    """A named object (partner, key, account, upload) does not exist."""


class InvalidInputError(TokenclubError):
    """An argument, field or file content is not acceptable."""


class StateError(TokenclubError):
    """The operation is not allowed in the object's current state."""


class InsufficientBalanceError(TokenclubError):
    """A debit would take a guarded ledger account below zero."""


class IdempotencyConflictError(TokenclubError):
    """An idempotency key was reused for a different posting."""


class ExtractionError(TokenclubError):
    """A file of an upload could not be read; names the file and why."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason
