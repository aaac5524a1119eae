"""mpkg builder: validate sources, write and sign packages, diff them, ship them.

Depends on the runtime (:mod:`mpkg`) for the format; the runtime never imports this.
"""

from __future__ import annotations

from mpkg import __version__

__all__ = ["__version__"]
