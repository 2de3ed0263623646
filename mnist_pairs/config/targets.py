"""What a config's ``_target_`` may name, checked on the object it resolves to, not on its
spelling; and what arguments its config may give, checked against that object's constructor.

A YAML file (a model, a tuned config, an experiment preset) is shared between people, and Hydra
calls whatever its ``_target_``s name with whatever ``_args_`` they carry. A prefix test on the
string is not enough: ``torch.nn.functional.torch.save`` starts with ``torch.nn.`` and is
``torch.save``, reached through an import of ``torch.nn.functional``. So each dotted name is
walked part by part as Hydra's ``_locate`` does, every module on the way must be named by its own
name (none reached through another module's imports), and the object at the end must be a model
part or an optimizer: a ``torch.nn.Module`` or ``torch.optim.Optimizer`` class defined in
mnist_pairs, torch.nn or torch.optim. Functions are refused even there (``mnist_pairs.results.records``
has functions that write files), and nothing is imported outside these packages. Each other key
of a target's node must be an argument its constructor takes, with a value of its type hint."""

from __future__ import annotations

import collections.abc
import importlib
import inspect
import math
import types
import typing
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig
from omegaconf.errors import OmegaConfBaseException

ALLOWED_PACKAGES = ("mnist_pairs", "torch.nn", "torch.optim")
ALLOWED = (
    f"a torch.nn.Module or torch.optim.Optimizer class defined in {', '.join(ALLOWED_PACKAGES)} "
    "(such as mnist_pairs.models.CNN, torch.nn.ReLU, torch.optim.Adam)"
)


class TargetError(ValueError):
    """A ``_target_`` that names something a config may not instantiate, or an argument its
    class does not take: ``key``, ``value`` and what is ``allowed``."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        super().__init__(f"{key}={value!r}: {allowed}")
        self.key, self.value, self.allowed = key, value, allowed


class _Refused(Exception):
    """Why ``check_target`` refuses a dotted name (TargetError adds the key)."""


def _in_allowed_package(dotted: str) -> bool:
    return any(dotted == p or dotted.startswith(p + ".") for p in ALLOWED_PACKAGES)


def _walk(path: str) -> Any:
    """The object ``path`` names, resolved as Hydra's ``_locate`` does (attribute first, else a
    submodule import), refusing a module reached under a name that is not its own."""
    parts = path.split(".")
    if not all(part.isidentifier() for part in parts):
        raise _Refused("it is not a dotted Python name")
    obj: Any = importlib.import_module(parts[0])
    for i in range(1, len(parts)):
        prefix = ".".join(parts[: i + 1])
        try:
            obj = getattr(obj, parts[i])
        except AttributeError:
            if not isinstance(obj, ModuleType):
                raise _Refused(f"{'.'.join(parts[:i])} has no attribute {parts[i]!r}") from None
            try:
                obj = importlib.import_module(prefix)
            except ImportError:
                raise _Refused(f"there is no {prefix}") from None
        if isinstance(obj, ModuleType) and obj.__name__ != prefix:
            raise _Refused(f"it reaches module {obj.__name__} through an import in {'.'.join(parts[:i])}")
    return obj


def check_target(path: Any) -> type:
    """The class ``path`` names, or _Refused. Nothing outside ALLOWED_PACKAGES is imported."""
    if not isinstance(path, str):
        raise _Refused("it must be a dotted name (a string)")
    if not _in_allowed_package(path):
        raise _Refused(f"it is outside {', '.join(ALLOWED_PACKAGES)}")
    obj = _walk(path)
    if not isinstance(obj, type) or not issubclass(obj, (torch.nn.Module, torch.optim.Optimizer)):
        raise _Refused(f"it is {_describe_object(obj)}, not a Module or Optimizer class")
    if not _in_allowed_package(obj.__module__):
        raise _Refused(f"it is defined in {obj.__module__}")
    return obj


def _describe_object(obj: Any) -> str:
    name = getattr(obj, "__qualname__", None) or type(obj).__name__
    module = getattr(obj, "__module__", None)
    return f"{type(obj).__name__} {module + '.' if module else ''}{name}"


def targets(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(dotted key, node) of every node with a ``_target_`` in a resolved config (plain dicts and
    lists, as ``OmegaConf.to_container(resolve=True)`` gives: what Hydra's instantiate sees,
    interpolations such as ``${oc.create:...}`` included), at any depth, in ``_args_`` and lists
    too; outer nodes before the nodes inside them."""
    if isinstance(node, dict):
        if "_target_" in node:
            yield path, node
        for key, value in node.items():
            yield from targets(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from targets(item, f"{path}[{i}]")


def _strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(dotted key, value) of every string in a resolved config, keys included."""
    if isinstance(node, dict):
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            if isinstance(key, str):
                yield child, key
            yield from _strings(value, child)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _strings(item, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


def check_targets(config: dict[str, Any]) -> None:
    """No string of the resolved ``config`` holds an interpolation, every ``_target_`` names an
    allowed class, and every argument its node gives fits that class's constructor: a name it
    takes, a value of its type hint. TargetError on the first that does not. Everything that
    instantiates from a config (a run, ``runs.load_run``) calls this first."""
    for path, value in _strings(
        config
    ):  # Hydra's instantiate resolves what it builds: a second resolution, past every check
        if "${" in value:
            raise TargetError(
                path, value, "a value without ${...}: it would be resolved a second time when the model is built"
            )
    classes = []
    for path, node in targets(config):  # all targets first: an argument error must not hide one
        try:
            classes.append((check_target(node["_target_"]), node, path))
        except _Refused as why:
            raise TargetError(
                f"{path}._target_" if path else "_target_", node["_target_"], f"{ALLOWED}; {why}"
            ) from None
    for cls, node, path in classes:
        _check_arguments(cls, node, path)


def _check_arguments(cls: type, node: dict[str, Any], path: str) -> None:
    """The keys of a target's config against ``cls.__init__``: no argument it does not take, and
    each value of its type hint (Hydra's own keys ``_args_`` etc. and the model's ``name`` label
    aside). Ranges are left to the class (the dry run builds it)."""
    signature = inspect.signature(cls.__init__)
    params = {name: p for name, p in signature.parameters.items() if name != "self"}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # unresolvable annotations: the dry run still checks the values
        hints = {}
    for name, value in node.items():
        key = f"{path}.{name}"
        if name in INSTANTIATE_KEYS:
            allowed, fits = INSTANTIATE_KEYS[name]
            if not fits(value):
                raise TargetError(key, value, allowed)
            continue
        if key == "model.name":
            continue
        if name not in params:
            if not takes_any:
                takes = ", ".join(n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL)
                raise TargetError(key, value, f"{cls.__name__} takes no argument {name!r}; it takes {takes}")
            continue
        hint = hints.get(name)
        if hint is not None and not _matches(value, hint):
            raise TargetError(key, value, f"{_describe(hint)} ({cls.__name__}'s {name})")


# Hydra's own keys of a node it instantiates: what each may hold.
INSTANTIATE_KEYS = {
    "_target_": ("a dotted class name", lambda v: isinstance(v, str)),
    "_partial_": ("true or false", lambda v: isinstance(v, bool)),
    "_recursive_": ("true or false", lambda v: isinstance(v, bool)),
    "_convert_": ("one of none, partial, object, all", lambda v: v in ("none", "partial", "object", "all")),
    "_args_": ("a list of positional arguments", lambda v: isinstance(v, list)),
}


def _matches(value: Any, hint: Any) -> bool:
    """Whether a YAML value fits a constructor's type hint (hints it cannot judge pass)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    if hint is torch.Tensor:
        return False  # a YAML value is never a tensor: another member of the union must fit
    if origin in (tuple, list, collections.abc.Sequence):
        if not isinstance(value, list):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args))
        return not args or all(_matches(v, args[0]) for v in value)
    if (isinstance(hint, type) and issubclass(hint, torch.nn.Module)) or origin is collections.abc.Callable:
        return isinstance(value, dict) and "_target_" in value  # built from its own checked target
    return True


def _describe(hint: Any, plural: bool = False) -> str:
    """A type hint in words: ``Sequence[int] | None`` -> "a list of integers or null"."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(_describe(a, plural) for a in args if a is not torch.Tensor))
    if origin in (tuple, list, collections.abc.Sequence):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return (
                f"a list of {len(args)} {_describe(args[0], plural=True)}"
                if len(set(args)) == 1
                else f"a list of {len(args)} values"
            )
        return f"a list of {_describe(args[0], plural=True)}" if args else "a list"
    named = {
        type(None): ("null", "nulls"),
        bool: ("true or false", "true/false values"),
        int: ("an integer", "integers"),
        float: ("a finite number", "finite numbers"),
        str: ("a string", "strings"),
    }
    if hint in named:
        return named[hint][plural]
    return f"a config with a _target_ ({getattr(hint, '__name__', hint)})"


# ---- the hydra node: what Hydra instantiates itself ---------------------------------------------

HYDRA_ALLOWED = (
    "a class of Hydra or of a Hydra plugin (hydra., hydra_plugins.), a Hydra callback defined in "
    "mnist_pairs, or an Optuna sampler (optuna.samplers.)"
)
LOGGING_KEYS = ("class", "()")  # what logging.config.dictConfig imports and calls
LOGGING_ALLOWED = "a logging Handler, Formatter or Filter class"


def check_hydra_node(hydra: DictConfig) -> None:
    """Every ``_target_`` in the ``hydra`` node (callbacks, launcher, sweeper and what they nest)
    names a class of Hydra, of a Hydra plugin, a callback of ours or an Optuna sampler, and every
    ``class`` or ``()`` of the logging configs a logging class: Hydra instantiates these itself, as
    it composes (logging) and right after (callbacks), before any check of a run. TargetError on
    the first that does not; nothing outside the checked names is imported."""
    for path, name, value in _hydra_leaves(hydra, "hydra"):
        if name == "_target_":
            _check_hydra_target(path, value)
        elif name in LOGGING_KEYS and path.split(".")[1] in ("job_logging", "hydra_logging"):
            _check_logging_class(path, value)


def _hydra_leaves(node: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """(dotted key, key, value) of every leaf under ``node``, written values resolved one by one:
    an interpolation that resolves to a group of keys (``${oc.create:...}``) is walked too, and
    one that cannot be resolved yet (``${hydra.runtime.output_dir}`` before the run) is left as
    written."""
    items = node.items_ex(resolve=False) if isinstance(node, DictConfig) else enumerate(node)
    for key, _ in items:
        child_path = f"{path}.{key}" if isinstance(node, DictConfig) else f"{path}[{key}]"
        child = node._get_node(key)
        if isinstance(child, (DictConfig, ListConfig)) and not child._is_interpolation():
            if not child._is_none() and not child._is_missing():
                yield from _hydra_leaves(child, child_path)
            continue
        try:
            value = node[key]
        except OmegaConfBaseException:
            value = child._value() if child is not None else None
        if isinstance(value, (DictConfig, ListConfig)):
            yield from _hydra_leaves(value, child_path)
        else:
            yield child_path, str(key), value


def _check_hydra_target(path: str, value: Any) -> None:
    try:
        obj = _hydra_object(value)
    except _Refused as why:
        raise TargetError(path, value, f"{HYDRA_ALLOWED}; {why}") from None
    from hydra.experimental.callback import Callback

    module = getattr(obj, "__module__", "") or ""
    ours = module.startswith("mnist_pairs.") and isinstance(obj, type) and issubclass(obj, Callback)
    hydras = module.split(".")[0] in ("hydra", "hydra_plugins")
    sampler = module.startswith("optuna.samplers") and isinstance(obj, type)
    if not isinstance(obj, type) or not (ours or hydras or sampler):
        raise TargetError(path, value, f"{HYDRA_ALLOWED}; it is {_describe_object(obj)}")


def _check_logging_class(path: str, value: Any) -> None:
    import logging

    try:
        obj = _hydra_object(value)
    except _Refused as why:
        raise TargetError(path, value, f"{LOGGING_ALLOWED}; {why}") from None
    if not isinstance(obj, type) or not issubclass(obj, (logging.Handler, logging.Formatter, logging.Filter)):
        raise TargetError(path, value, f"{LOGGING_ALLOWED}; it is {_describe_object(obj)}")


def _hydra_object(value: Any) -> Any:
    """The object a dotted name of the hydra node names, walked as ``_walk`` does; only the
    packages a hydra-node name may come from are imported."""
    if not isinstance(value, str):
        raise _Refused("it must be a dotted name (a string)")
    if value.split(".")[0] not in ("hydra", "hydra_plugins", "mnist_pairs", "optuna", "logging", "colorlog"):
        raise _Refused("it is outside hydra, hydra_plugins, mnist_pairs, optuna.samplers and logging")
    try:
        return _walk(value)
    except ImportError:
        raise _Refused(f"there is no {value}") from None
