"""Drawing the computational diagram: the lecture's circuit picture, made from a traced graph.

Gates are the applications of the graph; each wire carries its forward value above the line
(green) and the gradient of the output below it (red), as in the lecture. Hand-written nodes are
filled boxes, autodiff primitives dashed ellipses, and a jitted inner function folds into one
double-bordered box unless `expand=True` (which also opens lumped nodes). Given a failed
`fg.check` report, the guilty gate and the wire into its wrong input turn red.

`fg.draw` returns a [`funcgraph.Drawing`][]: DOT source always, SVG and PNG through a Graphviz
renderer (a system `dot`, or `graphviz-pure` from PyPI), shown inline by Jupyter.
"""

from __future__ import annotations

import dataclasses
import html
import inspect
import os
import shutil
import subprocess
import sys
import sysconfig
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import jax
import numpy as np

from funcgraph.errors import DrawError
from funcgraph.graph import Application, Constant, Edge, Graph, trace
from funcgraph.node import Node, node_of_equation

__all__ = ["Drawing", "cli_draw", "draw", "renderer"]

# Lecture colours: value green above the wire, gradient red below it.
VALUE_COLOR = "#1a7f37"
GRADIENT_COLOR = "#cf222e"
CULPRIT_COLOR = "#d1242f"
_CULPRIT_FILL = "#ffe3e3"
_HAND_FILL = "#dbe9ff"
_HAND_LINE = "#0969da"
_AUTODIFF_LINE = "#6e7781"
_CALL_FILL = "#f6f8fa"
_TYPE_COLOR = "#57606a"
_FONT = "Helvetica"

_FORMATS = {".svg": "svg", ".png": "png", ".dot": "dot", ".gv": "dot"}
_HIDDEN_PARAMS = frozenset(
    {
        "sharding",
        "out_sharding",
        "precision",
        "preferred_element_type",
        "weak_type",
        "accumulation_type",
        "out_dtype",
        "algorithm",
        "transpose_algorithm",
    }
)
_OPERATORS = {"add": "+", "sub": "-", "mul": "×", "div": "÷", "pow": "^"}

WireKey = tuple[str, int]  # (graph prefix, edge id): lumps expanded in place get their own prefix


# -- labels ---------------------------------------------------------------------------------------


def _cap(text: str, limit: int) -> str:
    """Shorten `text` to at most `limit` characters, marking the cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 1)] + "…"


def _number(x: Any) -> str:
    """A number with 4 significant digits (`21`, `10.5`, `0.7311`, `-0.1966`, `1.5e+04`)."""
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (complex, np.complexfloating)):
        return f"{complex(x):.4g}"
    x = float(x)
    if np.isnan(x):
        return "nan"
    text = f"{x:.4g}"
    return "0" if text == "-0" else text


_SHORT_DTYPES = {"float": "f", "int": "i", "uint": "u", "complex": "c", "bfloat": "bf"}


def _dtype_name(dtype: np.dtype) -> str:
    """`float32` -> `f32`, `int8` -> `i8`, `bfloat16` -> `bf16`, `bool` -> `bool`."""
    name = np.dtype(dtype).name
    stem = name.rstrip("0123456789")
    return _SHORT_DTYPES.get(stem, stem) + name[len(stem) :]


def type_label(shape: Sequence[int], dtype: np.dtype) -> str:
    """The compact type of a wire: `f32[3,4]`, `f32[]`."""
    return f"{_dtype_name(dtype)}[{','.join(str(d) for d in shape)}]"


def summary(value: Any, small: int = 4) -> str:
    """A short text for an array value.

    Scalars show their number, arrays of at most `small` elements every element, larger ones
    $\\|x\\|_2$ and the range: `|x|=3.162 [-1, 2]`.
    """
    a = np.asarray(value)
    if a.ndim == 0:
        return _number(a.item())
    if a.size == 0:
        return "(empty)"
    if a.size <= small:
        return _nested(a.tolist())
    if a.dtype == np.bool_:
        return f"{int(a.sum())}/{a.size} true"
    if np.iscomplexobj(a):
        a = np.abs(a)
    if np.issubdtype(a.dtype, np.integer):
        return f"[{_number(a.min())}, {_number(a.max())}]"
    real = a.astype(np.float64)
    norm = float(np.sqrt(np.sum(real * real)))
    return f"|x|={_number(norm)} [{_number(real.min())}, {_number(real.max())}]"


def _nested(x: Any) -> str:
    if isinstance(x, list):
        return "[" + ", ".join(_nested(v) for v in x) + "]"
    return _number(x)


def _short(value: Any, limit: int) -> str:
    """A static keyword's or primitive parameter's value, briefly."""
    if isinstance(value, (bool, int, float, complex, np.generic)):
        return _number(value)
    if isinstance(value, np.dtype):
        return _dtype_name(value)
    if isinstance(value, np.ndarray) or hasattr(value, "shape"):
        return summary(value)
    if isinstance(value, tuple) and all(isinstance(v, (int, np.integer)) for v in value):
        return "(" + ",".join(str(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return _cap(str(getattr(value, "__name__", value)), limit)


def _h(text: str) -> str:
    """Escape text for an HTML-like DOT label."""
    return html.escape(text, quote=False)


def _dot_string(text: str) -> str:
    """Escape text for a double-quoted DOT string."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


# -- the scene: gates and wires, before DOT ------------------------------------------------------


@dataclasses.dataclass
class _Wire:
    shape: tuple[int, ...]
    dtype: np.dtype
    value: Any = None
    grad: Any = None


@dataclasses.dataclass
class _Gate:
    title: str
    detail: str
    kind: Literal["hand", "autodiff", "call"]
    inputs: list[WireKey | Constant]
    outputs: list[WireKey]
    clusters: tuple[tuple[str, str], ...]  # (id, title) of the inlined calls, outermost first
    apps: frozenset[int]  # indices of the top-level applications drawn by this gate
    app: Application | None = None
    culprit_inputs: frozenset[int] = frozenset()  # positions in `inputs` of wrong gradients


@dataclasses.dataclass
class _Scene:
    wires: dict[WireKey, _Wire] = dataclasses.field(default_factory=dict)
    gates: list[_Gate] = dataclasses.field(default_factory=list)
    sources: list[tuple[WireKey, str]] = dataclasses.field(default_factory=list)
    sinks: list[tuple[WireKey | Constant, str]] = dataclasses.field(default_factory=list)
    constants: dict[WireKey, Any] = dataclasses.field(default_factory=dict)
    aliases: dict[WireKey, WireKey] = dataclasses.field(default_factory=dict)
    culprit_clusters: set[str] = dataclasses.field(default_factory=set)

    def resolve(self, key: WireKey) -> WireKey:
        while key in self.aliases:
            key = self.aliases[key]
        return key


def _arg_names(f: Any, n_args: int) -> list[str]:
    """Names of the positional arguments, from the signature where there is one."""
    fn = f.reference if isinstance(f, Node) else f
    params: list[str] = []
    var: str | None = None
    try:
        for p in inspect.signature(fn).parameters.values():
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                params.append(p.name)
            elif p.kind == p.VAR_POSITIONAL:
                var = p.name
    except (TypeError, ValueError):
        pass
    names = []
    for i in range(n_args):
        if i < len(params):
            names.append(params[i])
        elif var is not None:
            names.append(f"{var}[{i - len(params)}]")
        else:
            names.append(f"x{i}")
    return names


def _leaf_names(tree: Any, top: Sequence[str] | None) -> list[str]:
    """`w`, `params['b']`, ... for the leaves of a tuple of arguments (or of an output)."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    out = []
    for path, _ in leaves:
        if top is not None and path and isinstance(path[0], jax.tree_util.SequenceKey):
            out.append(top[path[0].idx] + jax.tree_util.keystr(tuple(path[1:])))
        else:
            out.append(jax.tree_util.keystr(tuple(path)))
    return out


def _culprits(report: Any, graph: Graph) -> dict[int, set[str]]:
    """`{application index: names of inputs whose gradient is wrong}` from a check report.

    Blame rows name their application; a row about a node checked on its own marks every
    application of that node.
    """
    if report is None:
        return {}
    rows = getattr(report, "culprits", None)
    if rows is None:
        rows = [r for r in getattr(report, "rows", ()) if not getattr(r, "ok", True)]
    out: dict[int, set[str]] = {}
    for row in rows:
        index = getattr(row, "application", None)
        if index is not None:
            indices = [int(index)]
        elif getattr(row, "subject", "node") == "function":
            continue
        else:
            indices = [a.index for a in graph.hand_applications if a.name == row.node]
        for i in indices:
            names = out.setdefault(i, set())
            if getattr(row, "input", None):
                names.add(str(row.input))
    return out


def _input_leaves(app: Application) -> list[tuple[str, range]]:
    """For a hand application: each node input's name and its positions in `app.inputs`."""
    call = node_of_equation(app.equation) if app.kind == "hand" else None
    if call is None or call.treedef is None:
        return []
    per_arg = [t.num_leaves for t in call.treedef.children()]
    names = call.node._positional_names(len(per_arg))
    out, start = [], 0
    for arg, n in zip(names, per_arg, strict=False):
        out.append((arg, range(start, start + n)))
        start += n
    return out


def _input_positions(app: Application, names: set[str]) -> frozenset[int]:
    """Positions in `app.inputs` of the leaves of the node inputs called `names`."""
    hits: set[int] = set()
    for arg, leaves in _input_leaves(app):
        if any(name == arg or name.startswith((f"{arg}[", f"{arg}.")) for name in names):
            hits.update(leaves)
    return frozenset(hits)


def _gate_label(app: Application, limit: int) -> tuple[str, str]:
    """Title and detail line of an application's gate."""
    consts = [a for a in app.inputs if isinstance(a, Constant)]
    if app.kind == "hand":
        # Constant inputs are shown by their input's name, like the static keywords: "y=-1".
        leaf_names = {i: arg for arg, leaves in _input_leaves(app) for i in leaves}
        parts = [
            f"{leaf_names.get(i, 'const')}={_short(a.value, limit)}"
            for i, a in enumerate(app.inputs)
            if isinstance(a, Constant)
        ]
        parts += [f"{k}={_short(v, limit)}" for k, v in app.static.items()]
        return _cap(app.name, limit), _cap(", ".join(parts), limit)
    name = app.name
    if name in _OPERATORS and len(app.inputs) == 2 and len(consts) == 1:
        c = _short(consts[0].value, limit)
        op = _OPERATORS[name]
        # The CS231n picture's "+1", "×-1" gates; a constant on the left keeps its side.
        title = f"{op}{c}" if isinstance(app.inputs[1], Constant) else f"{c}{op}·"
        return _cap(title, limit), ""
    if name == "integer_pow":
        return f"^{app.equation.params['y']}", ""
    if name == "slice":
        return _cap(_slice_text(app, ()), limit), ""
    parts = [
        f"{k}={_short(v, limit)}"
        for k, v in app.equation.params.items()
        if k not in _HIDDEN_PARAMS
        and v is not None
        and isinstance(v, (bool, int, float, np.dtype, tuple))
        and not (isinstance(v, tuple) and len(v) > 4)
    ]
    parts += [f"const {_short(c.value, limit)}" for c in consts]
    return _cap(name, limit), _cap(", ".join(parts[:2]), limit)


def _slice_text(app: Application, squeezed: tuple[int, ...]) -> str:
    params = app.equation.params
    strides = params.get("strides") or (1,) * len(params["start_indices"])
    dims = []
    for d, (lo, hi, st) in enumerate(
        zip(params["start_indices"], params["limit_indices"], strides, strict=True)
    ):
        if d in squeezed:
            dims.append(str(lo))
        else:
            dims.append(f"{lo}:{hi}" + (f":{st}" if st != 1 else ""))
    return "[" + ", ".join(dims) + "]"


def _add_graph(
    scene: _Scene,
    graph: Graph,
    values: Mapping[int, Any] | None,
    grads: Mapping[int, Any] | None,
    prefix: str,
    clusters: tuple[tuple[str, str], ...],
    top: int | None,
    culprits: Mapping[int, set[str]],
    expand: bool,
    limit: int,
) -> None:
    """Add `graph`'s wires and gates to the scene (recursing into lumps when expanding)."""

    def key(edge: Edge) -> WireKey:
        return (prefix, edge.id)

    for edge in graph.edges:
        if key(edge) in scene.aliases:
            continue
        scene.wires[key(edge)] = _Wire(
            edge.shape,
            edge.dtype,
            None if values is None else np.asarray(values[edge.id]),
            None if grads is None or edge.id not in grads else np.asarray(grads[edge.id]),
        )
    for edge_id, value in graph.constants.items():
        scene.constants[(prefix, edge_id)] = value

    for app in graph.applications:
        top_index = app.index if top is None else top
        inputs: list[WireKey | Constant] = [
            a if isinstance(a, Constant) else key(a) for a in app.inputs
        ]
        outputs = [key(e) for e in app.outputs]
        app_clusters = clusters + tuple(
            (f"{prefix}c{cid}", name) for cid, name in zip(app.calls, app.scope, strict=False)
        )
        inner_fn = getattr(app.node, "lumped", None) if app.node is not None else None
        call = node_of_equation(app.equation) if app.kind == "hand" else None
        if expand and inner_fn is not None and call is not None and call.treedef is not None:
            _add_lump(scene, app, inner_fn, call.treedef, inputs, outputs, values, grads,
                      prefix, app_clusters, top_index, culprits, limit)
            continue
        if (
            app.primitive in ("convert_element_type", "copy", "copy_p")
            and len(app.edge_inputs) == 1
            and app.edge_inputs[0].dtype == app.outputs[0].dtype
        ):
            # A weak-type cast changes nothing a reader cares about: draw one wire through it.
            scene.aliases[outputs[0]] = key(app.edge_inputs[0])
            scene.wires.pop(outputs[0], None)
            continue
        title, detail = _gate_label(app, limit)
        wrong = culprits.get(top_index) if top is None else None
        scene.gates.append(
            _Gate(
                title=title,
                detail=detail,
                kind=app.kind,
                inputs=inputs,
                outputs=outputs,
                clusters=app_clusters,
                apps=frozenset({top_index}) if top is None else frozenset(),
                app=app,
                culprit_inputs=_input_positions(app, wrong) if wrong else frozenset(),
            )
        )


def _add_lump(
    scene: _Scene,
    app: Application,
    inner_fn: Callable[..., Any],
    treedef: Any,
    inputs: list[WireKey | Constant],
    outputs: list[WireKey],
    values: Mapping[int, Any] | None,
    grads: Mapping[int, Any] | None,
    prefix: str,
    clusters: tuple[tuple[str, str], ...],
    top: int,
    culprits: Mapping[int, set[str]],
    limit: int,
) -> None:
    """Draw a lumped node as the graph of the function inside it, in a cluster of its own."""

    def flat_fn(*flat: Any) -> Any:
        return inner_fn(*jax.tree_util.tree_unflatten(treedef, flat), **app.static)

    flat_fn.__name__ = app.name
    if values is not None:
        args = [a.value if isinstance(a, Constant) else values[a.id] for a in app.inputs]
    else:
        args = [
            a.value if isinstance(a, Constant) else jax.ShapeDtypeStruct(a.shape, a.dtype)
            for a in app.inputs
        ]
    inner = trace(flat_fn, *args)
    inner_values = inner.forward(*args) if values is not None else None
    inner_grads = None
    if inner_values is not None and grads is not None:
        seed = [
            grads[e.id] if e.differentiable and e.id in grads else np.zeros(e.shape, e.dtype)
            for e in app.outputs
        ]
        cotangent = jax.tree_util.tree_unflatten(inner.out_tree, seed)
        inner_grads = inner.backward(*args, cotangent=cotangent, values=inner_values)
    inner_prefix = f"{prefix}l{app.index}."
    for edge, outer in zip(inner.inputs, inputs, strict=True):
        if isinstance(outer, Constant):
            scene.constants[(inner_prefix, edge.id)] = outer.value
        else:
            scene.aliases[(inner_prefix, edge.id)] = outer
    cluster_id = f"{prefix}l{app.index}"
    if top in culprits:
        scene.culprit_clusters.add(cluster_id)
    _add_graph(
        scene, inner, inner_values, inner_grads, inner_prefix,
        (*clusters, (cluster_id, f"lump {_cap(app.name, limit)}")), top, culprits, True, limit,
    )
    for outer_key, out in zip(outputs, inner.outputs, strict=True):
        scene.wires.pop(outer_key, None)
        if isinstance(out, Constant):
            scene.constants[outer_key] = out.value
        else:
            scene.aliases[outer_key] = (inner_prefix, out.id)


def _fuse_indexing(scene: _Scene) -> None:
    """Draw `w[0]` (a slice, then a squeeze of its size-1 axes) as one gate."""
    uses: dict[WireKey, int] = {}
    for gate in scene.gates:
        for k in gate.inputs:
            if not isinstance(k, Constant):
                uses[scene.resolve(k)] = uses.get(scene.resolve(k), 0) + 1
    for k, _ in scene.sinks:
        if not isinstance(k, Constant):
            uses[scene.resolve(k)] = uses.get(scene.resolve(k), 0) + 1
    producer = {scene.resolve(o): g for g in scene.gates for o in g.outputs}
    fused: list[_Gate] = []
    for gate in scene.gates:
        app = gate.app
        if app is not None and app.primitive == "squeeze" and len(gate.inputs) == 1:
            src = gate.inputs[0]
            prev = None if isinstance(src, Constant) else producer.get(scene.resolve(src))
            if (
                prev is not None
                and prev.app is not None
                and prev.app.primitive == "slice"
                and prev.clusters == gate.clusters
                and uses.get(scene.resolve(src), 0) == 1
                and fused
                and fused[-1] is prev
            ):
                dims = tuple(app.equation.params["dimensions"])
                fused[-1] = dataclasses.replace(
                    prev,
                    title=_slice_text(prev.app, dims),
                    outputs=gate.outputs,
                    apps=prev.apps | gate.apps,
                )
                scene.wires.pop(scene.resolve(src), None)
                continue
        fused.append(gate)
    scene.gates = fused


def _collapse(scene: _Scene, limit: int) -> None:
    """Fold each outermost inlined call into one gate."""
    groups: dict[str, list[_Gate]] = {}
    order: list[_Gate | str] = []
    for gate in scene.gates:
        if not gate.clusters:
            order.append(gate)
            continue
        cid = gate.clusters[0][0]
        if cid not in groups:
            groups[cid] = []
            order.append(cid)
        groups[cid].append(gate)
    # Who reads each wire: a group's id, "" for a gate outside every group, "sink" for outputs.
    readers: dict[WireKey, set[str]] = {}
    for gate in scene.gates:
        owner = gate.clusters[0][0] if gate.clusters else ""
        for k in gate.inputs:
            if not isinstance(k, Constant):
                readers.setdefault(scene.resolve(k), set()).add(owner)
    for k, _ in scene.sinks:
        if not isinstance(k, Constant):
            readers.setdefault(scene.resolve(k), set()).add("sink")
    gates: list[_Gate] = []
    for item in order:
        if isinstance(item, _Gate):
            gates.append(item)
            continue
        members = groups[item]
        produced = {scene.resolve(o) for g in members for o in g.outputs}
        ins: list[WireKey] = []
        wrong: set[int] = set()
        for g in members:
            for pos, k in enumerate(g.inputs):
                if isinstance(k, Constant) or scene.resolve(k) in produced:
                    continue
                r = scene.resolve(k)
                if r not in ins:
                    ins.append(r)
                if pos in g.culprit_inputs:
                    wrong.add(ins.index(r))
        outs = [
            o
            for o in dict.fromkeys(scene.resolve(o) for g in members for o in g.outputs)
            if readers.get(o, set()) - {item}
        ]
        n_hand = sum(g.kind == "hand" for g in members)
        gates.append(
            _Gate(
                title=_cap(members[0].clusters[0][1], limit),
                detail=f"jit: {len(members)} gates, {n_hand} hand",
                kind="call",
                inputs=list(ins),
                outputs=outs,
                clusters=(),
                apps=frozenset().union(*(g.apps for g in members)),
                culprit_inputs=frozenset(wrong),
            )
        )
    scene.gates = gates


# -- DOT -----------------------------------------------------------------------------------------


def _wire_label(wire: _Wire, show_type: bool, small: int) -> str:
    """A wire drawn as the lecture does: value above the line, gradient below."""
    rows = []
    if show_type or wire.value is None:
        rows.append(
            f'<tr><td><font color="{_TYPE_COLOR}" point-size="9">'
            f"{_h(type_label(wire.shape, wire.dtype))}</font></td></tr>"
        )
    if wire.value is not None:
        rows.append(
            f'<tr><td><font color="{VALUE_COLOR}">{_h(summary(wire.value, small))}</font></td></tr>'
        )
    rows.append('<tr><td port="m" height="1" cellpadding="0" bgcolor="black"></td></tr>')
    if wire.grad is not None:
        rows.append(
            f'<tr><td><font color="{GRADIENT_COLOR}">{_h(summary(wire.grad, small))}'
            "</font></td></tr>"
        )
    return (
        '<<table border="0" cellborder="0" cellspacing="0" cellpadding="1">'
        + "".join(rows)
        + "</table>>"
    )


def _gate_attrs(gate: _Gate, culprit: bool) -> dict[str, str]:
    title = f"<b>{_h(gate.title)}</b>" if gate.kind != "autodiff" else _h(gate.title)
    lines = [title]
    if gate.detail:
        lines.append(f'<font point-size="9">{_h(gate.detail)}</font>')
    if culprit:
        lines.append(f'<font color="{CULPRIT_COLOR}" point-size="9"><b>wrong backward</b></font>')
    attrs = {"label": "<" + "<br/>".join(lines) + ">"}
    if gate.kind == "hand":
        attrs |= {"shape": "box", "style": "filled,rounded", "fillcolor": _HAND_FILL,
                  "color": _HAND_LINE}
    elif gate.kind == "call":
        attrs |= {"shape": "box", "style": "filled,rounded", "fillcolor": _CALL_FILL,
                  "peripheries": "2", "color": _HAND_LINE}
    else:
        attrs |= {"shape": "ellipse", "style": "dashed", "color": _AUTODIFF_LINE,
                  "fontcolor": "#24292f", "margin": "0.04,0.02"}
    if culprit:
        attrs |= {"color": CULPRIT_COLOR, "fillcolor": _CULPRIT_FILL, "penwidth": "2.5"}
        if gate.kind == "autodiff":
            attrs["style"] = "dashed,filled"
    return attrs


def _attrs(attrs: Mapping[str, str]) -> str:
    parts = []
    for k, v in attrs.items():
        if v.startswith("<") and v.endswith(">"):
            parts.append(f"{k}={v}")
        else:
            parts.append(f'{k}="{v}"')
    return "[" + ", ".join(parts) + "]"


def _legend(scene: _Scene, name: str, note: str, reported: bool, has_values: bool) -> str:
    cells = [f"<td><b>{_h(name)}</b></td>"]
    if any(g.kind == "hand" for g in scene.gates):
        cells.append(
            f'<td border="1" style="rounded" bgcolor="{_HAND_FILL}" color="{_HAND_LINE}">'
            "hand-written rule</td>"
        )
    if any(g.kind == "autodiff" for g in scene.gates):
        cells.append(f'<td border="1" style="dashed" color="{_AUTODIFF_LINE}">autodiff</td>')
    if any(g.kind == "call" for g in scene.gates):
        cells.append(
            f'<td border="1" style="rounded" bgcolor="{_CALL_FILL}" color="{_HAND_LINE}">'
            "jit call (expand=True opens it)</td>"
        )
    if has_values:
        cells.append(f'<td><font color="{VALUE_COLOR}">value</font></td>')
        if any(w.grad is not None for w in scene.wires.values()):
            cells.append(f'<td><font color="{GRADIENT_COLOR}">gradient</font></td>')
    if reported:
        cells.append(
            f'<td border="1" bgcolor="{_CULPRIT_FILL}" color="{CULPRIT_COLOR}">'
            "fails fg.check</td>"
        )
    if note:
        cells.append(f'<td><font point-size="9">{_h(note)}</font></td>')
    return (
        '<<table border="0" cellspacing="6" cellpadding="3"><tr>' + "".join(cells)
        + "</tr></table>>"
    )


def _dot(
    scene: _Scene,
    name: str,
    culprits: Mapping[int, set[str]],
    legend: bool,
    note: str,
    rankdir: str,
    small: int,
) -> str:
    lines = [
        f'digraph "{_dot_string(name)}" {{',
        f'  graph [rankdir="{rankdir}", nodesep="0.25", ranksep="0.3", fontname="{_FONT}", '
        'labelloc="b", labeljust="l"];',
        f'  node [fontname="{_FONT}", fontsize="12"];',
        f'  edge [fontname="{_FONT}", fontsize="10", arrowsize="0.7"];',
    ]
    ids: dict[WireKey, str] = {}  # the DOT node producing each wire
    for n, (k, label) in enumerate(scene.sources):
        ids[scene.resolve(k)] = f"in{n}"
        lines.append(f'  "in{n}" [shape="plaintext", label=<<b>{_h(label)}</b>>];')
    for n, (k, value) in enumerate(scene.constants.items()):
        ids[k] = f"k{n}"
        lines.append(
            f'  "k{n}" [shape="plaintext", fontsize="10", fontcolor="{_TYPE_COLOR}", '
            f'label=<const {_h(summary(np.asarray(value)))}>];'
        )

    # Gates, nested in the clusters of the calls (and lumps) they sat in.
    tree: dict[tuple[str, ...], list[str]] = {}
    titles: dict[str, str] = {}
    where: dict[str, tuple[str, ...]] = {}  # the cluster path of each gate's DOT node
    for n, gate in enumerate(scene.gates):
        for o in gate.outputs:
            ids[scene.resolve(o)] = f"g{n}"
        culprit = any(a in culprits for a in gate.apps)
        where[f"g{n}"] = path = tuple(cid for cid, _ in gate.clusters)
        titles.update(dict(gate.clusters))
        tree.setdefault(path, []).append(f'"g{n}" {_attrs(_gate_attrs(gate, culprit))};')

    # Wires: producer -> wire node (value above the line, gradient below) -> consumers.
    consumers: dict[WireKey, list[tuple[str, bool]]] = {}
    for n, gate in enumerate(scene.gates):
        for pos, k in enumerate(gate.inputs):
            if isinstance(k, Constant):
                continue
            consumers.setdefault(scene.resolve(k), []).append(
                (f"g{n}", pos in gate.culprit_inputs)
            )
    edges: list[str] = []
    for n, (k, label) in enumerate(scene.sinks):
        lines.append(f'  "out{n}" [shape="plaintext", label=<<b>{_h(label)}</b>>];')
        if isinstance(k, Constant):
            const = _h(_short(k.value, 20))
            lines.append(f'  "outk{n}" [shape="plaintext", label=<const {const}>];')
            edges.append(f'  "outk{n}" -> "out{n}";')
            continue
        consumers.setdefault(scene.resolve(k), []).append((f"out{n}", False))
    for n, (k, targets) in enumerate(consumers.items()):
        src = ids.get(k)
        if src is None:
            continue
        if k in scene.constants:
            for target, _ in targets:
                edges.append(f'  "{src}" -> "{target}" [style="dashed", color="{_TYPE_COLOR}"];')
            continue
        wire = scene.wires[k]
        # A wire inside a call or lump is drawn inside it, so the layout keeps it there.
        path = _common_prefix([where.get(node, ()) for node in (src, *(t for t, _ in targets))])
        tree.setdefault(path, []).append(
            f'"w{n}" [shape="plaintext", margin="0", '
            f"label={_wire_label(wire, wire.shape != (), small)}];"
        )
        edges.append(f'  "{src}" -> "w{n}":m:w [arrowhead="none"];')
        for target, wrong in targets:
            style = (
                f' [color="{CULPRIT_COLOR}", penwidth="2.5", '
                f'label=<<font color="{CULPRIT_COLOR}">wrong gradient</font>>]'
                if wrong
                else ""
            )
            edges.append(f'  "w{n}":m:e -> "{target}"{style};')
    lines += _clusters(tree, titles, scene.culprit_clusters)
    if scene.sinks:
        # The outputs line up at the far end, as the lecture's pictures end in f.
        sinks = "; ".join(f'"out{n}"' for n in range(len(scene.sinks)))
        lines.append(f'  {{ rank="sink"; {sinks}; }}')
    lines += edges
    if legend:
        has_values = any(w.value is not None for w in scene.wires.values())
        lines.append(
            f"  graph [label={_legend(scene, name, note, bool(culprits), has_values)}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def _common_prefix(paths: Sequence[tuple[str, ...]]) -> tuple[str, ...]:
    first = paths[0]
    n = 0
    while n < len(first) and all(len(p) > n and p[n] == first[n] for p in paths):
        n += 1
    return first[:n]


def _clusters(
    tree: Mapping[tuple[str, ...], list[str]], titles: Mapping[str, str], culprit: set[str]
) -> list[str]:
    paths = sorted(tree, key=len)
    out: list[str] = []

    def emit(path: tuple[str, ...], indent: str) -> None:
        out.extend(indent + line for line in tree.get(path, []))
        children = dict.fromkeys(
            p[: len(path) + 1] for p in paths if len(p) > len(path) and p[: len(path)] == path
        )
        for child in children:
            cid = child[-1]
            color = CULPRIT_COLOR if cid in culprit else _AUTODIFF_LINE
            out.append(f'{indent}subgraph "cluster_{_dot_string(cid)}" {{')
            out.append(
                f'{indent}  graph [label=<<i>{_h(titles[cid])}</i>>, style="rounded,dashed", '
                f'color="{color}", fontsize="10"];'
            )
            emit(child, indent + "  ")
            out.append(f"{indent}}}")

    emit((), "  ")
    return out


# -- rendering -----------------------------------------------------------------------------------


def renderer() -> str:
    """The Graphviz program that renders drawings.

    In order: `$FUNCGRAPH_DOT`, a system `dot` on the `PATH`, then `graphviz-pure` (a
    self-contained port installed from PyPI by `pip install funcgraph[draw]`), looked up on the
    `PATH` and beside the running Python (a virtual environment that is not activated).

    **Returns:** the program's path.

    **Raises:** [`funcgraph.DrawError`][] when there is none.
    """
    override = os.environ.get("FUNCGRAPH_DOT")
    if override:
        found = shutil.which(override)
        if found is None:
            raise DrawError(f"FUNCGRAPH_DOT={override!r} is not an executable program")
        return found
    dot = shutil.which("dot")
    if dot is not None:
        return dot
    pure = shutil.which("graphviz-pure")
    if pure is not None:
        return pure
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        for name in ("graphviz-pure", "graphviz-pure.exe"):
            candidate = Path(folder) / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    raise DrawError(
        "no Graphviz renderer: install one with `pip install 'funcgraph[draw]'` (the "
        "graphviz-pure package), or a system Graphviz that puts `dot` on the PATH. The DOT "
        "source is available without one: Drawing.source, or save to a .dot file"
    )


def render(source: str, format: str) -> bytes:
    """Render DOT `source` to `format` (`"svg"`, `"png"`, ...) with `renderer()`."""
    program = renderer()
    try:
        done = subprocess.run(
            [program, f"-T{format}"],
            input=source.encode("utf-8"),
            capture_output=True,
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise DrawError(f"{program} -T{format} could not run: {err}") from err
    if done.returncode != 0 or not done.stdout:
        message = done.stderr.decode("utf-8", "replace").strip()
        raise DrawError(f"{program} -T{format} failed (exit {done.returncode}): {message}")
    return done.stdout


class Drawing:
    """A drawn diagram: DOT source, rendered on demand.

    **Attributes:**

    - `source`: the DOT source.
    - `name`: the drawn function's name.
    - `n_gates`: how many gates it shows (a collapsed call counts as one).
    """

    def __init__(self, source: str, name: str, n_gates: int) -> None:
        self.source = source
        self.name = name
        self.n_gates = n_gates
        self._rendered: dict[str, bytes] = {}

    def render(self, format: str) -> bytes:
        """The drawing rendered by Graphviz in `format` (`"svg"`, `"png"`, ...)."""
        if format == "dot":
            return self.source.encode("utf-8")
        if format not in self._rendered:
            self._rendered[format] = render(self.source, format)
        return self._rendered[format]

    def svg(self) -> str:
        """The drawing as SVG text."""
        return self.render("svg").decode("utf-8")

    def png(self) -> bytes:
        """The drawing as PNG bytes."""
        return self.render("png")

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the drawing to `path`, in the format its extension names (`.svg`, `.png`,
        `.dot` or `.gv`).

        The file appears whole or not at all (written beside it, then renamed).

        **Returns:** the path written.
        """
        path = Path(path)
        format = _FORMATS.get(path.suffix.lower())
        if format is None:
            raise ValueError(
                f"cannot save a drawing as {path.name!r}: use one of {sorted(_FORMATS)}"
            )
        data = self.render(format)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
        # os.open honours the umask, so the file gets the permissions any new file gets.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def _repr_svg_(self) -> str:
        return self.svg()

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None
    ) -> dict[str, Any]:
        # Without a renderer a notebook still gets the DOT source rather than an error.
        try:
            return {"image/svg+xml": self.svg(), "text/plain": repr(self)}
        except DrawError as err:
            return {"text/plain": f"{self!r}\n{err}\n\n{self.source}"}

    def __str__(self) -> str:
        return self.source

    def __repr__(self) -> str:
        return f"<funcgraph.Drawing of {self.name!r}: {self.n_gates} gates>"


# -- the entry points ----------------------------------------------------------------------------


def draw(
    f: Callable[..., Any] | Graph,
    *args: Any,
    static: Mapping[str, Any] | None = None,
    report: Any = None,
    expand: bool = False,
    values: bool = True,
    gradients: bool = True,
    cotangent: Any = None,
    rules: Literal["hand", "reference"] = "hand",
    legend: bool = True,
    rankdir: str = "LR",
    max_label: int = 24,
    small: int = 4,
    names: Sequence[str] | None = None,
) -> Drawing:
    r"""Draw the computational diagram of `f` at `args`, with values and gradients on the wires.

    Every wire shows its forward value above the line (green) and, below it (red), the gradient
    $\partial f/\partial x$ of the output with respect to it, computed by the graph's own
    backward pass. Scalars show their numbers (4 significant digits); arrays their type, and
    their elements when there are at most `small`, else $\|x\|_2$ and the range.

    **Arguments:**

    - `f`: a function of nodes and JAX code, a node, or a traced [`funcgraph.Graph`][] (drawn
      without values when no `args` are given).
    - `args`: the arguments to trace and evaluate at. For a function decorated with
      `@fg.example` they may be left out: its first example is used.
    - `static`: keyword arguments of `f`, baked into the graph.
    - `report`: a report of `fg.check`; its culprits' gates, and the wires into their wrong
      inputs, are drawn in red.
    - `expand`: open jitted inner functions (drawn as clusters) and lumped nodes (drawn as the
      graph inside them) instead of one box each.
    - `values`: draw values (and gradients); `False` draws only the wires' types.
    - `gradients`: draw gradients. They need a scalar output or a `cotangent`; without either,
      only values are drawn.
    - `cotangent`: the gradient seeded on the output, structured like it.
    - `rules`: `"hand"` (the hand-written rules) or `"reference"` (autodiff of each node's pure
      forward) for the backward pass drawn.
    - `legend`, `rankdir`: a legend below the picture; layout direction (`"LR"`, `"TB"`).
    - `max_label`: the longest name or detail drawn, in characters.
    - `small`: arrays with at most this many elements show every element.
    - `names`: names for the positional arguments (default: from `f`'s signature; `x0`, `x1`,
      ... for a graph).

    **Returns:** a [`funcgraph.Drawing`][].
    """
    static = dict(static or {})
    if isinstance(f, Graph):
        graph = f
        top = list(names) if names is not None else []
        n_args = len(graph.in_tree.children())
        top += [f"x{i}" for i in range(len(top), n_args)]
        skeleton = jax.tree_util.tree_unflatten(graph.in_tree, [0] * len(graph.inputs))
        leaf_names = _leaf_names(skeleton, top)
    else:
        if not args:
            examples = _examples(f)
            if not examples:
                raise TypeError(
                    f"fg.draw({_name(f)}): pass example arguments, or declare them on the "
                    "function with @fg.example(lambda key: (...))"
                )
            args, static = tuple(examples[0].args), {**examples[0].static, **static}
        graph = trace(f, *args, **static)
        top = list(names) if names is not None else _arg_names(f, len(args))
        leaf_names = _leaf_names(tuple(args), top)

    forward = grads = None
    note = ""
    if args and values:
        forward = graph.forward(*args)
        scalar = all(
            isinstance(o, Constant) or (o.shape == () and o.differentiable) for o in graph.outputs
        )
        if gradients and (cotangent is not None or scalar):
            grads = graph.backward(*args, cotangent=cotangent, rules=rules, values=forward)
        elif gradients:
            note = "no gradients: the output is not a scalar (pass cotangent=)"
        if grads is not None and rules == "reference":
            note = "gradients by autodiff of each node's forward (rules='reference')"

    culprits = _culprits(report, graph)
    if report is not None and not culprits:
        note = "; ".join(filter(None, [note, "fg.check blames no node here"]))
    scene = _Scene()
    for edge, label in zip(graph.inputs, leaf_names, strict=True):
        scene.sources.append((("", edge.id), _cap(label, max_label)))
    out_names = _leaf_names(
        jax.tree_util.tree_unflatten(graph.out_tree, list(graph.outputs)), None
    )
    for out, suffix in zip(graph.outputs, out_names, strict=True):
        label = _cap(graph.name + suffix, max_label)
        scene.sinks.append((out if isinstance(out, Constant) else ("", out.id), label))
    _add_graph(scene, graph, forward, grads, "", (), None, culprits, expand, max_label)
    _fuse_indexing(scene)
    if not expand:
        _collapse(scene, max_label)
    source = _dot(scene, graph.name, culprits, legend, note, rankdir, small)
    return Drawing(source, graph.name, len(scene.gates))


def _name(f: Any) -> str:
    return getattr(f, "name", None) or getattr(f, "__name__", None) or type(f).__name__


def _examples(f: Any) -> list[Any]:
    from funcgraph.node import examples_of

    return examples_of(f, jax.random.key(0))


def cli_draw(target: str, output: str, expand: bool) -> int:
    """`funcgraph draw FILE_OR_MODULE:FUNCTION -o OUT`: draw a function at its first example.

    The function (or node) declares its example arguments with `@fg.example(...)` (nodes with
    `example=`). The output's extension picks the format: `.svg`, `.png`, `.dot` or `.gv`.

    **Returns:** the exit status: 0 when the file was written, 2 (after a message on stderr)
    when the target, its examples, the output name or the renderer are not usable.
    """
    from funcgraph.loading import load_target

    def fail(message: str) -> int:
        print(f"funcgraph draw: error: {message}", file=sys.stderr)
        return 2

    if Path(output).suffix.lower() not in _FORMATS:
        return fail(f"cannot write {output!r}: the output must end in one of {sorted(_FORMATS)}")
    try:
        _, obj = load_target(target)
    except Exception as err:  # the user's module may raise anything while it loads
        return fail(f"cannot load {target!r}: {type(err).__name__}: {err}")
    if obj is None:
        return fail(f"{target!r} names no function: use FILE_OR_MODULE:FUNCTION")
    if not callable(obj):
        return fail(f"{target!r} is a {type(obj).__name__}, not a function or node")
    try:
        examples = _examples(obj)
    except Exception as err:
        return fail(f"the examples of {target!r} failed: {type(err).__name__}: {err}")
    if not examples:
        return fail(
            f"{target!r} declares no example arguments: decorate it with "
            "@fg.example(lambda key: (...)) (nodes: example=...)"
        )
    example = examples[0]
    try:
        drawing = draw(obj, *example.args, static=example.static, expand=expand)
        path = drawing.save(output)
    except Exception as err:
        return fail(f"cannot draw {target!r}: {type(err).__name__}: {err}")
    print(f"wrote {path} ({drawing.n_gates} gates)")
    return 0
