"""Service logs on stderr, one JSON object a line (LOG_FORMAT=json) or plain text."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from infinitetalk_gui.core.logs import RedactSecrets

LOGGERS = ("infinitetalk_gui", "uvicorn")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            data.update(fields)
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def configure_logging(
    log_format: str, level: str, secrets: tuple[str | None, ...] = ()
) -> Callable[[], None]:
    """Add a stderr handler to our and uvicorn's loggers; returns a function removing it."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    redact = RedactSecrets()
    redact.secrets.update(s for s in secrets if s)
    handler.addFilter(redact)
    previous: list[tuple[logging.Logger, int, bool]] = []
    for name in LOGGERS:
        logger = logging.getLogger(name)
        previous.append((logger, logger.level, logger.propagate))
        logger.addHandler(handler)
        logger.setLevel(level.upper())
    # uvicorn logs through its own handler-less loggers: keep them from reaching the root too.
    logging.getLogger("uvicorn").propagate = False

    def undo() -> None:
        for logger, old_level, old_propagate in previous:
            logger.removeHandler(handler)
            logger.setLevel(old_level)
            logger.propagate = old_propagate

    return undo
