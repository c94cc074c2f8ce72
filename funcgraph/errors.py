"""The exceptions funcgraph raises.

Every message names the node, the input and what was expected, so that a failure deep inside a
traced program reads as a sentence about the user's own code rather than as an XLA error.
"""

from __future__ import annotations


class FuncgraphError(Exception):
    """Base class of every error funcgraph raises on purpose."""


class NodeDefinitionError(FuncgraphError, TypeError):
    """A node or its backward rule is defined wrongly (bad signature, bad option)."""


class NodeInputError(FuncgraphError, TypeError):
    """A node was called with an input it cannot take (not an array, wrong structure)."""


class MissingBackwardError(FuncgraphError, NotImplementedError):
    """A node was differentiated before a backward rule was attached with `@node.backward`."""


class BackwardRuleError(FuncgraphError, ValueError):
    """A backward rule returned gradients of the wrong number, structure, shape or dtype."""


class TraceError(FuncgraphError, ValueError):
    """A function could not be traced into a graph (e.g. Python control flow on traced values)."""


class ShapeMismatchError(FuncgraphError, ValueError):
    """Two nodes were connected by an edge whose shapes do not fit."""


class DataError(FuncgraphError, ValueError):
    """Training data cannot be used as given (shapes that disagree, labels of the wrong dtype
    or out of range)."""


class NonFiniteLossError(FuncgraphError, FloatingPointError):
    """The training loss became NaN or infinite; the message names the step."""


class CheckpointError(FuncgraphError, ValueError):
    """A checkpoint is truncated, corrupted or does not match the state it is loaded into."""


class DrawError(FuncgraphError, RuntimeError):
    """A drawing could not be rendered: no Graphviz renderer is installed, or it failed."""
