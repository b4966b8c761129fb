"""dar_mmsa: robust multimodal sentiment models (DAR, DERL-style, CENET, TETFN, ALMT, LNLN) and a
missing-modality benchmark, as a plugin for MMSA 2.2.1.

``import dar_mmsa`` registers our models with MMSA, so ``MMSA.MMSA_run('dar', 'mosi')`` works, and
changes nothing else: no environment variable, and MMSA's own models run as in stock MMSA.
"""
from .mmsa_hooks import register
from .registry import list_models, register_model

register()

from .inference import load_run  # noqa: E402

__version__ = "0.1.0"
__all__ = ["list_models", "load_run", "register", "register_model", "__version__"]
