"""The plugin host: one pluggy manager, built-ins first, then entry points of group ``dreamstyle``.

The host owns the registrar: each hook implementation gets a ``register`` callback bound to its
plugin, so every backbone and loss term records who supplied it, and a name registered twice is
refused with an error naming both plugins. A broken plugin (import error, misspelled hook,
failing hook, duplicate name) is left out with one recorded error; everything else keeps working.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import threading
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from .errors import DuplicateNameError, Interrupted, PluginError, UnknownNameError

ENTRY_POINT_GROUP = "dreamstyle"
DISABLE_ENV = "DREAMSTYLE_DISABLE_PLUGIN_AUTOLOAD"
DEFAULT_PLUGINS = (
    "dreamstyle.default_plugins.backbones",
    "dreamstyle.default_plugins.losses",
    "dreamstyle.default_plugins.optimizers",
    "dreamstyle.default_plugins.writers",
)
SLOW_SECONDS = 3.0  # a plugin still loading (or in a hook) after this long is named: it may hang
log = logging.getLogger(__name__)  # unconfigured (the command line): its warnings go to stderr as they are


def autoload_disabled() -> bool:
    """DREAMSTYLE_DISABLE_PLUGIN_AUTOLOAD: 1, true or yes disable entry-point plugins; unset, empty,
    0, false or no do not."""
    return os.environ.get(DISABLE_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


# hook -> (what it registers, where to list them)
REGISTRIES = {
    "register_backbones": ("backbone", "list them with: dreamstyle backbones"),
    "register_loss_terms": ("loss term", "list them with: dreamstyle losses"),
    "register_optimizers": ("optimizer", "list them with: dreamstyle plugins"),
    "register_writers": ("output format", "list them with: dreamstyle plugins"),
}


@dataclass
class PluginInfo:
    name: str
    builtin: bool
    version: str | None = None
    distribution: str | None = None
    hooks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what went wrong in its hooks (it stays loaded)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "hooks": self.hooks,
            "builtin": self.builtin,
            "version": self.version,
            "distribution": self.distribution,
            "problems": self.problems,
        }


class Registry:
    """Name -> entry, with the plugin that supplied each. Duplicates are refused; so is an entry its
    kind's check refuses (``validate(entry)`` raises ValueError saying why)."""

    def __init__(self, kind: str, list_hint: str, validate=None):
        self.kind, self.list_hint, self.validate = kind, list_hint, validate
        self.entries: dict[str, Any] = {}
        self.owner: dict[str, str] = {}
        self.families: list[Any] = []  # objects with .prefix and .resolve(name)

    def add(self, entry: Any, plugin: str) -> None:
        name = getattr(entry, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {plugin!r} registered a {self.kind} without a name")
        if name in self.entries:
            raise DuplicateNameError(
                f"{self.kind} {name!r} is registered by both {self.owner[name]!r} and {plugin!r}; "
                f"{plugin!r}'s is ignored"
            )
        if self.validate is not None:
            try:
                self.validate(entry)
            except Exception as exc:  # noqa: BLE001 - whatever the check finds, the entry is left out
                raise PluginError(f"{self.kind} {name!r} of plugin {plugin!r} left out: {exc}") from None
        try:
            entry.plugin = plugin
        except AttributeError:
            pass
        self.entries[name] = entry
        self.owner[name] = plugin
        if hasattr(entry, "prefix") and hasattr(entry, "resolve"):
            self.families.append(entry)

    def get(self, name: str, claims: bool = True) -> Any:
        """The entry ``name``, or a family's member by its prefix; with ``claims``, also a member a family
        claims without its prefix (your own network's file: the web page leaves those out)."""
        entry = self.entries.get(name)
        if entry is not None and not hasattr(entry, "resolve"):
            return entry
        for family in self.families:
            if name.startswith(family.prefix) and len(name) > len(family.prefix):
                return self._resolved(family, name)
        for family in self.families if claims else ():  # a family may claim names without its prefix (a file)
            if hasattr(family, "claims") and family.claims(name):
                return self._resolved(family, name)
        raise UnknownNameError(self.kind, name, self.names(), hint=self.list_hint)

    def _resolved(self, family, name: str) -> Any:
        resolved = family.resolve(name)
        resolved.plugin = self.owner[family.name]
        return resolved

    def names(self) -> list[str]:
        return list(self.entries)

    def __contains__(self, name: str) -> bool:
        try:
            self.get(name)
        except UnknownNameError:
            return False
        return True


class PluginHost:
    def __init__(self, load_entry_points: bool | None = None):
        self.pm = pluggy.PluginManager("dreamstyle")
        self.pm.add_hookspecs(hookspecs)
        self.errors: list[str] = []
        self.infos: dict[str, PluginInfo] = {}
        self._registries: dict[str, Registry] = {}
        for module_name in DEFAULT_PLUGINS:
            self.register(importlib.import_module(module_name), name=module_name, builtin=True)
        if load_entry_points is None:
            load_entry_points = not autoload_disabled()
        if load_entry_points:
            self._load_entry_points()
        # Collect now (cheap: describing builds no model and imports no torch), so that errors
        # found while registering (a duplicate name, a failing hook) are in ``errors`` as soon as
        # the host exists, like load errors, and the command line names the plugin at once.
        for hook in REGISTRIES:
            self.registry(hook)

    # --- loading -----------------------------------------------------------------
    def register(
        self,
        plugin: Any,
        name: str | None = None,
        builtin: bool = False,
        version: str | None = None,
        distribution: str | None = None,
    ) -> bool:
        """Register one plugin; a plugin that does not validate is refused with an error."""
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:  # pluggy.PluginValidationError, ValueError (already registered)
            self.errors.append(f"plugin {name!r} not loaded: {one_line(exc)}")
            return False
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self.pm.unregister(plugin)
            self.errors.append(f"plugin {name!r} not loaded: {one_line(exc)}")
            return False
        hooks = sorted(impl.name for impl in self.pm.get_hookcallers(plugin) or [])
        self.infos[name] = PluginInfo(name, builtin, version, distribution, hooks)
        self._registries.clear()
        return True

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self.infos.pop(name, None)
        self._registries.clear()

    def _load_entry_points(self) -> None:
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            package = f"{dist.name} {dist.version}" if getattr(dist, "name", None) else ""
            what = f"plugin {ep.name!r} ({getattr(ep, 'value', '?')}" + (f", from {package})" if package else ")")
            try:
                with named_if_slow(what, f"uninstall {dist.name}" if package else "uninstall it"):
                    plugin = ep.load()
            except BaseException as exc:  # a plugin's import may even exit or be interrupted
                self.errors.append(f"plugin {ep.name!r} not loaded: {describe_failure(exc)}")
                if isinstance(exc, KeyboardInterrupt):
                    raise Interrupted(f"interrupted while {what} loaded; nothing was written") from None
                continue
            self.register(
                plugin,
                name=ep.name,
                builtin=False,
                version=getattr(dist, "version", None),
                distribution=getattr(dist, "name", None),
            )

    # --- collecting ----------------------------------------------------------------
    def _collect(self, hook_name: str, registry: Registry) -> Registry:
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():

            def register(entry, _plugin=impl.plugin_name):
                try:
                    registry.add(entry, _plugin)
                except PluginError as exc:
                    self._error(str(exc), _plugin)

            try:
                with self._watched(impl.plugin_name, hook_name):
                    impl.function(*[register for _ in impl.argnames])
            except BaseException as exc:
                self._error(
                    f"plugin {impl.plugin_name!r} failed in {hook_name}: {describe_failure(exc)}", impl.plugin_name
                )
                if isinstance(exc, KeyboardInterrupt):
                    raise
        return registry

    def _watched(self, plugin: str, hook_name: str):
        """A plugin's hook, named if it takes long (built-ins are not watched)."""
        info = self.infos.get(plugin)
        if info is None or info.builtin:
            return contextlib.nullcontext()
        return named_if_slow(f"plugin {plugin!r} in {hook_name}", f"uninstall {info.distribution or 'it'}")

    def _error(self, message: str, plugin: str | None = None) -> None:
        if message not in self.errors:  # registries are collected again after a register()
            self.errors.append(message)
        info = self.infos.get(plugin) if plugin else None
        if info is not None and message not in info.problems:
            info.problems.append(message)

    def registry(self, hook_name: str) -> Registry:
        """What the plugins registered through ``hook_name`` (collected once, again after a register)."""
        if hook_name not in self._registries:
            kind, hint = REGISTRIES[hook_name]
            self._registries[hook_name] = self._collect(hook_name, Registry(kind, hint, VALIDATORS.get(hook_name)))
        return self._registries[hook_name]

    @property
    def backbones(self) -> Registry:
        return self.registry("register_backbones")

    @property
    def loss_terms(self) -> Registry:
        return self.registry("register_loss_terms")

    @property
    def optimizers(self) -> Registry:
        return self.registry("register_optimizers")

    @property
    def writers(self) -> Registry:
        return self.registry("register_writers")

    def plugins(self) -> list[PluginInfo]:
        return list(self.infos.values())


def call_guarded(host: PluginHost, hook_name: str, **kwargs) -> None:
    """Call every implementation of ``hook_name`` on its own: one that raises (or exits) costs one
    recorded error naming its plugin, and the others still run."""
    for impl in getattr(host.pm.hook, hook_name).get_hookimpls():
        try:
            with host._watched(impl.plugin_name, hook_name):
                impl.function(**{name: kwargs[name] for name in impl.argnames})
        except BaseException as exc:
            host._error(f"plugin {impl.plugin_name!r} failed in {hook_name}: {describe_failure(exc)}", impl.plugin_name)
            if isinstance(exc, KeyboardInterrupt):
                raise


@contextlib.contextmanager
def named_if_slow(what: str, remedy: str):
    """While the block runs: after :data:`SLOW_SECONDS`, one warning (logger ``dreamstyle.plugins``)
    naming ``what`` is still loading and what to do if it hangs (a plugin that hangs at import would
    otherwise hang every command in silence, ``dreamstyle backbones`` too)."""
    line = (
        f"dreamstyle: still loading {what} after {SLOW_SECONDS:g} s; if it hangs, press Ctrl-C and "
        f"{remedy} (or set {DISABLE_ENV}=1)"
    )
    timer = threading.Timer(SLOW_SECONDS, log.warning, [line])
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def describe_failure(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r})"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C) while it loaded"
    return f"{type(exc).__name__}: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def one_line(exc: BaseException) -> str:
    """The whole message on one line (pluggy explains a bad hook over several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


# --- what a registration must be ------------------------------------------------------------------


def check_backbone(entry) -> None:
    if hasattr(entry, "resolve"):  # a family: its members are checked as they are resolved
        return
    layers = entry.layer_map  # repeated names, channels, strides: ValueError saying which
    for role in ("content", "style", "dream"):
        for name in getattr(entry, f"{role}_layers", ()):
            if name not in layers:
                raise ValueError(f"its default {role} layer {name!r} is not in its layer map")
    if not tuple(getattr(entry, "poolings", ())):
        raise ValueError("it offers no pooling")


def check_term(entry) -> None:
    if not callable(getattr(entry, "build", None)):
        raise ValueError("its build is not callable")
    w = getattr(entry, "default_weight", None)
    if not isinstance(w, (int, float)) or w != w or w in (float("inf"), float("-inf")):
        raise ValueError(f"its default weight {w!r} is not a finite number")


def check_optimizer(entry) -> None:
    if not callable(getattr(entry, "build", None)):
        raise ValueError("its build is not callable")
    lr = getattr(entry, "default_lr", None)
    if not isinstance(lr, (int, float)) or not 0 < lr < float("inf"):
        raise ValueError(f"its default learning rate {lr!r} is not a finite number above 0")


def check_writer(entry) -> None:
    if getattr(entry, "kind", None) not in ("image", "clip", "video"):
        raise ValueError(f"its kind {getattr(entry, 'kind', None)!r} is not 'image', 'clip' or 'video'")
    suffixes = tuple(getattr(entry, "suffixes", ()))
    if not suffixes or not all(isinstance(x, str) and x.startswith(".") and x == x.lower() for x in suffixes):
        raise ValueError(f"its suffixes {suffixes!r} are not lower-case endings with a dot, like '.png'")
    if not callable(getattr(entry, "write", None)):
        raise ValueError("its write is not callable")


VALIDATORS = {
    "register_backbones": check_backbone,
    "register_loss_terms": check_term,
    "register_optimizers": check_optimizer,
    "register_writers": check_writer,
}


_host: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide plugin host, loaded on first use."""
    global _host
    if _host is None:
        _host = PluginHost()
    return _host


def reset_host(host: PluginHost | None = None) -> None:
    """Drop (or replace) the process-wide host; the next ``get_host`` reloads plugins."""
    global _host
    _host = host


def get_backbone(name: str):
    return get_host().backbones.get(name)


def get_loss_term(name: str):
    return get_host().loss_terms.get(name)
