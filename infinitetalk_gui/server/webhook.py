"""``webhook_url``: POST the final job JSON when a job ends, retried with backoff."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import uuid
from typing import Any
from urllib.parse import urlsplit

import requests

from infinitetalk_gui import __version__
from infinitetalk_gui.core.runpod import retry_after_seconds

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-InfiniteTalk-Signature"
MAX_DELAY_S = 60.0


def check_url(url: str) -> str | None:
    """Why this is not a usable webhook URL, or None when it is."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "webhook_url must be an http:// or https:// URL"
    return None


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def deliver(
    url: str,
    payload: dict[str, Any],
    *,
    attempts: int,
    backoff_s: float,
    secret: str | None = None,
    stop: threading.Event | None = None,
    timeout_s: float = 10.0,
) -> tuple[bool, str]:
    """POST ``payload``; 2xx is delivered. 5xx, 408, 429 and connection trouble are retried
    (exponential backoff, honouring Retry-After); other answers are final.
    Returns (delivered, what happened last)."""
    body = json.dumps(payload).encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"infinitetalk-gui/{__version__}",
        "X-InfiniteTalk-Event": "job.finished",
        "X-InfiniteTalk-Delivery": uuid.uuid4().hex,
    }
    if secret:
        headers[SIGNATURE_HEADER] = sign(body, secret)
    # Only the host goes to the log: a webhook URL often carries a token in its query.
    where = urlsplit(url).hostname or "?"
    outcome = "not tried"
    with requests.Session() as session:
        for attempt in range(1, attempts + 1):
            retry_after = None
            try:
                response = session.post(
                    url, data=body, headers=headers, timeout=(5.0, timeout_s), allow_redirects=False
                )
                response.close()
            except requests.RequestException as error:
                outcome = f"{type(error).__name__} (no answer)"
            else:
                code = response.status_code
                if 200 <= code < 300:
                    log.info("webhook to %s delivered (HTTP %d, attempt %d)", where, code, attempt)
                    return True, f"HTTP {code}"
                outcome = f"HTTP {code}"
                if code < 500 and code not in (408, 429):
                    log.warning("webhook to %s refused with %s: not retried", where, outcome)
                    return False, outcome
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            if attempt == attempts:
                break
            delay = min(MAX_DELAY_S, backoff_s * 2 ** (attempt - 1))
            if retry_after is not None:
                delay = min(MAX_DELAY_S, max(delay, retry_after))
            log.warning(
                "webhook to %s: %s; retry %d of %d in %.1f s",
                where,
                outcome,
                attempt,
                attempts - 1,
                delay,
            )
            if stop is not None and stop.wait(delay):
                return False, f"{outcome}; stopped by shutdown"
            if stop is None:
                threading.Event().wait(delay)
    log.warning("webhook to %s failed after %d attempts: %s", where, attempts, outcome)
    return False, outcome
