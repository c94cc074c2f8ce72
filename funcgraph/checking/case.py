r"""One checked call: a node or function, its arguments, and its two backward passes.

A `Case` holds the arguments on the host and runs, at any floating precision, the *hand* pass
(`jax.vjp` of the node or function, which runs the hand-written rules) and the *reference* pass
(autodiff of the pure forward: `node.reference`, or [`funcgraph.reference`][] for functions).
Inputs are flattened into leaves; floating leaves are the differentiable ones, every other leaf
(integers, PRNG keys) is held fixed. Results come back as float64 NumPy arrays so that the
oracles compare them without adding rounding of their own.

Each pass is compiled once per check: the programs are built from a `Structure` (what is
differentiated, never the values) and kept in a `Programs` cache that the cases of one
`fg.check` call share, so a float32 case and a float64 case reuse each other's float64 programs.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from funcgraph.checking.compare import eps, precision, to_numpy
from funcgraph.graph import Constant, reference, trace
from funcgraph.node import Node, node_of_equation

__all__ = [
    "Bundle",
    "Case",
    "Draw",
    "Programs",
    "Structure",
    "leaf_names",
    "positional_names",
]

Pass = Literal["hand", "reference"]
_SMALL = 2**16  # elements (inputs and outputs) up to which programs compile unoptimized
_BATCHED_JVP_SIZE = 2**20  # elements of tangents up to which the jvps share one batched pass
F64 = np.dtype(np.float64)
F32 = np.dtype(np.float32)


def positional_names(fn: Callable[..., Any], n: int) -> list[str]:
    """Names of the first `n` positional parameters of `fn` (`args[i]` for `*args`)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return [f"arg{i}" for i in range(n)]
    names: list[str] = []
    star = None
    for p in params:
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
        elif p.kind == p.VAR_POSITIONAL:
            star = p.name
    names += [f"{star}[{i}]" if star else f"arg{i}" for i in range(len(names), n)]
    return names[:n]


def leaf_names(fn: Callable[..., Any], treedef: Any) -> list[str]:
    """A name for every leaf of the positional arguments: `x`, `params['w']`, `xs[1]`."""
    skeleton = jax.tree_util.tree_unflatten(treedef, list(range(treedef.num_leaves)))
    params = positional_names(fn, len(skeleton))
    names = [""] * treedef.num_leaves
    for path, i in jax.tree_util.tree_flatten_with_path(skeleton)[0]:
        names[i] = params[path[0].idx] + jax.tree_util.keystr(path[1:])
    return names


def _is_float(x: Any) -> bool:
    return bool(jnp.issubdtype(jnp.result_type(x), jnp.floating))


@dataclasses.dataclass(frozen=True)
class Bundle:
    r"""The passes of one seed at one precision, on the host (float64).

    **Attributes:**

    - `hand`: $J^\top u$ through the hand-written rules, per differentiable input.
    - `types`: the shape and dtype each hand-written gradient came back with.
    - `reference`: $J^\top u$ by autodiff of the reference forward.
    - `jvps`: for each input $k$, $J e_k v_k$ (per differentiable output).
    """

    hand: list[np.ndarray]
    types: list[tuple[tuple[int, ...], np.dtype]]
    reference: list[np.ndarray]
    jvps: list[list[np.ndarray]]


@dataclasses.dataclass(frozen=True)
class Draw:
    r"""The random directions of one seed, on the host in the native dtypes.

    **Attributes:**

    - `u`: a cotangent for every differentiable output (what $J^\top u$ is taken of); 1
      for a lone scalar output.
    - `v`: a tangent for every differentiable input (the adjoint test's $J v$).
    - `h`: a direction for every differentiable input (finite differences).
    """

    seed: int
    u: list[np.ndarray]
    v: list[np.ndarray]
    h: list[np.ndarray]


class Structure:
    """What a case differentiates, without its values: the programs are built from this.

    The non-differentiable leaves (`fixed`) are explicit arguments of every program, so a
    program compiled for one case serves every case of the same structure.
    """

    def __init__(
        self,
        f: Callable[..., Any],
        static: Mapping[str, Any],
        treedef: Any,
        diff: Sequence[int],
        out_diff: Sequence[int],
    ) -> None:
        self.f = f
        self.static = dict(static)
        self.treedef = treedef
        self.diff = tuple(diff)
        self.out_diff = tuple(out_diff)
        self.n_leaves = treedef.num_leaves
        if isinstance(f, Node):
            self._hand: Callable[..., Any] = f
            self._ref: Callable[..., Any] = f.reference
        else:
            self._hand = f
            self._ref = reference(f)
        try:
            static_key: Hashable = tuple(sorted(self.static.items()))
            hash(static_key)
        except TypeError:
            static_key = id(self)  # unhashable configuration: no sharing
        self.key = (id(f), static_key, treedef, self.diff, self.out_diff)

    def _leaves(self, fixed: Sequence[Any], diff: Sequence[Any]) -> list[Any]:
        leaves: list[Any] = [None] * self.n_leaves
        it_fixed, it_diff = iter(fixed), iter(diff)
        for i in range(self.n_leaves):
            leaves[i] = next(it_diff) if i in self.diff else next(it_fixed)
        return leaves

    def function(self, which: Pass, fixed: Sequence[Any]) -> Callable[..., list[Any]]:
        """The hand or reference forward, from the differentiable leaves to the differentiable
        output leaves."""
        fn = self._hand if which == "hand" else self._ref

        def f(*diff: Any) -> list[Any]:
            args = jax.tree_util.tree_unflatten(self.treedef, self._leaves(fixed, diff))
            outs = jax.tree_util.tree_leaves(fn(*args, **self.static))
            return [outs[j] for j in self.out_diff]

        return f

    def vjp(self, which: Pass, fixed: Sequence[Any]) -> Callable[..., list[Any]]:
        """`(diff, u) -> J^T u` through the hand-written rules or through autodiff."""
        f = self.function(which, fixed)

        def vjp(diff: Sequence[Any], u: Sequence[Any]) -> list[Any]:
            _, pull = jax.vjp(f, *diff)
            return list(pull(list(u)))

        return vjp

    # -- programs (compiled by `Programs`) -------------------------------------------------------

    def bundle_program(self) -> Callable[..., Any]:
        """`(fixed, diff, u, v) -> (hand J^T u, reference J^T u, [J e_k v_k])`."""

        def run(fixed: list[Any], diff: list[Any], u: list[Any], v: list[Any]) -> Any:
            ref = self.function("reference", fixed)
            n = len(diff)
            if n > 1 and sum(d.size for d in diff) * n <= _BATCHED_JVP_SIZE:
                # One forward-mode pass, batched over the inputs: a smaller program to compile
                # than one pass per input.
                tangents = [
                    jnp.stack([v[k] if j == k else jnp.zeros_like(v[k]) for j in range(n)])
                    for k in range(n)
                ]
                batched = jax.vmap(lambda *t: jax.jvp(ref, diff, list(t))[1])(*tangents)
                jvps = [[o[k] for o in batched] for k in range(n)]
            else:
                jvps = []
                for k in range(n):
                    tangents = [jnp.zeros_like(d) for d in diff]
                    tangents[k] = v[k]
                    jvps.append(jax.jvp(ref, diff, tangents)[1])
            return self.vjp("hand", fixed)(diff, u), self.vjp("reference", fixed)(diff, u), jvps

        return run

    def vjp_program(self, which: Pass) -> Callable[..., Any]:
        """`(fixed, diff, u) -> J^T u`."""
        return lambda fixed, diff, u: self.vjp(which, fixed)(diff, u)

    def jvp_program(self, k: int) -> Callable[..., Any]:
        """`(fixed, diff, v) -> J e_k v`."""

        def run(fixed: list[Any], diff: list[Any], v: Any) -> Any:
            tangents = [jnp.zeros_like(d) for d in diff]
            tangents[k] = v
            return jax.jvp(self.function("reference", fixed), diff, tangents)[1]

        return run

    def vmap_program(self) -> Callable[..., Any]:
        """`(fixed, xs, us) -> J^T u` per example, batched with `jax.vmap`."""
        return lambda fixed, xs, us: jax.vmap(self.vjp("hand", fixed))(xs, us)

    def second_order_program(self) -> Callable[..., Any]:
        r"""`(fixed, diff, u, w) -> (hand, reference)` gradients of $\langle w, J^\top u\rangle$."""

        def run(fixed: list[Any], diff: list[Any], u: list[Any], w: list[Any]) -> Any:
            out = []
            for which in ("hand", "reference"):
                vjp = self.vjp(which, fixed)  # type: ignore[arg-type]
                _, pull = jax.vjp(lambda *d, vjp=vjp: vjp(list(d), u), *diff)
                out.append(list(pull(list(w))))
            return tuple(out)

        return run

    def phi_program(self) -> Callable[..., Any]:
        r"""`(fixed, diff, u, hs, steps)`: for each input $k$ and step $s$ in `steps[k]`,
        $\varphi = \sum\langle u, f(x + s\,h_k e_k)\rangle$ and $\sum|u \odot f|$."""

        def run(fixed: list[Any], diff: list[Any], uu: list[Any], hs: list[Any], steps: Any):
            f = self.function("reference", fixed)
            zero = jnp.zeros((), steps.dtype)
            values, sizes = [], []
            for k, h in enumerate(hs):

                def one(s: jax.Array, k: int = k, h: jax.Array = h) -> Any:
                    args = list(diff)
                    args[k] = diff[k] + s * h
                    terms = [a * b for a, b in zip(uu, f(*args), strict=True)]
                    return (
                        sum((jnp.sum(t) for t in terms), zero),
                        sum((jnp.sum(jnp.abs(t)) for t in terms), zero),
                    )

                biggest = max([h.size, *(x.size for x in uu), 1])
                if steps.shape[1] * biggest <= 2**22:
                    value, size = jax.vmap(one)(steps[k])  # all steps at once: small enough
                else:  # a few steps at a time, so that memory stays bounded
                    batch = max(1, 2**22 // biggest)
                    value, size = jax.lax.map(one, steps[k], batch_size=batch)
                values.append(value)
                sizes.append(size)
            return jnp.stack(values), jnp.stack(sizes)

        return run


class Programs:
    """Compiled programs shared by the cases of one check, keyed by structure and kind.

    It lives for one `fg.check` call only, so a rule redefined between checks is never served
    from a stale compilation.
    """

    def __init__(self) -> None:
        self._jitted: dict[tuple[Any, ...], Callable[..., Any]] = {}

    def get(
        self, structure: Structure, kind: Hashable, make: Callable[[], Any], small: bool = False
    ) -> Any:
        """The jitted program `kind` of `structure`, built with `make` on first use.

        A check runs each program a few times only, so for `small` inputs compiling fast
        matters more than running fast: LLVM's optimizations are skipped (a third of the time
        of a typical check). They change no results, as XLA on CPU does not reassociate
        floating-point arithmetic.
        """
        key = (structure.key, kind, small)
        if key not in self._jitted:
            options = {"xla_backend_optimization_level": 0} if small else None
            self._jitted[key] = jax.jit(make(), compiler_options=options)
        return self._jitted[key]

    def remember(self, structure: Structure, kind: Hashable, make: Callable[[], Any]) -> Any:
        """Any other per-structure object (a traced graph), built with `make` on first use."""
        key = (structure.key, kind)
        if key not in self._jitted:
            self._jitted[key] = make()
        return self._jitted[key]


class Case:
    """A node or function of nodes, called with fixed arguments, ready to differentiate."""

    def __init__(
        self,
        f: Callable[..., Any],
        args: Sequence[Any],
        static: Mapping[str, Any] | None = None,
        programs: Programs | None = None,
    ) -> None:
        self.f = f
        self.static = dict(static or {})
        self.programs = programs or Programs()
        if isinstance(f, Node):
            self.node: Node | None = f
            self.subject: Literal["node", "function"] = "node"
            self.name = f.name
            signature_of: Callable[..., Any] = f.reference
        else:
            self.node = None
            self.subject = "function"
            self.name = getattr(f, "__name__", None) or type(f).__name__
            signature_of = f
        # Leaves as JAX sees them in the caller's configuration (a NumPy float64 array is float32
        # unless x64 is on), then floating ones kept on the host.
        leaves, self.treedef = jax.tree_util.tree_flatten(tuple(args))
        self.leaves: list[Any] = []
        for leaf in leaves:
            x = leaf if isinstance(leaf, jax.Array) else jnp.asarray(leaf)
            self.leaves.append(np.asarray(jax.device_get(x)) if _is_float(x) else x)
        self.names = leaf_names(signature_of, self.treedef)
        self.diff = [i for i, x in enumerate(self.leaves) if isinstance(x, np.ndarray)]
        self.fixed = [x for i, x in enumerate(self.leaves) if i not in self.diff]
        self.dtypes = [self.leaves[i].dtype for i in self.diff]
        self.eps = max((eps(d) for d in self.dtypes), default=eps(np.float32))
        # The native run is float64 exactly when some input is.
        self.native_precision = F64 if F64 in self.dtypes else F32
        probe = Structure(f, self.static, self.treedef, self.diff, [])
        with precision(self.native_precision):
            hand = probe._hand

            def all_outputs(*diff: Any) -> list[Any]:
                leaves = probe._leaves(self.fixed, diff)
                args = jax.tree_util.tree_unflatten(self.treedef, leaves)
                return jax.tree_util.tree_leaves(hand(*args, **self.static))

            out = jax.eval_shape(all_outputs, *self._device(None))
        self.out_leaves = list(out)
        self.out_diff = [j for j, o in enumerate(out) if _is_float(o)]
        self.structure = Structure(f, self.static, self.treedef, self.diff, self.out_diff)
        self.size = sum(int(getattr(x, "size", 1)) for x in self.leaves) + sum(
            int(np.prod(o.shape)) for o in self.out_leaves
        )
        # Shapes and dtypes of every leaf: programs closing over a traced graph depend on them.
        self.shapes = tuple((tuple(jnp.shape(x)), str(jnp.result_type(x))) for x in self.leaves)

    @property
    def input_names(self) -> list[str]:
        """Names of the differentiable leaves."""
        return [self.names[i] for i in self.diff]

    # -- precisions ----------------------------------------------------------------------------

    def precision_of(self, dtype: np.dtype | None) -> np.dtype:
        """The x64 setting a run at `dtype` (`None`: native) needs."""
        return self.native_precision if dtype is None else np.dtype(dtype)

    def cast(self, arrays: Sequence[np.ndarray], dtype: np.dtype | None) -> list[jax.Array]:
        """Host arrays as device arrays at `dtype` (`None`: as they are)."""
        return [jnp.asarray(a if dtype is None else a.astype(dtype)) for a in arrays]

    def _device(self, dtype: np.dtype | None) -> list[jax.Array]:
        return self.cast([self.leaves[i] for i in self.diff], dtype)

    def inputs(self, dtype: np.dtype | None) -> list[jax.Array]:
        """The differentiable inputs at `dtype` (call inside `precision(...)`)."""
        return self._device(dtype)

    def args(self, dtype: np.dtype | None) -> tuple[Any, ...]:
        """The positional arguments at `dtype` (call inside `precision(...)`)."""
        leaves = self.structure._leaves(self.fixed, self._device(dtype))
        return tuple(jax.tree_util.tree_unflatten(self.treedef, leaves))

    @property
    def small(self) -> bool:
        """Whether the case is small enough to compile its programs unoptimized."""
        return self.size <= _SMALL

    def _program(self, kind: Hashable, make: Callable[[], Any]) -> Any:
        return self.programs.get(self.structure, kind, make, small=self.small)

    # -- the passes, returned on the host ----------------------------------------------------------

    def bundle(
        self,
        u: Sequence[np.ndarray],
        v: Sequence[np.ndarray],
        dtype: np.dtype | None = None,
        inputs: Sequence[np.ndarray] | None = None,
    ) -> Bundle:
        r"""Every pass one seed needs, compiled as one program: $J^\top u$ through the
        hand-written rules and by autodiff, and $J e_k v_k$ for every input $k$ (at `inputs`,
        default the case's own)."""
        with precision(self.precision_of(dtype)):
            diff = self._device(dtype) if inputs is None else self.cast(inputs, dtype)
            run = self._program("bundle", self.structure.bundle_program)
            hand, ref, jvps = run(self.fixed, diff, self.cast(u, dtype), self.cast(v, dtype))
            return Bundle(
                [to_numpy(g) for g in hand],
                [(tuple(jnp.shape(g)), np.dtype(jnp.result_type(g))) for g in hand],
                [to_numpy(g) for g in ref],
                [[to_numpy(o) for o in out] for out in jvps],
            )

    def vjp(
        self,
        which: Pass,
        u: Sequence[np.ndarray],
        dtype: np.dtype | None = None,
        inputs: Sequence[np.ndarray] | None = None,
    ) -> Any:
        r"""$J^\top u$ for every differentiable input (at `inputs`, default the case's own), as
        `(float64 host arrays, [(shape, dtype)])`."""
        with precision(self.precision_of(dtype)):
            diff = self._device(dtype) if inputs is None else self.cast(inputs, dtype)
            run = self._program(("vjp", which), lambda: self.structure.vjp_program(which))
            try:
                grads = run(self.fixed, diff, self.cast(u, dtype))
            except Exception:
                if which == "hand":
                    raise
                # Some forwards only differentiate eagerly (a traced reduce_window init value);
                # the oracle is as good computed op by op.
                grads = self.structure.vjp(which, self.fixed)(diff, self.cast(u, dtype))
            return [to_numpy(g) for g in grads], [
                (tuple(jnp.shape(g)), np.dtype(jnp.result_type(g))) for g in grads
            ]

    def eager_vjp(self, u: Sequence[np.ndarray], dtype: np.dtype | None = None) -> list[np.ndarray]:
        r"""$J^\top u$ through the hand-written rules, op by op without `jax.jit`."""
        with precision(self.precision_of(dtype)):
            vjp = self.structure.vjp("hand", self.fixed)
            return [to_numpy(g) for g in vjp(self._device(dtype), self.cast(u, dtype))]

    def jvp(self, k: int, v: np.ndarray, dtype: np.dtype | None = None) -> list[np.ndarray]:
        """$J e_k v$: forward-mode autodiff of the reference along input `k` only."""
        with precision(self.precision_of(dtype)):
            run = self._program(("jvp", k), lambda: self.structure.jvp_program(k))
            diff, tangent = self._device(dtype), self.cast([v], dtype)[0]
            try:
                out = run(self.fixed, diff, tangent)
            except Exception:  # as for `vjp`: try op by op
                out = self.structure.jvp_program(k)(self.fixed, diff, tangent)
            return [to_numpy(o) for o in out]

    def vmap_vjp(
        self, xs: Sequence[np.ndarray], us: Sequence[np.ndarray], dtype: np.dtype | None = None
    ) -> list[np.ndarray]:
        r"""$J^\top u$ for a batch of inputs and cotangents (axis 0), under `jax.vmap`."""
        with precision(self.precision_of(dtype)):
            run = self._program("vmap", self.structure.vmap_program)
            return [
                to_numpy(g) for g in run(self.fixed, self.cast(xs, dtype), self.cast(us, dtype))
            ]

    def second_order(
        self, u: Sequence[np.ndarray], w: Sequence[np.ndarray], dtype: np.dtype | None = None
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        r"""The gradient of $\langle w, J^\top u\rangle$, differentiating through the
        hand-written rules and through autodiff."""
        with precision(self.precision_of(dtype)):
            run = self._program("second-order", self.structure.second_order_program)
            hand, ref = run(
                self.fixed, self._device(dtype), self.cast(u, dtype), self.cast(w, dtype)
            )
            return [to_numpy(g) for g in hand], [to_numpy(g) for g in ref]

    def phi(
        self, directions: Sequence[np.ndarray], steps: np.ndarray, u: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        r"""In float64, for each input $k$ and step $s$ in `steps[k]`:
        $\varphi = \sum \langle u, f(x + s\,h_k e_k)\rangle$ (input $k$ moved along
        `directions[k]`), and $\sum |u \odot f|$, the size its rounding scales with.

        **Returns:** two arrays shaped like `steps`.
        """
        with precision(F64):
            run = self._program("phi", self.structure.phi_program)
            values, sizes = run(
                self.fixed,
                self._device(F64),
                self.cast(u, F64),
                [jnp.asarray(h, F64) for h in directions],
                jnp.asarray(steps, F64),
            )
            return to_numpy(values), to_numpy(sizes)

    # -- random directions ------------------------------------------------------------------------

    def draw(self, seed: int) -> Draw:
        """Seeded random directions: standard normal, in the native dtypes."""
        rng = np.random.default_rng(seed)
        # A scalar output (a loss) is seeded with 1, so that blame shows its true gradients.
        u = [
            (
                rng.standard_normal(self.out_leaves[j].shape)
                if self.out_leaves[j].shape or len(self.out_diff) > 1
                else np.ones(())
            ).astype(self.out_leaves[j].dtype)
            for j in self.out_diff
        ]
        v = [
            rng.standard_normal(self.leaves[i].shape).astype(self.leaves[i].dtype)
            for i in self.diff
        ]
        h = [rng.standard_normal(self.leaves[i].shape) for i in self.diff]
        return Draw(seed, u, v, h)

    # -- kinks ------------------------------------------------------------------------------------

    def kink_step(self, k: int, h: np.ndarray) -> tuple[float, str]:
        r"""The largest $\varepsilon$ for which $x_k + \varepsilon h$ stays clear of every
        declared kink, and which node's kink limits it (`inf, ""` when none is declared).

        For a node, `node.kinks` gives the distance in the inputs' max-norm. In a function, each
        node's distance is divided by how fast its inputs move along $h$ (forward-mode autodiff
        of the reference), a first-order estimate of when they reach their kink.
        """
        if self.node is not None:
            if self.node.kinks is None:
                return float("inf"), ""
            with precision(F64):
                dist = float(self.node.kinks(*self.args(F64), **self.static))
            return dist / max(float(np.max(np.abs(h))), 1e-300), self.node.name
        graph = self.programs.remember(
            self.structure, ("graph", "float64", self.shapes), self._trace64
        )
        kinked = [a for a in graph.hand_applications if a.node is not None and a.node.kinks]
        if not kinked:
            return float("inf"), ""
        needed = tuple(sorted({e.id for a in kinked for e in a.edge_inputs}))
        with precision(F64):
            run = self._program(
                ("kinks", needed, self.shapes), lambda: self._edges_program(graph, needed)
            )
            diff = self._device(F64)
            tangents = [jnp.zeros_like(d) for d in diff]
            tangents[k] = jnp.asarray(h, F64)
            primal, tangent = run(self.fixed, diff, tangents)
            value_of = dict(zip(needed, primal, strict=True))
            speed_of = {
                i: float(jnp.max(jnp.abs(t))) if t.size and _is_float(t) else 0.0
                for i, t in zip(needed, tangent, strict=True)
            }
            best, who = float("inf"), ""
            for app in kinked:
                it = iter(value_of[e.id] for e in app.edge_inputs)
                flat = [a.value if isinstance(a, Constant) else next(it) for a in app.inputs]
                treedef = getattr(node_of_equation(app.equation), "treedef", None)
                node_args = jax.tree_util.tree_unflatten(treedef, flat) if treedef else flat
                dist = float(app.node.kinks(*node_args, **dict(app.static)))
                speed = max((speed_of[e.id] for e in app.edge_inputs), default=0.0)
                step = dist / speed if speed > 0 else float("inf")
                if step < best:
                    best, who = step, f"{app.name}[{app.index}]"
            return best, who

    def _trace64(self) -> Any:
        # Traced in float64 so that kinks are located without rounding.
        with precision(F64):
            return trace(self.f, *self.args(F64), **self.static)

    def _edges_program(self, graph: Any, needed: tuple[int, ...]) -> Callable[..., Any]:
        """`(fixed, diff, tangents) ->` values and tangents of the edges `needed`."""

        def run(fixed: list[Any], diff: list[Any], tangents: list[Any]) -> Any:
            def edges(*d: Any) -> list[Any]:
                full = self.structure._leaves(fixed, d)
                values: dict[int, Any] = dict(graph.constants)
                for e, x in zip(graph.inputs, full, strict=True):
                    values[e.id] = x
                for app in graph.applications:
                    outs = app.apply_reference(*(values[e.id] for e in app.edge_inputs))
                    for e, o in zip(app.outputs, outs, strict=True):
                        values[e.id] = o
                return [values[i] for i in needed]

            return jax.jvp(edges, diff, tangents)

        return run
