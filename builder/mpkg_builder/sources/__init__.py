"""Validation of build sources: every file an author names is checked before packing.

Each checker returns a frozen dataclass or raises :class:`mpkg.errors.SourceError`
carrying every problem it found, so an author fixes everything in one pass.
"""
