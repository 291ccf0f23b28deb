"""Rotating log file in the platformdirs log dir; the API key never reaches it."""

from __future__ import annotations

import logging
import logging.handlers
import re
from pathlib import Path

from infinitetalk_gui.core import paths

_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._\-]+", re.IGNORECASE)


class RedactSecrets(logging.Filter):
    """Blank out bearer tokens and any registered secret in every record."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _BEARER.sub(r"\1***", message)
        for secret in self.secrets:
            if secret:
                redacted = redacted.replace(secret, "***")
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_redactor = RedactSecrets()


def register_secret(secret: str | None) -> None:
    """Make sure this value is never written to a log."""
    if secret:
        _redactor.secrets.add(secret)


def setup_logging(level: int = logging.INFO, log_file: Path | None = None) -> Path:
    """Send the app's logs to a rotating file (5 x 2 MB). Idempotent."""
    target = log_file or paths.log_file()
    root = logging.getLogger("infinitetalk_gui")
    root.setLevel(level)
    for handler in list(root.handlers):
        if isinstance(handler, logging.handlers.RotatingFileHandler):
            if Path(handler.baseFilename) == target.resolve():
                return target
            # The log folder moved (tests, a changed XDG_STATE_HOME): one file at a time.
            root.removeHandler(handler)
            handler.close()
    handler = logging.handlers.RotatingFileHandler(
        target, maxBytes=2_000_000, backupCount=5, encoding="utf-8", delay=True
    )
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s")
    )
    handler.addFilter(_redactor)
    root.addHandler(handler)
    return target
