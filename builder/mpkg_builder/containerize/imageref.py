"""Image references (``-t``, ``--base``, `mpkg deploy --image`): the registry's grammar, reused.

An image reference is an OCI distribution reference, which `registry.refs` already parses for
packages; checking images with a second copy of that grammar let the two drift apart.
"""

from __future__ import annotations

from mpkg._internal.registry.refs import parse_ref
from mpkg.errors import UsageError

MAX_LENGTH = 255  # Docker refuses longer references


def is_image_reference(text: str, *, digest: bool = True) -> bool:
    """``NAME[:TAG]`` (and ``@sha256:DIGEST`` when ``digest``), as Docker and podman accept it."""
    if len(text) > MAX_LENGTH:
        return False
    try:
        parse_ref(text, allow_digest=digest)
    except UsageError:
        return False
    return True


def check_image_reference(text: str, option: str, example: str, *, digest: bool = True) -> None:
    """Refuse a malformed reference, naming the option and the shape it takes."""
    if not is_image_reference(text, digest=digest):
        raise UsageError(f"{option} {text!r} is not an image reference; use {example}")


__all__ = ["MAX_LENGTH", "check_image_reference", "is_image_reference"]
