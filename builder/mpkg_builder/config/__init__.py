"""The build source description, ``mpkg.toml``: parsed strictly, every problem at once.

Unknown keys are refused rather than ignored, because a misspelt key silently ignored
is a package built without what its author asked for. :mod:`.schema` says what the file
may hold, :mod:`.tables` reads one table, :mod:`.load` checks the whole file and the files
it names, :mod:`.code_files` lists the code folder.
"""

from __future__ import annotations

from .code_files import list_code_files
from .load import load_config
from .schema import (
    CONFIG_NAME,
    CodeSection,
    DataRef,
    ExampleSection,
    LineageSection,
    ModelSection,
    PackageSection,
    SourceConfig,
)

__all__ = [
    "CONFIG_NAME",
    "CodeSection",
    "DataRef",
    "ExampleSection",
    "LineageSection",
    "ModelSection",
    "PackageSection",
    "SourceConfig",
    "list_code_files",
    "load_config",
]
