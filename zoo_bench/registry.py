"""One registry mechanism for everything that arrives by name: predictors, tasks, importers,
architecture families and datasets.

Each kind has one `Registry`: names registered in code (a decorator or `register`), built-ins
loaded on first use, and plug-ins found through the kind's entry-point group. Every lookup of an
unknown name fails the same way: a did-you-mean and the list of known names. Entry points are
imported once (on the first lookup; `refresh=True` re-reads them after installing a package);
one that fails to import is recorded with its error instead of breaking the others; when the
module it lacks belongs to an optional extra of its distribution (`nfn` for the NFN baselines),
the entry carries the install command instead (`pip install 'zoo-bench[nfn]'`), so what does not
need that extra keeps working and what does says how to get it.

Entry-point groups (declare them in a plug-in's pyproject.toml):
    zoo_bench.predictors   name = "pkg.module:PredictorSubclass"
    zoo_bench.tasks        name = "pkg.module:TaskSubclass"          (a zoo_bench.tasks.Task)
    zoo_bench.importers    name = "pkg.module:import_function"       (source, out, **options)
    zoo_bench.families     name = "pkg.module:sample_function"       (rng, space, channels, size)
    zoo_bench.datasets     name = "pkg.module:load_function"         () -> generate.Dataset
"""

from __future__ import annotations

import difflib
import functools
import importlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Generic, TypeVar

from zoo_bench.errors import RegistryError

T = TypeVar("T")
GROUP_PREFIX = "zoo_bench."


def did_you_mean(name: str, known: Iterable[str], n: int = 3) -> str:
    """The one did-you-mean of zoo-bench: "; did you mean 'x'?" for a mistyped `name` (up to
    `n` close names), else "." so that the message reads on either way."""
    close = difflib.get_close_matches(str(name), list(dict.fromkeys(known)), n=n)
    return f"; did you mean {' or '.join(map(repr, close))}?" if close else "."


class MissingExtraError(RegistryError):
    """A registered name whose module needs an optional extra that is not installed."""


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered name: its object (None when it failed to load), origin and load error;
    `install` is the command that makes it loadable when an optional extra is missing."""

    name: str
    obj: T | None
    origin: str
    error: str = ""
    install: str = ""


class Registry(Generic[T]):
    """Name -> object for one kind, from code registrations, built-ins and entry points.

    `check(name, obj)` returns an error text for an unusable object ("" when fine); `adopt`
    is called on each accepted object (e.g. to set a class's `name`); `builtins` names a
    function returning the built-in {name: object} (imported lazily, so that this module and
    the spec stay light).
    """

    def __init__(self, kind: str, group: str, check: Callable[[str, Any], str] | None = None,
                 adopt: Callable[[str, Any], None] | None = None,
                 builtins: str | None = None, hint: str = "") -> None:
        self.kind = kind
        self.group = group
        self.hint = hint
        self._check = check or (lambda name, obj: "")
        self._adopt = adopt or (lambda name, obj: None)
        self._builtins = builtins
        self._code: dict[str, Entry[T]] = {}
        self._entry_points: dict[str, Entry[T]] | None = None
        self._builtins_loaded = builtins is None

    def register(self, name: str, obj: T, origin: str, same: Callable[[T, T], bool] | None = None
                 ) -> T:
        """Register `obj` under `name` from code; a different object under a taken name fails."""
        old = self._code.get(name)
        if old is not None and not (old.obj is obj or (same is not None and same(old.obj, obj))):
            raise RegistryError(
                f"{self.kind} name {name!r} is already registered by {old.origin}; "
                "pick another name"
            )
        error = self._check(name, obj)
        if error:
            raise RegistryError(f"{self.kind} {name!r} from {origin}: {error}")
        self._adopt(name, obj)
        self._code[name] = Entry(name, obj, origin)
        return obj

    def _load_builtins(self) -> None:
        if self._builtins_loaded:
            return
        self._builtins_loaded = True
        table = _load(self._builtins)  # type: ignore[arg-type]
        found = table() if callable(table) else table
        module = self._builtins.partition(":")[0]  # type: ignore[union-attr]
        for name, obj in found.items():
            if name not in self._code:
                self._code[name] = Entry(name, obj, f"{module} (built-in)")

    def describe(self, refresh: bool = False) -> dict[str, Entry[T]]:
        """Every known name with its origin, plug-ins that failed to load included (sorted)."""
        self._load_builtins()
        if self._entry_points is None or refresh:
            self._entry_points = self._load_entry_points()
        return dict(sorted({**self._entry_points, **self._code}.items()))

    def available(self, refresh: bool = False) -> dict[str, T]:
        """Name -> object of every usable entry."""
        return {n: e.obj for n, e in self.describe(refresh).items() if e.obj is not None}

    def names(self) -> list[str]:
        """Sorted names of the usable entries."""
        return sorted(self.available())

    def get(self, name: str) -> T:
        """The object registered as `name`; unknown names get a did-you-mean and the list."""
        entries = self.describe()
        entry = entries.get(name)
        if entry is not None and entry.obj is not None:
            return entry.obj
        if entry is not None and entry.install:
            raise MissingExtraError(f"{self.kind} {name!r} {entry.error}: {entry.install}")
        if entry is not None:
            raise RegistryError(
                f"{self.kind} {name!r} from {entry.origin} cannot be used: {entry.error}"
            )
        raise RegistryError(
            f"unknown {self.kind} {name!r}{did_you_mean(name, entries)} Known {self.kind}s: "
            f"{', '.join(entries) or 'none'}. {self.hint or self.default_hint()}".rstrip()
        )

    def missing_extras(self) -> dict[str, Entry[T]]:
        """The entries that need an optional extra that is not installed (name -> entry)."""
        return {n: e for n, e in self.describe().items() if e.obj is None and e.install}

    def default_hint(self) -> str:
        return f"Plug-ins add {self.kind}s through the entry-point group {self.group!r}."

    def _load_entry_points(self) -> dict[str, Entry[T]]:
        found: dict[str, Entry[T]] = {}
        values: dict[str, str] = {}
        for ep in metadata.entry_points(group=self.group):
            dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "unknown distribution"
            origin = f"{ep.value} (entry point of {dist})"
            if ep.name in values:
                if values[ep.name] != ep.value:
                    found[ep.name] = Entry(
                        ep.name, None, f"{found[ep.name].origin}; {origin}",
                        "two distributions declare this name; uninstall one of them",
                    )
                continue
            values[ep.name] = ep.value
            found[ep.name] = self._load_one(ep, origin)
        return found

    def _load_one(self, ep: metadata.EntryPoint, origin: str) -> Entry[T]:
        try:
            obj = ep.load()
        except ModuleNotFoundError as e:
            extra = extra_providing(ep.dist, e.name or "")
            if extra:
                dist, missing = ep.dist.name, (e.name or "").split(".")[0]  # type: ignore
                return Entry(ep.name, None, origin,
                             f"needs the optional extra {extra!r}, which is not installed "
                             f"(no module {missing!r})", f"pip install '{dist}[{extra}]'")
            return Entry(ep.name, None, origin, f"import failed: {type(e).__name__}: {e}")
        except Exception as e:  # a broken plug-in must not break the others
            return Entry(ep.name, None, origin, f"import failed: {type(e).__name__}: {e}")
        error = self._check(ep.name, obj)
        if error:
            return Entry(ep.name, None, origin, error)
        code = self._code.get(ep.name)
        if code is not None and code.obj is not obj and not same_definition(code.obj, obj):
            return Entry(ep.name, None, origin, f"name taken by {code.origin}")
        self._adopt(ep.name, obj)
        return Entry(ep.name, obj, origin)


_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA_MARKER = re.compile(r"extra\s*==\s*[\"']([^\"']+)[\"']")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def extra_providing(dist: metadata.Distribution | None, module: str) -> str:
    """The optional extra of `dist` whose requirements include the (missing) top-level module
    `module` ("" when none does: then the import failure is a plain error)."""
    if dist is None or not module:
        return ""
    wanted = _normal(module.split(".")[0])
    for req in dist.requires or ():
        name, extra = _REQUIREMENT.match(req), _EXTRA_MARKER.search(req)
        if name and extra and _normal(name[1]) == wanted:
            return extra[1]
    return ""


def same_definition(a: Any, b: Any) -> bool:
    """The same class or function re-executed (module reload, or imported under two paths)."""
    return (a is not None and getattr(a, "__module__", None) == getattr(b, "__module__", 1)
            and getattr(a, "__qualname__", None) == getattr(b, "__qualname__", 2))


def _subclass_of(base: str, shown: str) -> Callable[[str, Any], str]:
    """A check that the object is a subclass of `base` ("module:Class", imported when used)."""

    def check(name: str, obj: Any) -> str:
        if not (isinstance(obj, type) and issubclass(obj, _load(base))):
            return f"{getattr(obj, '__qualname__', obj)!r} is not a {shown} subclass"
        own = obj.__dict__.get("name")
        if isinstance(own, str) and own and own != name:
            return f"{obj.__qualname__} is already registered as {own!r}; use one name"
        return ""

    return check


def _set_name(name: str, obj: Any) -> None:
    obj.name = name


def _callable(name: str, obj: Any) -> str:
    return "" if callable(obj) else f"{obj!r} is not callable"


def _load(target: str) -> Any:
    """The object `module:attr` names (how built-ins are found, like entry points)."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def builtin_datasets() -> dict[str, Callable[[], Any]]:
    """The built-in datasets of `zoo_bench.generate.datasets`, as name -> loader."""
    datasets = importlib.import_module("zoo_bench.generate.datasets")
    return {name: functools.partial(datasets.load_dataset, name)
            for name in (*datasets.BUILTIN, *datasets.VISION, *datasets.SIGNALS)}


PREDICTORS: Registry = Registry(
    "predictor", GROUP_PREFIX + "predictors",
    check=_subclass_of("zoo_bench.predictor:Predictor", "zoo_bench.Predictor"),
    adopt=_set_name,
    hint="Add one with @zoo_bench.register_predictor or the entry-point group "
         "'zoo_bench.predictors'.",
)
TASKS: Registry = Registry(
    "task", GROUP_PREFIX + "tasks",
    check=_subclass_of("zoo_bench.tasks:Task", "zoo_bench.tasks.Task"),
    adopt=_set_name, builtins="zoo_bench.tasks:builtin_tasks",
)
IMPORTERS: Registry = Registry("importer", GROUP_PREFIX + "importers", check=_callable,
                               builtins="zoo_bench.importers:IMPORTERS")
FAMILIES: Registry = Registry("architecture family", GROUP_PREFIX + "families", check=_callable,
                              builtins="zoo_bench.generate.hyper:FAMILIES")
DATASETS: Registry = Registry("dataset", GROUP_PREFIX + "datasets", check=_callable,
                              builtins="zoo_bench.registry:builtin_datasets")
REGISTRIES: dict[str, Registry] = {
    "predictors": PREDICTORS, "tasks": TASKS, "importers": IMPORTERS, "families": FAMILIES,
    "datasets": DATASETS,
}
