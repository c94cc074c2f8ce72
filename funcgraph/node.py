"""Nodes: pure forward functions with hand-written backward rules.

A node is the unit of the backprop lecture's computational diagram: it knows its forward and its
local backward, nothing else. Underneath, every call builds (and caches) a `jax.custom_vjp`, so a
node is an ordinary JAX function that works eagerly and under `jax.jit`, `jax.vmap`, `jax.grad`
and `jax.checkpoint`, and `jax.grad` runs the hand-written rule.

```python
@fg.node
def mul(x, y):
    return x * y

@mul.backward
def mul_backward(x, y, out, g):  # inputs, output, upstream gradient
    return g * y, g * x           # one gradient per positional input
```
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from funcgraph.errors import (
    BackwardRuleError,
    FuncgraphError,
    MissingBackwardError,
    NodeDefinitionError,
    NodeInputError,
    ShapeMismatchError,
)

__all__ = [
    "Example",
    "Node",
    "example",
    "examples_of",
    "get_node",
    "node",
    "node_of_equation",
    "registry",
]

_SAVE_MODES = ("all", "inputs", "output", "none")
_SCALAR_TYPES = (bool, int, float, complex, np.generic)


class Example(NamedTuple):
    """One example call of a node: positional (differentiable) inputs and static keywords.

    **Arguments:**

    - `args`: the positional inputs, arrays or pytrees of arrays.
    - `static`: keyword-only configuration, passed to the forward and the backward alike.
    """

    args: tuple[Any, ...]
    static: Mapping[str, Any] = {}


class _Leaf(NamedTuple):
    shape: tuple[int, ...]
    dtype: np.dtype


def _is_differentiable(dtype: np.dtype) -> bool:
    return bool(jnp.issubdtype(dtype, jnp.inexact))


def _describe(value: Any) -> str:
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"{value.dtype}{list(value.shape)}"
    return type(value).__name__


class Node:
    """A pure function with a hand-written backward rule.

    Create one with [`funcgraph.node`][]; attach the rule with `@my_node.backward`.

    **Attributes:**

    - `name`: the short name shown in graphs and reports.
    - `qualname`: the registry key, `module.qualified_name`.
    - `reference`: the undecorated forward. Autodiff of it is the oracle the checks compare against.
    - `save`: what the forward keeps for the backward: `"all"` (inputs and output), `"inputs"`,
      `"output"`, `"none"`, or a function `save(*inputs, out, **static) -> residuals`.
    - `kinks`: optional `kinks(*inputs, **static) -> float`, the distance (max-norm) from the
      inputs to the nearest point where the forward is not differentiable; finite differences
      must step less than that.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        save: str | Callable[..., Any] = "all",
        example: Callable[[jax.Array], Any] | Sequence[Callable[[jax.Array], Any]] | None = None,
        kinks: Callable[..., Any] | None = None,
        register: bool = True,
    ) -> None:
        if not callable(fn):
            raise NodeDefinitionError(f"fg.node expects a function, got {type(fn).__name__}")
        if not (callable(save) or save in _SAVE_MODES):
            raise NodeDefinitionError(
                f"node {name or fn.__name__!r}: save={save!r} is not one of {_SAVE_MODES} "
                "or a function save(*inputs, out, **static) -> residuals"
            )
        self.reference = fn
        self.name: str = name or fn.__name__
        self.qualname: str = f"{fn.__module__}.{name or fn.__qualname__}"
        self.save = save
        self.kinks = kinks
        if example is None:
            self._example_fns: tuple[Callable[[jax.Array], Any], ...] = ()
        elif callable(example):
            self._example_fns = (example,)
        else:
            self._example_fns = tuple(example)
        self._rule: Callable[..., Any] | None = None
        self._cache: dict[Hashable, Callable[..., Any]] = {}
        self._lock = threading.Lock()
        self._signature = inspect.signature(fn)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn
        # Tools name a function by `__name__` (fg.trace, value_and_grad's errors): a node too.
        self.__name__ = self.name
        if register:
            _register(self)

    # -- definition -------------------------------------------------------------------------

    @property
    def rule(self) -> Callable[..., Any] | None:
        """The hand-written backward rule, or `None` before `@node.backward` attached one."""
        return self._rule

    def backward(self, rule: Callable[..., Any]) -> Callable[..., Any]:
        """Attach the hand-written backward rule (use as a decorator).

        The rule is called as `rule(*inputs, out, g, **static)` and returns one gradient per
        positional input (a single array is fine for a one-input node). With a `save` function
        it is called as `rule(residuals, g, **static)` instead.

        **Returns:** the rule itself, unchanged.
        """
        if not callable(rule):
            raise NodeDefinitionError(
                f"node {self.name!r}: @{self.name}.backward expects a function, "
                f"got {type(rule).__name__}"
            )
        self._check_rule_signature(rule)
        with self._lock:
            self._rule = rule
            self._cache.clear()
        return rule

    def _positional_names(self, n: int | None = None) -> list[str]:
        names: list[str] = []
        var_name = None
        for p in self._signature.parameters.values():
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                names.append(p.name)
            elif p.kind == p.VAR_POSITIONAL:
                var_name = p.name
        if n is not None and var_name is not None and n > len(names):
            names += [f"{var_name}[{i}]" for i in range(n - len(names))]
        return names if n is None else names[:n]

    def _has_var_positional(self) -> bool:
        return any(p.kind == p.VAR_POSITIONAL for p in self._signature.parameters.values())

    def _check_rule_signature(self, rule: Callable[..., Any]) -> None:
        if self._has_var_positional():
            return
        try:
            rule_sig = inspect.signature(rule)
        except (TypeError, ValueError):
            return
        if any(p.kind == p.VAR_POSITIONAL for p in rule_sig.parameters.values()):
            return
        n_rule = sum(
            p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
            for p in rule_sig.parameters.values()
        )
        if callable(self.save):
            expected = ["residuals", "g"]
        else:
            expected = [*self._positional_names(), "out", "g"]
        if n_rule != len(expected):
            raise NodeDefinitionError(
                f"node {self.name!r}: backward rule {getattr(rule, '__name__', rule)!r} takes "
                f"{n_rule} positional argument(s), expected {len(expected)}: "
                f"({', '.join(expected)})"
            )

    # -- examples -----------------------------------------------------------------------------

    def examples(self, key: jax.Array) -> list[Example]:
        """The declared example calls, drawn with `key` (one per declared example function).

        An example function returns a tuple of positional inputs or an [`funcgraph.Example`][].
        """
        return _draw_examples(self._example_fns, key)

    # -- calling ------------------------------------------------------------------------------

    def __call__(self, *args: Any, **static: Any) -> Any:
        names = self._positional_names(len(args))
        leaves_per_arg = []
        for i, a in enumerate(args):
            arg_name = names[i] if i < len(names) else f"input {i}"
            if a is None:
                raise NodeInputError(
                    f"node {self.name!r}: input {i} ({arg_name}) is None; "
                    "expected an array or a pytree of arrays"
                )
            leaves, _ = jax.tree_util.tree_flatten(a)
            for leaf in leaves:
                if not isinstance(leaf, (jax.Array, np.ndarray, *_SCALAR_TYPES)):
                    raise NodeInputError(
                        f"node {self.name!r}: input {i} ({arg_name}) contains a "
                        f"{type(leaf).__name__}; expected an array or a pytree of arrays. "
                        "Static configuration goes in keyword-only arguments."
                    )
            leaves_per_arg.append(leaves)
        for k, v in static.items():
            if isinstance(v, (jax.Array, np.ndarray)) and not isinstance(v, np.generic):
                raise NodeInputError(
                    f"node {self.name!r}: keyword argument {k!r} is an array; keyword-only "
                    "arguments are static configuration. Pass arrays as positional inputs."
                )
        flat, treedef = jax.tree_util.tree_flatten(args)
        avals = tuple(_Leaf(tuple(jnp.shape(x)), jnp.result_type(x)) for x in flat)
        fn = self._custom_vjp(treedef, avals, static)
        try:
            return fn(*flat)
        except (FuncgraphError, jax.errors.JAXTypeError, jax.errors.JaxprTypeError):
            # Our own errors already name the node; tracer misuse (Python branching on a traced
            # value) is not a shape problem, and fg.trace turns it into a TraceError.
            raise
        except (TypeError, ValueError) as err:
            raise _forward_error(self, args, static, err) from err

    def _custom_vjp(
        self, treedef: Any, avals: tuple[_Leaf, ...], static: dict[str, Any]
    ) -> Callable[..., Any]:
        try:
            key: Hashable | None = (treedef, avals, tuple(sorted(static.items())))
            hash(key)
        except TypeError:
            key = None
        if key is not None:
            with self._lock:
                cached = self._cache.get(key)
            if cached is not None:
                return cached
        fn = _build_custom_vjp(self, treedef, avals, static)
        if key is not None:
            with self._lock:
                self._cache[key] = fn
        return fn

    def __repr__(self) -> str:
        rule = "hand-written backward" if self._rule is not None else "no backward yet"
        return f"<funcgraph.Node {self.name!r} ({rule})>"


def _describe_input(name: str, value: Any) -> str:
    leaves = jax.tree_util.tree_leaves(value)
    if len(leaves) == 1 and leaves[0] is value:
        return f"{name} ({jnp.result_type(value)}, shape {tuple(jnp.shape(value))})"
    parts = ", ".join(f"{jnp.result_type(x)}{tuple(jnp.shape(x))}" for x in leaves)
    return f"{name} (a {type(value).__name__} of {parts})"


def _forward_error(
    node: Node, args: tuple[Any, ...], static: dict[str, Any], err: Exception
) -> Exception:
    """The error to raise when a node's forward failed on its inputs, in funcgraph's words."""
    try:
        node._signature.bind(*args, **static)
    except TypeError as bind_err:
        return NodeInputError(
            f"node {node.name!r}: cannot be called with {len(args)} positional input(s) and "
            f"keywords {sorted(static)}: {bind_err}; expected {node.name}{node._signature}"
        )
    names = node._positional_names(len(args))
    described = [_describe_input(n, a) for n, a in zip(names, args, strict=False)]
    what = (
        f"input {described[0]} does not fit"
        if len(described) == 1
        else f"inputs {', '.join(described[:-1])} and {described[-1]} do not fit"
    )
    config = f" ({', '.join(f'{k}={v!r}' for k, v in static.items())})" if static else ""
    first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
    if isinstance(err, jax.dtypes.TypePromotionError):
        # A dtype clash is not a shape problem; calling it one sends the user the wrong way.
        what = what.replace("do not fit", "have dtypes that do not mix").replace(
            "does not fit", "has a dtype that does not mix"
        )
        return NodeInputError(f"node {node.name!r}{config}: {what}: {first_line}")
    return ShapeMismatchError(f"node {node.name!r}{config}: {what}: {first_line}")


class _NodeCall(NamedTuple):
    """What a `custom_vjp_call` equation in a jaxpr was made from."""

    node: Node
    static: dict[str, Any]
    treedef: Any = None  # of the positional inputs, flattened into the equation's operands


def _build_custom_vjp(
    node: Node, treedef: Any, avals: tuple[_Leaf, ...], static: dict[str, Any]
) -> Callable[..., Any]:
    skeleton = jax.tree_util.tree_unflatten(treedef, [0] * len(avals))
    arg_treedefs = [jax.tree_util.tree_structure(a) for a in skeleton]
    names = node._positional_names(len(skeleton))

    def forward(*flat: Any) -> Any:
        return node.reference(*jax.tree_util.tree_unflatten(treedef, flat), **static)

    forward.__name__ = node.name
    forward.__qualname__ = node.name

    def fwd(*flat: Any) -> tuple[Any, Any]:
        out = forward(*flat)
        if callable(node.save):
            res = node.save(*jax.tree_util.tree_unflatten(treedef, flat), out, **static)
        else:
            res = (
                flat if node.save in ("all", "inputs") else None,
                out if node.save in ("all", "output") else None,
            )
        return out, res

    def bwd(res: Any, g: Any) -> tuple[Any, ...]:
        rule = node.rule
        if rule is None:
            raise MissingBackwardError(
                f"node {node.name!r} was differentiated before it has a backward rule; "
                f"attach one with @{node.name}.backward"
            )
        if callable(node.save):
            grads = rule(res, g, **static)
        else:
            flat, out = res
            inputs = (
                jax.tree_util.tree_unflatten(treedef, flat)
                if flat is not None
                else (None,) * len(arg_treedefs)
            )
            grads = rule(*inputs, out, g, **static)
        return _validate_grads(node, names, arg_treedefs, avals, grads)

    bwd._funcgraph_call = _NodeCall(node, dict(static), treedef)  # type: ignore[attr-defined]
    fn = jax.custom_vjp(forward)
    fn.defvjp(fwd, bwd)
    return fn


def _validate_grads(
    node: Node,
    names: list[str],
    arg_treedefs: list[Any],
    avals: tuple[_Leaf, ...],
    grads: Any,
) -> tuple[Any, ...]:
    n = len(arg_treedefs)
    expected = f"one per positional input: {', '.join(names)}"
    if n == 1:
        if (
            isinstance(grads, tuple)
            and len(grads) == 1
            and jax.tree_util.tree_structure(grads[0], is_leaf=lambda x: x is None)
            == arg_treedefs[0]
        ):
            grads = grads[0]
        grads = (grads,)
    if not isinstance(grads, (tuple, list)):
        raise BackwardRuleError(
            f"node {node.name!r}: backward returned a {_describe(grads)}, expected a tuple of "
            f"{n} gradients ({expected})"
        )
    if len(grads) != n:
        raise BackwardRuleError(
            f"node {node.name!r}: backward returned {len(grads)} gradient(s), expected {n} "
            f"({expected})"
        )
    out: list[Any] = []
    leaf_index = 0
    for i, (grad, tdef) in enumerate(zip(grads, arg_treedefs, strict=True)):
        in_avals = avals[leaf_index : leaf_index + tdef.num_leaves]
        leaf_index += tdef.num_leaves
        any_diff = any(_is_differentiable(a.dtype) for a in in_avals)
        if grad is None:
            if any_diff:
                raise BackwardRuleError(
                    f"node {node.name!r}: backward returned None for input {names[i]!r}, which "
                    f"is differentiable ({in_avals[0].dtype}); return jnp.zeros_like({names[i]})"
                    " if its gradient is zero"
                )
            grad_leaves = [None] * tdef.num_leaves
        else:
            grad_leaves, gdef = jax.tree_util.tree_flatten(grad, is_leaf=lambda x: x is None)
            if gdef != tdef:
                raise BackwardRuleError(
                    f"node {node.name!r}: gradient for input {names[i]!r} has structure {gdef}, "
                    f"expected {tdef} (the structure of {names[i]})"
                )
        for g_leaf, aval in zip(grad_leaves, in_avals, strict=True):
            if not _is_differentiable(aval.dtype):
                # Integer and boolean inputs have no gradient; JAX's cotangent type is float0.
                out.append(np.zeros(aval.shape, dtype=jax.dtypes.float0))
                continue
            if g_leaf is None:
                raise BackwardRuleError(
                    f"node {node.name!r}: backward returned None for part of input "
                    f"{names[i]!r}, which is differentiable ({aval.dtype})"
                )
            if not isinstance(g_leaf, (jax.Array, np.ndarray, *_SCALAR_TYPES)):
                raise BackwardRuleError(
                    f"node {node.name!r}: gradient for input {names[i]!r} is a "
                    f"{type(g_leaf).__name__}, expected an array"
                )
            g_shape = tuple(jnp.shape(g_leaf))
            if g_shape != aval.shape:
                hint = ""
                if len(g_shape) >= len(aval.shape):
                    hint = (
                        f" If {names[i]} was broadcast in the forward, sum the gradient back "
                        "over the broadcast axes (a gradient has the shape of its input)."
                    )
                raise BackwardRuleError(
                    f"node {node.name!r}: gradient for input {names[i]!r} has shape "
                    f"{g_shape}, expected {aval.shape} (the shape of {names[i]}).{hint}"
                )
            g_dtype = jnp.result_type(g_leaf)
            if g_dtype != aval.dtype:
                raise BackwardRuleError(
                    f"node {node.name!r}: gradient for input {names[i]!r} has dtype {g_dtype}, "
                    f"expected {aval.dtype} (the dtype of {names[i]}); cast it with "
                    f".astype({names[i]}.dtype)"
                )
            out.append(g_leaf)
    return tuple(out)


def node(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    save: str | Callable[..., Any] = "all",
    example: Callable[[jax.Array], Any] | Sequence[Callable[[jax.Array], Any]] | None = None,
    kinks: Callable[..., Any] | None = None,
    register: bool = True,
) -> Any:
    r"""Turn a pure forward function into a [`funcgraph.Node`][]; attach its rule with `.backward`.

    Use bare (`@fg.node`) or with options (`@fg.node(save="output")`). Positional arguments are
    the differentiable inputs (arrays or pytrees of arrays; integer ones get no gradient);
    keyword-only arguments are static configuration and reach the backward rule as keywords.

    **Arguments:**

    - `fn`: the forward, $y = f(x_1, \dots, x_n)$.
    - `name`: the name in graphs, reports and the registry (default: `fn.__name__`).
    - `save`: what the backward gets: `"all"` (default, inputs and output), `"inputs"` (the
      rule sees `out=None`), `"output"` (the rule sees the inputs as `None`), `"none"`, or a
      function `save(*inputs, out, **static) -> residuals`, in which case the rule is called as
      `rule(residuals, g, **static)`. Saving less lowers the memory the backward holds.
    - `example`: a function of a PRNG key returning example inputs (a tuple, or an
      [`funcgraph.Example`][] to also give static keywords), or a list of such functions.
    - `kinks`: `kinks(*inputs, **static) -> float`, the distance to the nearest non-smooth point;
      finite-difference checks keep their steps below it.
    - `register`: add the node to [`funcgraph.registry`][] (default `True`).

    **Returns:** a [`funcgraph.Node`][] (or a decorator making one, when called with options).
    """

    def make(f: Callable[..., Any]) -> Node:
        return Node(f, name=name, save=save, example=example, kinks=kinks, register=register)

    return make if fn is None else make(fn)


def _draw_examples(fns: Sequence[Callable[[jax.Array], Any]], key: jax.Array) -> list[Example]:
    keys = jax.random.split(key, max(len(fns), 1))
    out = []
    for k, fn in zip(keys, fns, strict=False):
        ex = fn(k)
        if isinstance(ex, Example):
            out.append(Example(tuple(ex.args), dict(ex.static)))
        elif isinstance(ex, tuple):
            out.append(Example(ex, {}))
        else:
            out.append(Example((ex,), {}))
    return out


def example(*makers: Callable[[jax.Array], Any]) -> Callable[[Any], Any]:
    """Declare example inputs for a plain function of nodes, as `example=` does for a node.

    ```python
    @fg.example(lambda key: (jax.random.normal(key, (3,)),))
    def loss(w):
        return fg.nodes.sum(fg.nodes.square(w))
    ```

    Tools (`funcgraph check FILE:loss`, `funcgraph draw`) then know what to call it with.

    **Arguments:** one or more functions of a PRNG key returning a tuple of positional inputs
    or an [`funcgraph.Example`][].

    **Returns:** a decorator that returns the function unchanged, with the examples attached.
    """

    def attach(f: Any) -> Any:
        f.__funcgraph_examples__ = tuple(makers)
        return f

    return attach


def examples_of(f: Any, key: jax.Array) -> list[Example]:
    """The example calls declared for a node or for a function decorated with `fg.example`.

    **Returns:** a list of [`funcgraph.Example`][] (empty when none are declared).
    """
    if isinstance(f, Node):
        return f.examples(key)
    return _draw_examples(getattr(f, "__funcgraph_examples__", ()), key)


# -- registry -------------------------------------------------------------------------------

_REGISTRY: dict[str, Node] = {}
_REGISTRY_LOCK = threading.Lock()


def _register(n: Node) -> None:
    with _REGISTRY_LOCK:
        _REGISTRY[n.qualname] = n


def registry() -> dict[str, Node]:
    """Every registered node, keyed by `module.qualified_name`, in definition order.

    Like Caffe's layer registry, this lets tools (the pytest plugin, the CLI) enumerate nodes.

    **Returns:** a new dict; changing it does not change the registry.
    """
    with _REGISTRY_LOCK:
        return dict(_REGISTRY)


def get_node(name: str) -> Node:
    """Look a registered node up by qualified name, or by short name when that is unambiguous."""
    nodes = registry()
    if name in nodes:
        return nodes[name]
    matches = [n for n in nodes.values() if n.name == name]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise KeyError(f"no registered node named {name!r}")
    raise KeyError(
        f"{len(matches)} registered nodes are named {name!r}; use one of "
        f"{sorted(n.qualname for n in matches)}"
    )


def node_of_equation(eqn: Any) -> _NodeCall | None:
    """The node (and its static keywords) behind a `custom_vjp_call` jaxpr equation, if any."""
    bwd = eqn.params.get("bwd")
    return getattr(getattr(bwd, "f", None), "_funcgraph_call", None)
