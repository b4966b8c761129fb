"""Our models. Importing a model module registers it (``@register_model``)."""
from . import cenet  # noqa: F401
from . import tetfn  # noqa: F401
from . import dar  # noqa: F401
from . import derl  # noqa: F401
from . import almt  # noqa: F401
from . import lnln  # noqa: F401
