"""The built-in backbones, registered like any plugin's."""

from ..backbones.graph import TimmFamily, builtin_graph
from ..backbones.ownfamily import OwnFamily
from ..backbones.vgg import builtin_sequential
from ..hookspecs import hookimpl


@hookimpl
def register_backbones(register):
    for backbone in builtin_sequential() + builtin_graph():
        register(backbone)
    register(TimmFamily())
    register(OwnFamily())  # --backbone FILE or MODULE:CALLABLE: your own network
