"""The loading bars and warnings of diffusers, transformers, huggingface_hub and accelerate.

A terminal render (``animabot render``) shows its own two bars and one summary line; the libraries'
own bars and warnings would break them, so :func:`quiet_libraries` hides them unless asked for.
"""

from __future__ import annotations

import logging
import os

LIBRARY_LOGGERS = ("diffusers", "transformers", "huggingface_hub", "accelerate")


def quiet_libraries(verbose: bool) -> None:
    """Hide the libraries' own progress bars and warnings unless ``verbose``."""
    if verbose:
        return
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging

    for library in (diffusers_logging, transformers_logging):
        library.set_verbosity_error()
        library.disable_progress_bar()
