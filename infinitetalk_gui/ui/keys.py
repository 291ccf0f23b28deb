"""Where the window gets the RunPod API key: environment, OS keyring, or this session only.

Reading and writing the keyring goes through core/secrets.py (the one place for it). When the
system has no secure keyring the user may keep the key in memory for this session: it is never
written anywhere in plain text.
"""

from __future__ import annotations

from infinitetalk_gui.core import logs, secrets


class ApiKeys:
    SOURCE_ENVIRONMENT = "environment"
    SOURCE_KEYRING = "keyring"
    SOURCE_SESSION = "session"

    def __init__(self) -> None:
        self._session: str | None = None

    @staticmethod
    def keyring_available() -> bool:
        return secrets.backend_name() is not None

    def get(self) -> str | None:
        """The key to use now: RUNPOD_API_KEY, then the keyring, then the session-only key."""
        return secrets.get_key() or self._session

    def source(self) -> str | None:
        stored = secrets.key_source()
        if stored is not None:
            return stored
        return self.SOURCE_SESSION if self._session else None

    def save(self, key: str, *, session_only: bool) -> None:
        """Keep the key in the keyring, or only in memory. Raises ConfigError from the keyring."""
        key = key.strip()
        logs.register_secret(key)
        if session_only:
            self._session = key or None
            return
        secrets.set_key(key)
        self._session = None

    def forget(self) -> None:
        """Remove the key from the keyring and from this session."""
        self._session = None
        secrets.clear_key()

    def describe(self) -> str:
        """Where the current key comes from, in words for the settings dialog."""
        source = self.source()
        if source == self.SOURCE_ENVIRONMENT:
            return (
                f"Using the key from the {secrets.ENV_VAR} environment variable "
                "(it overrides any saved key)."
            )
        if source == self.SOURCE_KEYRING:
            return "A key is saved in the system keyring."
        if source == self.SOURCE_SESSION:
            return "A key is kept for this session only; it is forgotten when the app closes."
        return "No API key yet."
