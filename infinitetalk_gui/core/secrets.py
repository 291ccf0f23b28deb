"""The one place that reads and writes the API key: the OS keyring, or RUNPOD_API_KEY."""

from __future__ import annotations

import os

import keyring
import keyring.errors
from keyring.backend import KeyringBackend

from infinitetalk_gui.core.errors import ConfigError

SERVICE = "infinitetalk-gui"
USERNAME = "runpod-api-key"
ENV_VAR = "RUNPOD_API_KEY"

HOW_TO_PROVIDE = (
    "Run 'infinitetalk-gui key set' to keep it in the system keyring, or set the "
    f"{ENV_VAR} environment variable. To try the app without a key, add --demo."
)
MISSING_KEY = "No RunPod API key is set. " + HOW_TO_PROVIDE


def backend() -> KeyringBackend | None:
    """The active keyring backend, or None where there is no usable one (a bare Linux box)."""
    active = keyring.get_keyring()
    name = type(active).__module__ + "." + type(active).__name__
    if name.startswith(("keyring.backends.fail", "keyring.backends.null")):
        return None
    # A chainer with nothing under it is no keyring either.
    if name.startswith("keyring.backends.chainer") and not getattr(active, "backends", None):
        return None
    return active


def backend_name() -> str | None:
    active = backend()
    return None if active is None else type(active).__module__ + "." + type(active).__name__


def get_key() -> str | None:
    """RUNPOD_API_KEY wins; then the keyring. None when neither has one."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return env
    if backend() is None:
        return None
    try:
        return keyring.get_password(SERVICE, USERNAME) or None
    except keyring.errors.KeyringError:
        return None


def key_source() -> str | None:
    if os.environ.get(ENV_VAR, "").strip():
        return "environment"
    if backend() is not None:
        try:
            if keyring.get_password(SERVICE, USERNAME):
                return "keyring"
        except keyring.errors.KeyringError:
            return None
    return None


def set_key(key: str) -> None:
    key = key.strip()
    if not key:
        raise ConfigError("the API key is empty")
    if backend() is None:
        raise ConfigError(
            "no secure keyring is available on this system, so the key cannot be saved. "
            f"Set the {ENV_VAR} environment variable instead."
        )
    try:
        keyring.set_password(SERVICE, USERNAME, key)
    except keyring.errors.KeyringError as error:
        raise ConfigError(f"the system keyring refused to store the key: {error}") from None


def clear_key() -> bool:
    """Remove the stored key; False if there was none."""
    if backend() is None:
        return False
    try:
        keyring.delete_password(SERVICE, USERNAME)
    except keyring.errors.PasswordDeleteError:
        return False
    except keyring.errors.KeyringError as error:
        raise ConfigError(f"the system keyring refused to delete the key: {error}") from None
    return True


def require_key() -> str:
    key = get_key()
    if not key:
        raise ConfigError("No RunPod API key is set. " + HOW_TO_PROVIDE)
    return key
