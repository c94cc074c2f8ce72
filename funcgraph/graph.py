"""Graphs: the computational diagram of a function, read off its jaxpr.

`fg.trace(f, *args)` records every application in topological order. A `custom_vjp_call` made by a
[`funcgraph.Node`][] becomes a *hand* application (its backward is the hand-written rule); every
other primitive becomes an *autodiff* application (its backward is `jax.vjp`). Nested `jit` calls
are inlined (their names kept in `Application.scope`); control flow, `custom_jvp` functions and
`jax.checkpoint` blocks stay whole as one autodiff application, so nothing is dropped.

The interpreters are the lecture's passes: `Graph.forward` puts a value on every edge,
`Graph.backward` walks the applications in reverse, multiplies by each local gradient (the
chain rule) and sums where an edge fans out. Python only loops over applications while tracing;
under `jax.jit` the loop is gone.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore

from funcgraph.errors import TraceError
from funcgraph.node import Node, node_of_equation

__all__ = [
    "Application",
    "Constant",
    "Edge",
    "Graph",
    "grad",
    "lump",
    "reference",
    "trace",
    "value_and_grad",
]

_INLINED = ("jit", "pjit", "closed_call", "core_call")
Kind = Literal["hand", "autodiff"]
Rules = Literal["hand", "reference"]


@dataclasses.dataclass(frozen=True)
class Edge:
    """A wire of the diagram: one array value, produced once, consumed any number of times.

    **Attributes:**

    - `id`: the edge's index in `Graph.edges`; the key of `forward`/`backward` results.
    - `shape`, `dtype`: the array type on the wire.
    """

    id: int
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def differentiable(self) -> bool:
        """Whether a gradient flows along this edge (floating or complex dtype)."""
        return bool(jnp.issubdtype(self.dtype, jnp.inexact))

    def __str__(self) -> str:
        return f"e{self.id}:{self.dtype}{list(self.shape)}"


@dataclasses.dataclass(frozen=True)
class Constant:
    """A literal operand of an application (a baked-in number, not an edge)."""

    value: Any

    def __str__(self) -> str:
        return f"const({self.value})" if np.ndim(self.value) == 0 else "const"


@dataclasses.dataclass(frozen=True, eq=False)
class Application:
    """One application of a node or primitive: a gate of the diagram.

    **Attributes:**

    - `index`: position in topological order.
    - `name`: the node's name for hand applications, the primitive's otherwise.
    - `kind`: `"hand"` (a hand-written backward rule) or `"autodiff"` (`jax.vjp`).
    - `inputs`, `outputs`: its edges (inputs may also be [`funcgraph.Constant`][]s).
    - `node`, `static`: the [`funcgraph.Node`][] and its keyword configuration, for hand ones.
    - `scope`: names of the inlined `jit` calls this application sat in, outermost first.
    - `calls`: ids of those calls, parallel to `scope`; two calls of one jitted function share
      names but not ids.
    """

    index: int
    name: str
    kind: Kind
    primitive: str
    inputs: tuple[Edge | Constant, ...]
    outputs: tuple[Edge, ...]
    node: Node | None
    static: Mapping[str, Any]
    scope: tuple[str, ...]
    equation: Any = dataclasses.field(repr=False)
    calls: tuple[int, ...] = ()

    def apply(self, *inputs: Any) -> tuple[Any, ...]:
        """Run this application on values for its *edge* inputs (constants are filled in)."""
        it = iter(inputs)
        vals = [a.value if isinstance(a, Constant) else next(it) for a in self.inputs]
        return _bind(self.equation, vals)

    def apply_reference(self, *inputs: Any) -> tuple[Any, ...]:
        """Like `apply`, with every hand-written rule inside replaced by autodiff of its forward."""
        it = iter(inputs)
        vals = [a.value if isinstance(a, Constant) else next(it) for a in self.inputs]
        return _bind_reference(self.equation, vals)

    @property
    def edge_inputs(self) -> tuple[Edge, ...]:
        """The inputs that are edges (constants left out), in order."""
        return tuple(a for a in self.inputs if isinstance(a, Edge))

    def __str__(self) -> str:
        ins = ", ".join(str(a) for a in self.inputs)
        outs = ", ".join(str(e) for e in self.outputs)
        return f"[{self.index}] {self.name} ({self.kind}): {ins} -> {outs}"


def _bind(eqn: Any, vals: Sequence[Any]) -> tuple[Any, ...]:
    params = eqn.primitive.get_bind_params(eqn.params)
    out = eqn.primitive.bind(*vals, **params)
    return tuple(out) if eqn.primitive.multiple_results else (out,)


def _eval_reference(jaxpr: Any, consts: Sequence[Any], args: Sequence[Any]) -> list[Any]:
    env: dict[Any, Any] = {}

    def read(v: Any) -> Any:
        return v.val if isinstance(v, jcore.Literal) else env[v]

    for v, c in zip(jaxpr.constvars, consts, strict=True):
        env[v] = c
    for v, a in zip(jaxpr.invars, args, strict=True):
        env[v] = a
    for eqn in jaxpr.eqns:
        outs = _bind_reference(eqn, [read(v) for v in eqn.invars])
        for v, o in zip(eqn.outvars, outs, strict=True):
            env[v] = o
    return [read(v) for v in jaxpr.outvars]


def _bind_reference(eqn: Any, vals: Sequence[Any]) -> tuple[Any, ...]:
    name = eqn.primitive.name
    if name == "custom_vjp_call":
        closed = eqn.params["call_jaxpr"]
        return tuple(_eval_reference(closed.jaxpr, closed.consts, vals))
    if name in _INLINED:
        closed = eqn.params["jaxpr"]
        return tuple(_eval_reference(closed.jaxpr, closed.consts, vals))
    if not any(_holds_hand_node(j) for j in _sub_jaxprs(eqn.params)):
        return _bind(eqn, vals)
    if name == "custom_jvp_call" or name.startswith("remat") or name == "checkpoint":
        # For the autodiff oracle only the math matters, not the custom JVP or the remat policy.
        key = "call_jaxpr" if name == "custom_jvp_call" else "jaxpr"
        inner = eqn.params[key]
        jaxpr, consts = (inner.jaxpr, inner.consts) if hasattr(inner, "consts") else (inner, [])
        return tuple(_eval_reference(jaxpr, consts, vals))
    # Control flow (cond, scan, while): the same primitive over reference bodies.
    params = {k: _reference_param(v) for k, v in eqn.params.items()}
    return _bind(eqn.replace(params=params), vals)


def _sub_jaxprs(params: Mapping[str, Any]) -> list[Any]:
    found = []
    for v in params.values():
        for item in v if isinstance(v, tuple) else (v,):
            if isinstance(item, (jcore.ClosedJaxpr, jcore.Jaxpr)):
                found.append(item)
    return found


def _holds_hand_node(j: Any) -> bool:
    jaxpr = getattr(j, "jaxpr", j)
    return any(
        eqn.primitive.name == "custom_vjp_call"
        or any(_holds_hand_node(sub) for sub in _sub_jaxprs(eqn.params))
        for eqn in jaxpr.eqns
    )


def _reference_param(value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(_reference_param(v) for v in value)
    if not isinstance(value, jcore.ClosedJaxpr) or not _holds_hand_node(value):
        return value
    avals = [jax.ShapeDtypeStruct(v.aval.shape, v.aval.dtype) for v in value.jaxpr.invars]
    traced = jax.make_jaxpr(lambda *a: _eval_reference(value.jaxpr, value.consts, a))(*avals)
    return traced


@dataclasses.dataclass(frozen=True, eq=False)
class Graph:
    """The computational diagram of a function, traced at example arguments.

    **Attributes:**

    - `applications`: the gates, in topological order.
    - `edges`: every wire; `edges[i].id == i`.
    - `inputs`: the edges of the flattened arguments, in order.
    - `outputs`: the output edges (or constants), flattened.
    - `constants`: values of captured constant edges, by edge id.
    - `in_tree`, `out_tree`: the pytree structures of the arguments and of the result.
    """

    name: str
    applications: tuple[Application, ...]
    edges: tuple[Edge, ...]
    inputs: tuple[Edge, ...]
    outputs: tuple[Edge | Constant, ...]
    constants: Mapping[int, Any]
    in_tree: Any
    out_tree: Any

    # -- the two passes ------------------------------------------------------------------------

    def _flat_args(self, args: Sequence[Any]) -> list[Any]:
        flat, tree = jax.tree_util.tree_flatten(tuple(args))
        if tree != self.in_tree:
            raise TraceError(
                f"graph {self.name!r} was traced for arguments {self.in_tree}, "
                f"got {tree}; trace it again for these arguments"
            )
        for edge, x in zip(self.inputs, flat, strict=True):
            if tuple(jnp.shape(x)) != edge.shape:
                raise TraceError(
                    f"graph {self.name!r}: argument edge {edge} got shape {tuple(jnp.shape(x))};"
                    " trace it again for these shapes"
                )
        return flat

    def forward(self, *args: Any) -> dict[int, jax.Array]:
        """The forward pass: the value on every edge, keyed by edge id.

        **Arguments:** the same arguments the graph was traced with (same structure and shapes).

        **Returns:** `{edge.id: value}` for every edge.
        """
        values: dict[int, Any] = dict(self.constants)
        for edge, x in zip(self.inputs, self._flat_args(args), strict=True):
            values[edge.id] = x
        for app in self.applications:
            outs = app.apply(*(values[e.id] for e in app.edge_inputs))
            for edge, o in zip(app.outputs, outs, strict=True):
                values[edge.id] = o
        return values

    def __call__(self, *args: Any) -> Any:
        """Evaluate the graph and return its result, structured as the traced function's."""
        values = self.forward(*args)
        flat = [o.value if isinstance(o, Constant) else values[o.id] for o in self.outputs]
        return jax.tree_util.tree_unflatten(self.out_tree, flat)

    def backward(
        self,
        *args: Any,
        cotangent: Any = None,
        rules: Rules = "hand",
        values: Mapping[int, Any] | None = None,
    ) -> dict[int, jax.Array]:
        r"""The backward pass: the gradient of the output on every edge, keyed by edge id.

        Walks the applications in reverse. Each gets the gradient arriving on its outputs and
        passes $\partial L/\partial x_i = \sum_j (\partial y_j/\partial x_i)^\top \,
        \partial L/\partial y_j$ to its inputs, through the hand-written rule for hand
        applications and `jax.vjp` for autodiff ones; where an edge fans out, the gradients of
        its consumers are summed.

        **Arguments:**

        - `args`: the arguments the graph was traced with.
        - `cotangent`: the gradient seeded on the output, structured like it. Defaults to 1 when
          every output is a scalar; required otherwise.
        - `rules`: `"hand"` (default) uses the hand-written rules; `"reference"` differentiates
          each node's pure forward instead (the autodiff oracle, edge by edge).
        - `values`: the forward values, if already computed by `forward`.

        **Returns:** `{edge.id: gradient}` for every differentiable edge (zeros where no gradient
        arrives).
        """
        if values is None:
            values = self.forward(*args)
        cts: dict[int, Any] = {}
        for edge, ct in zip(self.outputs, self._seed(cotangent), strict=True):
            if isinstance(edge, Edge) and edge.differentiable:
                _accumulate(cts, edge, ct)
        for app in reversed(self.applications):
            if not any(e.id in cts for e in app.outputs):
                continue
            out_cts = tuple(
                cts[e.id] if e.id in cts else _zero_cotangent(e) for e in app.outputs
            )
            edge_inputs = app.edge_inputs
            apply = app.apply if rules == "hand" else app.apply_reference
            _, vjp = jax.vjp(apply, *(values[e.id] for e in edge_inputs))
            for edge, ct in zip(edge_inputs, vjp(out_cts), strict=True):
                if edge.differentiable:
                    _accumulate(cts, edge, ct)
        for edge in self.edges:
            if edge.differentiable and edge.id not in cts:
                cts[edge.id] = jnp.zeros(edge.shape, edge.dtype)
        return cts

    def _seed(self, cotangent: Any) -> list[Any]:
        if cotangent is None:
            if any(
                isinstance(o, Edge) and (o.shape != () or not o.differentiable)
                for o in self.outputs
            ):
                raise ValueError(
                    f"graph {self.name!r} has non-scalar outputs "
                    f"{[str(o) for o in self.outputs]}; pass cotangent= (the gradient to seed "
                    "on the output, structured like it)"
                )
            return [jnp.ones((), o.dtype) if isinstance(o, Edge) else None for o in self.outputs]
        flat, tree = jax.tree_util.tree_flatten(cotangent)
        if tree != self.out_tree:
            raise ValueError(
                f"graph {self.name!r}: cotangent has structure {tree}, expected the output's "
                f"{self.out_tree}"
            )
        for o, c in zip(self.outputs, flat, strict=True):
            if isinstance(o, Edge) and tuple(jnp.shape(c)) != o.shape:
                raise ValueError(
                    f"graph {self.name!r}: cotangent for output {o} has shape "
                    f"{tuple(jnp.shape(c))}, expected {o.shape}"
                )
        return flat

    def input_gradients(self, grads: Mapping[int, Any]) -> tuple[Any, ...]:
        """Gather the gradients on the input edges into the structure of the arguments.

        Integer inputs get `None`.
        """
        flat = [grads.get(e.id) if e.differentiable else None for e in self.inputs]
        return jax.tree_util.tree_unflatten(self.in_tree, flat)

    # -- navigation ------------------------------------------------------------------------------

    def producer(self, edge: Edge) -> Application | None:
        """The application whose output is `edge` (`None` for inputs and constants)."""
        for app in self.applications:
            if edge in app.outputs:
                return app
        return None

    def consumers(self, edge: Edge) -> list[Application]:
        """The applications that read `edge`; more than one means the edge fans out."""
        return [app for app in self.applications if edge in app.inputs]

    @property
    def hand_applications(self) -> tuple[Application, ...]:
        """The applications that run hand-written backward rules."""
        return tuple(a for a in self.applications if a.kind == "hand")

    def __str__(self) -> str:
        lines = [
            f"Graph {self.name!r}: {len(self.applications)} applications, "
            f"{len(self.edges)} edges",
            f"  inputs:  {', '.join(str(e) for e in self.inputs)}",
        ]
        lines += [f"  {app}" for app in self.applications]
        lines.append(f"  outputs: {', '.join(str(o) for o in self.outputs)}")
        return "\n".join(lines)


def _zero_cotangent(edge: Edge) -> Any:
    if edge.differentiable:
        return jnp.zeros(edge.shape, edge.dtype)
    return np.zeros(edge.shape, jax.dtypes.float0)


def _accumulate(cts: dict[int, Any], edge: Edge, ct: Any) -> None:
    # The chain rule's sum over paths: a fanned-out edge adds its consumers' gradients.
    cts[edge.id] = cts[edge.id] + ct if edge.id in cts else ct


# -- tracing -------------------------------------------------------------------------------------


class _Builder:
    def __init__(self) -> None:
        self.edges: list[Edge] = []
        self.apps: list[Application] = []
        self.constants: dict[int, Any] = {}
        self.n_calls = 0

    def new_edge(self, aval: Any) -> Edge:
        edge = Edge(len(self.edges), tuple(aval.shape), np.dtype(aval.dtype))
        self.edges.append(edge)
        return edge

    def walk(
        self,
        jaxpr: Any,
        env: dict[Any, Edge | Constant],
        scope: tuple[str, ...],
        calls: tuple[int, ...] = (),
    ) -> None:
        def read(v: Any) -> Edge | Constant:
            return Constant(v.val) if isinstance(v, jcore.Literal) else env[v]

        for eqn in jaxpr.eqns:
            prim = eqn.primitive.name
            ins = [read(v) for v in eqn.invars]
            if prim in _INLINED:
                closed = eqn.params["jaxpr"]
                inner: dict[Any, Edge | Constant] = {}
                for v, c in zip(closed.jaxpr.constvars, closed.consts, strict=True):
                    inner[v] = self.constant(v.aval, c)
                for v, a in zip(closed.jaxpr.invars, ins, strict=True):
                    inner[v] = a
                self.n_calls += 1
                self.walk(
                    closed.jaxpr,
                    inner,
                    (*scope, str(eqn.params.get("name", prim))),
                    (*calls, self.n_calls),
                )
                for outer, v in zip(eqn.outvars, closed.jaxpr.outvars, strict=True):
                    env[outer] = (
                        Constant(v.val) if isinstance(v, jcore.Literal) else inner[v]
                    )
                continue
            outs = tuple(self.new_edge(v.aval) for v in eqn.outvars)
            for v, e in zip(eqn.outvars, outs, strict=True):
                env[v] = e
            call = node_of_equation(eqn) if prim == "custom_vjp_call" else None
            if call is not None:
                name, kind, node, static = call.node.name, "hand", call.node, call.static
            else:
                name = _autodiff_name(eqn)
                kind, node, static = "autodiff", None, {}
            self.apps.append(
                Application(
                    index=len(self.apps),
                    name=name,
                    kind=kind,
                    primitive=prim,
                    inputs=tuple(ins),
                    outputs=outs,
                    node=node,
                    static=static,
                    scope=scope,
                    equation=eqn,
                    calls=calls,
                )
            )

    def constant(self, aval: Any, value: Any) -> Edge:
        edge = self.new_edge(aval)
        self.constants[edge.id] = value
        return edge


def _autodiff_name(eqn: Any) -> str:
    # custom_jvp functions (jax.nn.relu, logsumexp) carry their name in the inner jaxpr.
    prim = eqn.primitive.name
    if not prim.startswith("custom_"):
        return prim
    if "name" in eqn.params:
        return str(eqn.params["name"])
    inner = eqn.params.get("call_jaxpr")
    debug = getattr(getattr(inner, "jaxpr", None), "debug_info", None)
    return str(getattr(debug, "func_name", None) or prim)


def _name_of(f: Callable[..., Any]) -> str:
    return getattr(f, "__name__", None) or type(f).__name__


def _flat_jaxpr(
    f: Callable[..., Any], args: Sequence[Any], static: Mapping[str, Any]
) -> tuple[Any, list[Any], Any, Any]:
    """The jaxpr of `f` on flattened arguments: `(closed_jaxpr, flat_args, in_tree, out_tree)`."""
    flat, in_tree = jax.tree_util.tree_flatten(tuple(args))
    out_tree_box: list[Any] = []

    def flat_f(*leaves: Any) -> list[Any]:
        result = f(*jax.tree_util.tree_unflatten(in_tree, leaves), **static)
        out_flat, out_tree = jax.tree_util.tree_flatten(result)
        out_tree_box.append(out_tree)
        return out_flat

    closed = jax.make_jaxpr(flat_f)(*flat)
    return closed, flat, in_tree, out_tree_box[-1]


def trace(f: Callable[..., Any], *args: Any, **static: Any) -> Graph:
    """Trace `f` at example arguments into a [`funcgraph.Graph`][].

    **Arguments:**

    - `f`: any function built from nodes and plain JAX code.
    - `args`: example positional arguments (arrays or pytrees of arrays); only their shapes and
      dtypes matter.
    - `static`: keyword arguments passed to `f` unchanged and baked into the graph.

    **Returns:** the graph, its applications in topological order.
    """
    name = _name_of(f)
    try:
        closed, _, in_tree, out_tree = _flat_jaxpr(f, args, static)
    except (jax.errors.TracerBoolConversionError, jax.errors.ConcretizationTypeError) as err:
        raise TraceError(
            f"fg.trace({name}): the function branches in Python on a traced value, so it has "
            "no single graph. Use jax.lax.cond / jax.lax.select / jnp.where for data-dependent "
            f"choices, or pass the deciding value as a static keyword.\n{type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}"
        ) from err
    builder = _Builder()
    env: dict[Any, Edge | Constant] = {}
    for v, c in zip(closed.jaxpr.constvars, closed.consts, strict=True):
        env[v] = builder.constant(v.aval, c)
    inputs = []
    for v in closed.jaxpr.invars:
        edge = builder.new_edge(v.aval)
        env[v] = edge
        inputs.append(edge)
    builder.walk(closed.jaxpr, env, ())
    outputs = tuple(
        Constant(v.val) if isinstance(v, jcore.Literal) else env[v] for v in closed.jaxpr.outvars
    )
    return Graph(
        name=name,
        applications=tuple(builder.apps),
        edges=tuple(builder.edges),
        inputs=tuple(inputs),
        outputs=outputs,
        constants=builder.constants,
        in_tree=in_tree,
        out_tree=out_tree,
    )


# -- gradients through the graph interpreter ----------------------------------------------------


def value_and_grad(
    f: Callable[..., Any],
    argnums: int | Sequence[int] = 0,
    has_aux: bool = False,
) -> Callable[..., Any]:
    """Like `jax.value_and_grad`, computed by the graph's own backward pass.

    `f` is traced at each call's arguments and differentiated application by application with
    the hand-written rules. Wrap the result in `jax.jit` to compile the whole pass.

    **Arguments:**

    - `f`: a function returning a scalar (or `(scalar, aux)` with `has_aux=True`).
    - `argnums`: which positional arguments to differentiate.
    - `has_aux`: whether `f` returns auxiliary data beside the scalar.

    **Returns:** a function returning `(value, grads)` (or `((value, aux), grads)`), with
    `grads` shaped like the selected arguments.
    """
    multiple = not isinstance(argnums, int)
    nums = tuple(argnums) if multiple else (argnums,)

    @functools.wraps(f)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        for i in nums:
            if i >= len(args):
                raise TypeError(
                    f"fg.value_and_grad({_name_of(f)}): argnums={argnums} but only {len(args)} "
                    "positional arguments were given"
                )
            for leaf in jax.tree_util.tree_leaves(args[i]):
                if not jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
                    raise TypeError(
                        f"fg.value_and_grad({_name_of(f)}): argument {i} has dtype "
                        f"{jnp.result_type(leaf)}; gradients need floating inputs"
                    )
        graph = trace(f, *args, **kwargs)
        values = graph.forward(*args)
        flat_out = [o.value if isinstance(o, Constant) else values[o.id] for o in graph.outputs]
        result = jax.tree_util.tree_unflatten(graph.out_tree, flat_out)
        value, aux = result if has_aux else (result, None)
        if jnp.shape(value) != ():
            raise TypeError(
                f"fg.value_and_grad({_name_of(f)}): the function must return a scalar, "
                f"got shape {jnp.shape(value)}"
            )
        seed = jax.tree_util.tree_map(jnp.zeros_like, result) if has_aux else None
        if has_aux:
            seed = (jnp.ones_like(value), seed[1])
        grads = graph.input_gradients(graph.backward(*args, cotangent=seed, values=values))
        picked = tuple(grads[i] for i in nums) if multiple else grads[nums[0]]
        return ((value, aux) if has_aux else value), picked

    return wrapped


def grad(
    f: Callable[..., Any], argnums: int | Sequence[int] = 0, has_aux: bool = False
) -> Callable[..., Any]:
    """Like `jax.grad`, computed by the graph's own backward pass (see `value_and_grad`)."""
    vg = value_and_grad(f, argnums=argnums, has_aux=has_aux)

    @functools.wraps(f)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        (value, g) = vg(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    return wrapped


def reference(f: Callable[..., Any]) -> Callable[..., Any]:
    """`f` with every node replaced by its pure forward (`node.reference`), recursively.

    `jax.grad(fg.reference(f))` is plain autodiff of the same math: the oracle the hand-written
    rules are checked against.
    """

    @functools.wraps(f)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        closed, flat, _, out_tree = _flat_jaxpr(f, args, kwargs)
        out = _eval_reference(closed.jaxpr, closed.consts, flat)
        return jax.tree_util.tree_unflatten(out_tree, out)

    return wrapped


def lump(
    f: Callable[..., Any], *, name: str | None = None, register: bool = False
) -> Node:
    """Lump a function of nodes into one node, as the lecture's "lump nodes together" does.

    The forward is `f`; the backward is derived by the chain rule through `f`'s traced graph
    (each inner node's hand-written rule, `jax.vjp` for plain JAX code). In an outer graph the
    lumped node is one hand application.

    **Arguments:**

    - `f`: the function to lump; its keyword-only arguments become the node's static ones.
    - `name`: the node's name (default: `f.__name__`).
    - `register`: add it to the registry (default `False`).

    **Returns:** a [`funcgraph.Node`][].
    """

    def forward(*args: Any, **static: Any) -> Any:
        return f(*args, **static)

    try:
        forward.__signature__ = inspect.signature(f)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        pass
    forward.__name__ = name or _name_of(f)
    forward.__qualname__ = forward.__name__
    forward.__module__ = getattr(f, "__module__", __name__)
    forward.__doc__ = f.__doc__
    lumped = Node(forward, name=name or _name_of(f), save="inputs", register=register)

    def lumped_backward(*inputs_out_g: Any, **static: Any) -> tuple[Any, ...]:
        *inputs, _out, g = inputs_out_g
        graph = trace(f, *inputs, **static)
        grads = graph.backward(*inputs, cotangent=g)
        # Integer inputs get no gradient; zeros keep the structure the node expects.
        flat = [
            grads[e.id] if e.differentiable else jnp.zeros(e.shape, e.dtype)
            for e in graph.inputs
        ]
        return tuple(jax.tree_util.tree_unflatten(graph.in_tree, flat))

    lumped.backward(lumped_backward)
    # Drawings expand a lumped node into the graph of the function inside it.
    lumped.lumped = f  # type: ignore[attr-defined]
    return lumped
