"""Request parameters of the RNN Monitor routes: parsed strictly, with errors that become JSON
(400 for a bad parameter, 404 for something the log does not hold), never a traceback."""

from __future__ import annotations

import re
from typing import Any, Optional

_MAX_PARAM_LEN = 512
_INT_RE = re.compile(r"-?[0-9]{1,18}")


class RequestError(Exception):
    """A request the dashboard cannot answer; `status` is the HTTP status."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(RequestError):
    status = 400


class NotFound(RequestError):
    status = 404


def text_param(args: Any, name: str, required: bool = True) -> Optional[str]:
    value = args.get(name)
    if value is None or value == "":
        if required:
            raise BadRequest(f"missing parameter {name!r}")
        return None
    if len(value) > _MAX_PARAM_LEN or "\x00" in value:
        raise BadRequest(f"parameter {name!r} is not a valid name")
    return value


def int_param(args: Any, name: str, required: bool = True) -> Optional[int]:
    raw = args.get(name)
    if raw is None or raw == "":
        if required:
            raise BadRequest(f"missing parameter {name!r}")
        return None
    if not _INT_RE.fullmatch(raw):
        raise BadRequest(f"parameter {name!r} must be an integer of at most 18 digits")
    return int(raw)
