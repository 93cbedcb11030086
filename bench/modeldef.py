"""What a model must provide so bench can run it in both frameworks.

A model is any object (usually a module in ``bench.models``) with these attributes:

- ``DESCRIPTION: str``: one line for ``bench list``.
- ``Args``: a pydantic model (``extra="forbid"``) of its ``model_args`` with defaults;
  ``bench validate`` checks a scenario's ``model_args`` against it.
- ``data_spec(args) -> DataSpec``: the features and label one example carries; bench makes
  synthetic batches from it (``bench.inputs.synthetic``), with a learnable label.
- ``flops_per_example(args, compiled_pass) -> float``: analytic FLOPs for the "train" pass
  (forward, backward and update) or the "predict" pass (forward), for MFU; document the
  formula. The pass is the cell's workload's ``compiled_pass`` (``bench.workloads.spec``):
  serve cells, and any workload that runs forward passes, count "predict".
- ``build_tf(args)``: a Keras 3 model called as ``model(features: dict, training=bool)``
  returning logits (classification) or predictions of shape ``[B, num_outputs]``. Built under
  the cell's Keras dtype policy (``mixed_bfloat16`` for bfloat16), so layers follow it.
- ``build_jax(args, dtype)``: a Flax linen module called as
  ``module(features: dict, train=bool)``, computing in ``dtype`` with float32 parameters.
  Parameters go in the ``params`` collection; any other collection (``batch_stats``) is state
  that the train step passes as mutable and carries from step to step.

``model: "package.module:factory"`` in a scenario names a module attribute that is either such
an object (a module or class with these attributes) or a function that takes no arguments and
returns one. The loss comes from ``DataSpec.task``: softmax cross-entropy on integer labels or
mean squared error, computed in float32 in both frameworks.

A reference imports its module, like any Python import, but calls nothing it has not checked:
the attribute must be a module, a class (used as it is, never instantiated), or a Python
function defined in that very module (``obj.__module__``) and callable with no arguments.
Builtins (``sys:exit``), functions re-exported from elsewhere (``mymodels:helper`` imported
from another module) and anything in the standard library are refused before any call, so
``bench validate`` cannot be made to exit, fork or write files by naming a stdlib callable.

Nothing here imports a framework: ``bench validate`` loads models to check ``model_args``.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel

Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class FeatureSpec:
    """One input tensor per example: ``shape`` excludes the batch dimension.

    ``vocab`` bounds integer features (token ids, categories) to ``[0, vocab)``.
    """

    shape: tuple[int, ...]
    dtype: Literal["float32", "int32"]
    vocab: int | None = None


@dataclass(frozen=True)
class DataSpec:
    features: dict[str, FeatureSpec]
    task: Task
    num_outputs: int  # classes for classification, targets for regression
    tokens_per_example: int | None = None  # set by sequence models: tokens/s is reported
    extras: dict[str, Any] = field(default_factory=dict)


class ModelDef(Protocol):
    DESCRIPTION: str
    Args: type[BaseModel]

    def data_spec(self, args: Any) -> DataSpec: ...

    def flops_per_example(self, args: Any, workload: str) -> float: ...

    def build_tf(self, args: Any) -> Any: ...

    def build_jax(self, args: Any, dtype: Any) -> Any: ...


REQUIRED = ("DESCRIPTION", "Args", "data_spec", "flops_per_example", "build_tf", "build_jax")
CALLABLE = ("data_spec", "flops_per_example", "build_tf", "build_jax")


class ModelError(ValueError):
    """A model name that cannot be resolved or an object that breaks the protocol."""


def registered_models() -> dict[str, str]:
    from bench.models import REGISTRY

    return dict(REGISTRY)


def load_model(name: str) -> ModelDef:
    """Resolve a registered name (``mlp``) or a ``package.module:factory`` reference."""
    registry = registered_models()
    if name in registry:
        obj: Any = importlib.import_module(registry[name])
    elif ":" in name or "/" in name or name.endswith(".py"):
        module_name, _, attr = name.partition(":")
        if not _DOTTED.fullmatch(module_name) or not attr.isidentifier():
            what = "a file path" if "/" in name or name.endswith(".py") else "not a module path"
            raise ModelError(
                f"model {name!r}: {what}; expected 'package.module:factory' (a module Python "
                "can import: put its folder on PYTHONPATH)"
            )
        if _own_module(module_name):
            # bench's own modules (its CLI, its runner) hold no model; calling into them to
            # find out would run bench inside bench.
            raise ModelError(
                f"{module_name} is a module of bench itself, not a module of models (not "
                "imported); expected a registered model name or a module of your own"
            )
        if _stdlib(module_name) and module_name not in sys.modules:
            # Importing some of these has effects of its own (antigravity opens a browser).
            raise ModelError(
                f"{module_name} is a standard library module, not a module of models (not "
                "imported); expected a module of your own"
            )
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ModelError(f"cannot import model module {module_name!r}: {exc}") from exc
        if not hasattr(module, attr):
            raise ModelError(f"module {module_name!r} has no attribute {attr!r}")
        obj = _checked_target(getattr(module, attr), module_name, attr)
        if inspect.isfunction(obj):
            # A factory defined in the named module: called with no arguments, it returns the
            # model object. SystemExit too: a factory must not end `bench validate`.
            try:
                obj = obj()
            except (Exception, SystemExit) as exc:
                raise ModelError(
                    f"model factory {name!r} raised {type(exc).__name__}: {exc}"
                ) from exc
    else:
        known = ", ".join(sorted(registry))
        raise ModelError(
            f"unknown model {name!r}; expected one of {known} or 'package.module:factory'"
        )
    missing = [attr for attr in REQUIRED if not hasattr(obj, attr)]
    if missing:
        raise ModelError(
            f"model {name!r} does not provide {', '.join(missing)} (see bench.modeldef)"
        )
    wrong = [f"{attr} is not callable" for attr in CALLABLE if not callable(getattr(obj, attr))]
    if not (isinstance(obj.Args, type) and issubclass(obj.Args, BaseModel)):
        wrong.insert(0, "Args is not a pydantic BaseModel class")
    if wrong:
        raise ModelError(f"model {name!r}: {'; '.join(wrong)} (see bench.modeldef)")
    return obj


def _checked_target(obj: Any, module_name: str, attr: str) -> Any:
    """The attribute a reference names, if it is safe to use; ModelError naming what it is.

    Only a module, a class or a function of the named module itself qualifies: anything else
    could be any callable in the process (``sys:exit``, ``os:fork``), and calling it to see
    whether it returns a model would run it.
    """
    where = f"{module_name}.{attr}"
    if inspect.ismodule(obj):
        return obj  # used as it is: its attributes are checked, nothing is called
    if inspect.isclass(obj) or inspect.isfunction(obj):
        kind = "class" if inspect.isclass(obj) else "function"
        if getattr(obj, "__module__", None) != module_name:
            raise ModelError(
                f"{where} is a {kind} defined in module {obj.__module__}, not a model defined "
                f"in module {module_name}; name it where it is defined"
            )
        if _stdlib(module_name):
            raise ModelError(
                f"{where} is a {kind} of the standard library, not a model; expected one "
                "defined in a module of your own"
            )
        if inspect.isfunction(obj):
            try:
                inspect.signature(obj).bind()
            except TypeError:
                raise ModelError(
                    f"{where} is a function that takes arguments; expected a factory called "
                    "with none, a module or a class"
                ) from None
            returns = _declared_return(obj)
            if returns is not None:
                raise ModelError(
                    f"{where} is a function declared to return {returns} (not called); "
                    "expected a factory returning a model (a module or a class, or declared "
                    "-> Any / -> ModuleType)"
                )
        return obj
    if inspect.isbuiltin(obj) or inspect.ismethoddescriptor(obj):
        what = "a builtin function"
    elif callable(obj):
        what = f"a callable {type(obj).__name__} object"
    else:
        what = f"a {type(obj).__name__} value"
    raise ModelError(
        f"{where} is {what}, not a model defined in module {module_name}; "
        "expected a module, a class or a function defined there"
    )


# A module path Python imports: dotted identifiers, nothing relative, no file names.
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
# Return annotations that say a function returns no model: it is refused by what it says it
# returns, without being called (``bench.cli:main -> int``, a ``-> None`` script entry point).
NOT_A_MODEL = frozenset(
    {"None", "NoReturn", "Never", "int", "float", "str", "bool", "bytes", "list", "dict",
     "tuple", "set"}
)  # fmt: skip


def _declared_return(func: Any) -> str | None:
    """The return annotation of ``func`` when it names a type that is no model, else None.
    Read as written (a string under ``from __future__ import annotations``), never evaluated."""
    raw = func.__annotations__.get("return", inspect.Signature.empty)
    if raw is inspect.Signature.empty:
        return None
    text = raw if isinstance(raw, str) else getattr(raw, "__name__", repr(raw))
    text = "None" if raw is None else text
    head = text.replace("typing.", "").split("[", 1)[0].strip()
    return text if head in NOT_A_MODEL else None


def _own_module(module_name: str) -> bool:
    top, _, rest = module_name.partition(".")
    return top == "bench" and not (rest == "models" or rest.startswith("models."))


def _stdlib(module_name: str) -> bool:
    return module_name.partition(".")[0] in sys.stdlib_module_names
