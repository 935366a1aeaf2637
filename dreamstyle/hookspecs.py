"""The hooks a dreamstyle plugin can implement. Built-in backbones and loss terms use them too.

A plugin is a module (or object) with functions marked ``@dreamstyle.hookimpl``, found through
the entry-point group ``dreamstyle``. An implementation may take fewer arguments than its spec.
"""

import pluggy

hookspec = pluggy.HookspecMarker("dreamstyle")
hookimpl = pluggy.HookimplMarker("dreamstyle")


@hookspec
def register_backbones(register):
    """Register backbones: call ``register(backbone)`` with a :class:`dreamstyle.Backbone` (or a family
    object with ``prefix`` and ``resolve(name)``) for each."""


@hookspec
def register_loss_terms(register):
    """Register loss terms: call ``register(term)`` with a :class:`dreamstyle.TermSpec` for each."""


@hookspec
def register_optimizers(register):
    """Register optimizers: call ``register(spec)`` with a :class:`dreamstyle.optimizers.OptimizerSpec`
    (name, description, ``build(params, lr, pixel_scale)``, default lr, whether pixels are clamped)."""


@hookspec
def register_writers(register):
    """Register output formats: call ``register(writer)`` with a :class:`dreamstyle.writers.Writer`
    (name, suffixes, kind "image" or "clip", ``write(fh, images, recipe, **options)``)."""


@hookspec
def register_commands(cli):
    """Add commands to the ``dreamstyle`` command line: ``cli`` is its click group."""
