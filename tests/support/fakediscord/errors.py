"""Error answers shaped like Discord's, raised anywhere in the fake and answered by the server."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answer, shaped like Discord's: ``{"message": ..., "code": ...}``."""

    def __init__(self, status: int, message: str, code: int, errors: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {message} (code {code})")
        self.status = status
        self.body: dict[str, Any] = {"message": message, "code": code}
        if errors:
            self.body["errors"] = errors


def unknown(kind: str, code: int) -> ApiError:
    return ApiError(404, f"Unknown {kind}", code)
