"""All modules, available as ``tz.m.<Name>``.

Each family lives in its own subpackage and declares its public names in ``__all__``; this
namespace re-exports them all.
"""
from ..core.chain import Chain
from . import adaptive, clipping, control, momentum, ops, step_size, weight_decay

_FAMILIES = (clipping, adaptive, momentum, step_size, weight_decay, ops, control)

__all__ = ["Chain"]
for _family in _FAMILIES:
    for _name in _family.__all__:
        globals()[_name] = getattr(_family, _name)
        __all__.append(_name)
del _family, _name
