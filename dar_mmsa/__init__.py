"""dar_mmsa: robust multimodal sentiment models (DAR, DERL-style, CENET, TETFN, ALMT, LNLN) and a
missing-modality benchmark, as a plugin for MMSA 2.2.1.

``import dar_mmsa`` registers our models with MMSA, so ``MMSA.MMSA_run('dar', 'mosi', ...)`` works.
"""
from .text_encoder import set_offline_mode

set_offline_mode()  # never let transformers retry the hub: there is none here, and real runs pass a local path

from .mmsa_hooks import register  # noqa: E402
from .registry import list_models, register_model  # noqa: E402

register()

from .inference import load_run  # noqa: E402

__version__ = "0.1.0"
__all__ = ["list_models", "load_run", "register", "register_model", "__version__"]
