"""`mpkg init DIR --from SOURCE`: a complete package source from what users already have.

One module per source kind turns the source into a :class:`~.draft.Draft`: an ONNX file
(:mod:`.from_onnx`), a safetensors file (:mod:`.from_safetensors`), an MLflow model folder
(:mod:`.from_mlflow`) or a Hugging Face-style folder (:mod:`.from_hf`). :mod:`.stage`
writes the draft, proves it with the build's own checks and a real run of the model, and
commits it without overwriting anything.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mpkg.errors import SourceError

if TYPE_CHECKING:  # loaded when init runs, not when the `init` command is registered
    from .draft import Draft
    from .options import InitOptions
    from .stage import InitResult


def draft_for(source: Path, options: InitOptions) -> Draft:
    """The draft for ``source``, by what it is."""
    from .from_hf import draft_from_hf, is_hf_folder
    from .from_onnx import draft_from_onnx
    from .from_safetensors import draft_from_safetensors

    try:
        mode = source.stat().st_mode
    except OSError as exc:
        raise SourceError(f"cannot be read ({exc.strerror})", str(source)) from None
    if stat.S_ISDIR(mode):
        if (source / "MLmodel").is_file():
            from .from_mlflow import draft_from_mlflow  # reads MLflow's files; never imports mlflow

            return draft_from_mlflow(source, options)
        if is_hf_folder(source):
            return draft_from_hf(source, options)
        if (source / "config.json").is_file():
            raise SourceError(
                "has config.json but no *.safetensors weights; pickle checkpoints (pytorch_model.bin, *.pt) are "
                "never loaded: save the model with safetensors (save_pretrained(..., safe_serialization=True))",
                str(source),
            )
        raise SourceError(
            "is a folder with neither an MLmodel file (an MLflow model) nor config.json and *.safetensors "
            "(a Hugging Face-style folder)",
            str(source),
        )
    if not stat.S_ISREG(mode):
        raise SourceError("is not a regular file or folder", str(source))
    if source.suffix == ".onnx":
        return draft_from_onnx(source, options)
    if source.suffix == ".safetensors":
        return draft_from_safetensors(source, options)
    raise SourceError(
        "is not a source init knows: give an .onnx file, a .safetensors file, an MLflow model folder "
        "or a Hugging Face-style folder",
        str(source),
    )


def init_source(dest: str | Path, source: str | Path, options: InitOptions | None = None) -> InitResult:
    """Write a source folder at ``dest`` that `mpkg build` builds as it is."""
    from .options import InitOptions
    from .stage import write_source

    draft = draft_for(Path(source), options or InitOptions())
    return write_source(Path(dest), draft)


def __getattr__(name: str) -> Any:
    """InitOptions and InitResult, loaded on first use."""
    if name == "InitOptions":
        from .options import InitOptions

        return InitOptions
    if name == "InitResult":
        from .stage import InitResult

        return InitResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["InitOptions", "InitResult", "draft_for", "init_source"]
