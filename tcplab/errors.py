"""Exceptions that carry the CLI exit code (click/httpie habit: one handler at the top)."""

from __future__ import annotations

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_INPUT = 2  # bad input or usage: nothing was set up
EXIT_ERROR = 3  # the lab could not judge (not root, missing feature, hook died)


class TcplabError(Exception):
    exit_code = EXIT_ERROR


class ScenarioError(TcplabError):
    """A scenario file is wrong. Rendered as one line: file:line: key: message."""

    exit_code = EXIT_INPUT

    def __init__(self, path: str, line: int | None, key: str, message: str):
        self.path, self.line, self.key, self.message = path, line, key, message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"

    def to_json(self) -> dict:
        return {"path": self.path, "line": self.line, "key": self.key, "message": self.message}


class ScenarioErrors(ScenarioError):
    """Every mistake found in one file, by line (those on one line in the order the
    loader met them). It reads as the first (one line for `run`, as before); `validate`
    lists them all."""

    def __init__(self, errors: list[ScenarioError]):
        self.errors = sorted(errors, key=lambda e: e.line or 0)
        first = self.errors[0]
        super().__init__(first.path, first.line, first.key, first.message)


class LabError(TcplabError):
    """The lab cannot judge: missing privilege or kernel feature, a dead hook, ..."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, fix: str | None = None):
        self.message, self.fix = message, fix
        super().__init__(message + (f" (fix: {fix})" if fix else ""))
