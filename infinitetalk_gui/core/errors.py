"""Errors that reach a user: each carries a plain-words message, never a traceback."""

from __future__ import annotations


class InfiniteTalkError(Exception):
    """Base class: ``str(error)`` is a message a user can read and act on."""


class InputError(InfiniteTalkError):
    """Bad input (a file, a flag, a setting): nothing was sent, nothing was written."""


class ConfigError(InfiniteTalkError):
    """A setting or the environment is missing or wrong (no endpoint, no API key...)."""


class AuthError(InfiniteTalkError):
    """The endpoint rejected the API key (HTTP 401/403)."""


class RemoteError(InfiniteTalkError):
    """The RunPod endpoint or the worker failed in a way retries did not fix."""


class ChunkFailed(RemoteError):
    """One chunk failed on the worker (FAILED, TIMED_OUT, expired, no output): retry it alone."""


class PayloadTooLarge(InfiniteTalkError):
    """A /run body would exceed RunPod's 10 MB limit: refused before sending."""


class FFmpegError(InfiniteTalkError):
    """ffmpeg failed; the message ends with the tail of its stderr."""


class Cancelled(InfiniteTalkError):
    """The user cancelled; raised between steps when the cancel token is set."""


class JobTimedOut(InfiniteTalkError):
    """The whole job ran past its time limit."""


class JobLocked(InfiniteTalkError):
    """Another live process holds the job's lease."""
