"""What a config's ``_target_`` may name, checked on the object it resolves to, walked as Hydra's
``_locate`` walks it (``torch.nn.functional.torch.save`` is ``torch.save``: no module may be reached
through another's imports), and what arguments its node may give, checked against that object's
constructor (docs/configuration.md, docs/failures.md)."""

from __future__ import annotations

import collections.abc
import importlib
import inspect
import types
import typing
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, NoReturn

import torch
from omegaconf import DictConfig, ListConfig
from omegaconf.errors import OmegaConfBaseException

from mnist_pairs.config.schema import BOOL, Rule, fail, is_int, is_number, one_of

ALLOWED_PACKAGES = ("mnist_pairs", "torch.nn", "torch.optim")
ALLOWED = (
    f"a torch.nn.Module or torch.optim.Optimizer class defined in {', '.join(ALLOWED_PACKAGES)} "
    "(such as mnist_pairs.models.CNN, torch.nn.ReLU, torch.optim.Adam)"
)


class _Refused(Exception):
    """Why ``_walk`` refuses a dotted name (``_located`` adds the key)."""


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


def _located(
    key: str, name: Any, allowed: str, packages: tuple[str, ...], fits: Callable[[type], bool], unfit: str = ""
) -> type:
    """The class the dotted ``name`` (the value of ``key``) names when it lies in ``packages`` and
    ``fits``, else a ConfigError saying it is not ``allowed`` and why. Nothing outside ``packages``
    is imported."""

    def refuse(why: object) -> NoReturn:
        fail(key, name, f"{allowed}; {why}")

    if not isinstance(name, str):
        refuse("it must be a dotted name (a string)")
    if not _inside(name, packages):
        refuse(f"it is outside {', '.join(packages)}")
    try:
        obj = _walk(name)
    except ImportError:
        refuse(f"there is no {name}")
    except _Refused as why:
        refuse(why)
    if not isinstance(obj, type) or not fits(obj):
        module = getattr(obj, "__module__", None)
        qualname = getattr(obj, "__qualname__", None) or type(obj).__name__
        refuse(f"it is {type(obj).__name__} {module + '.' if module else ''}{qualname}{unfit}")
    return obj


def _inside(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every node of a plain container (as ``OmegaConf.to_container``
    gives), itself first, then what it holds, at any depth."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from walk(item, f"{path}[{i}]")


def targets(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(dotted key, node) of every node with a ``_target_`` in a resolved config (what Hydra's
    instantiate sees, in ``_args_`` and lists too), outer nodes first."""
    return ((p, n) for p, n in walk(node, path) if isinstance(n, dict) and "_target_" in n)


def check_targets(config: dict[str, Any]) -> None:
    """No string of the resolved ``config`` (keys included) holds an interpolation (Hydra's
    instantiate would resolve it a second time, past every check), every ``_target_`` names an
    allowed class, and every argument of its node fits that class's constructor. ConfigError on
    the first that does not; all targets are checked before any argument."""
    for path, node in walk(config):
        keys = [(f"{path}.{k}" if path else str(k), k) for k in node] if isinstance(node, dict) else []
        for where, text in [(path, node), *keys]:
            if isinstance(text, str) and "${" in text:
                fail(where, text, "a value without ${...}: it would be resolved a second time when the model is built")

    def fits(obj: type) -> bool:  # a Module or Optimizer class defined in ALLOWED_PACKAGES
        return issubclass(obj, (torch.nn.Module, torch.optim.Optimizer)) and _inside(obj.__module__, ALLOWED_PACKAGES)

    unfit = ", not a Module or Optimizer class defined there"
    classes = []
    for path, node in targets(config):
        key = f"{path}._target_" if path else "_target_"
        classes.append((_located(key, node["_target_"], ALLOWED, ALLOWED_PACKAGES, fits, unfit), node, path))
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
        key, rule = f"{path}.{name}", INSTANTIATE_KEYS.get(name)
        if rule is not None and not rule.test(value):
            fail(key, value, rule.allowed)
        if rule is not None or key == "model.name":
            continue
        if name not in params and not takes_any:
            takes = ", ".join(n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL)
            fail(key, value, f"{cls.__name__} takes no argument {name!r}; it takes {takes}")
        if name in params and name in hints and not _matches(value, hints[name]):
            fail(key, value, f"{_describe(hints[name])} ({cls.__name__}'s {name})")


# Hydra's own keys of a node it instantiates: what each may hold.
INSTANTIATE_KEYS = {
    "_target_": Rule(lambda v: isinstance(v, str), "a dotted class name", "str"),
    "_partial_": BOOL,
    "_recursive_": BOOL,
    "_convert_": one_of("none", "partial", "object", "all"),
    "_args_": Rule(lambda v: isinstance(v, list), "a list of positional arguments", "list"),
}


# The scalar type hints of constructors: what fits each, in words (one, several).
SCALARS: dict[Any, tuple[Any, str, str]] = {
    type(None): (lambda v: v is None, "null", "nulls"),
    bool: (lambda v: isinstance(v, bool), "true or false", "true/false values"),
    int: (is_int, "an integer", "integers"),
    float: (is_number, "a finite number", "finite numbers"),
    str: (lambda v: isinstance(v, str), "a string", "strings"),
    torch.Tensor: (lambda v: False, "a tensor", "tensors"),  # never a YAML value: another member must fit
}
SEQUENCES = (tuple, list, collections.abc.Sequence)


def _fixed_length(origin: Any, args: tuple) -> bool:
    return origin is tuple and bool(args) and args[-1] is not Ellipsis


def _matches(value: Any, hint: Any) -> bool:
    """Whether a YAML value fits a constructor's type hint (hints it cannot judge pass)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if hint in SCALARS:
        return SCALARS[hint][0](value)
    if origin in SEQUENCES:
        if not isinstance(value, list):
            return False
        if _fixed_length(origin, args):
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
    if origin in SEQUENCES:
        if _fixed_length(origin, args):
            of = _describe(args[0], plural=True) if len(set(args)) == 1 else "values"
            return f"a list of {len(args)} {of}"
        return f"a list of {_describe(args[0], plural=True)}" if args else "a list"
    if hint in SCALARS:
        return SCALARS[hint][2 if plural else 1]
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
    it composes (logging) and right after (callbacks), before any check of a run. ConfigError on
    the first that does not; nothing outside the checked names is imported."""
    for path, name, value in _hydra_leaves(hydra, "hydra"):
        logging = name in LOGGING_KEYS and path.split(".")[1] in ("job_logging", "hydra_logging")
        if name == "_target_" or logging:
            allowed, fits = (LOGGING_ALLOWED, _logging_class) if logging else (HYDRA_ALLOWED, _hydra_class)
            _located(path, value, allowed, HYDRA_PACKAGES, fits)


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


HYDRA_PACKAGES = ("hydra", "hydra_plugins", "mnist_pairs", "optuna", "logging", "colorlog")


def _hydra_class(obj: type) -> bool:
    from hydra.experimental.callback import Callback

    module = obj.__module__ or ""
    ours = module.startswith("mnist_pairs.") and issubclass(obj, Callback)
    return ours or module.split(".")[0] in ("hydra", "hydra_plugins") or module.startswith("optuna.samplers")


def _logging_class(obj: type) -> bool:
    import logging

    return issubclass(obj, (logging.Handler, logging.Formatter, logging.Filter))
