"""funcgraph: hand-written gradients in JAX, as a computational graph you can check and train.

Nodes are pure functions with hand-written backward rules (`jax.custom_vjp` underneath); they
compose into graphs with their own forward and backward passes, compile with `jax.jit`, and are
checked against autodiff and finite differences.
"""

from funcgraph import nn as nn
from funcgraph import nodes as nodes
from funcgraph import train as train
from funcgraph.checking import Report as Report
from funcgraph.checking import Row as Row
from funcgraph.checking import assert_gradients as assert_gradients
from funcgraph.checking import check as check
from funcgraph.checkpoint import load_checkpoint as load_checkpoint
from funcgraph.checkpoint import save_checkpoint as save_checkpoint
from funcgraph.debug import NanReport as NanReport
from funcgraph.debug import debug_nans as debug_nans
from funcgraph.draw import Drawing as Drawing
from funcgraph.draw import draw as draw
from funcgraph.errors import BackwardRuleError as BackwardRuleError
from funcgraph.errors import CheckpointError as CheckpointError
from funcgraph.errors import DataError as DataError
from funcgraph.errors import DrawError as DrawError
from funcgraph.errors import FuncgraphError as FuncgraphError
from funcgraph.errors import MissingBackwardError as MissingBackwardError
from funcgraph.errors import NodeDefinitionError as NodeDefinitionError
from funcgraph.errors import NodeInputError as NodeInputError
from funcgraph.errors import NonFiniteLossError as NonFiniteLossError
from funcgraph.errors import ShapeMismatchError as ShapeMismatchError
from funcgraph.errors import TraceError as TraceError
from funcgraph.graph import Application as Application
from funcgraph.graph import Constant as Constant
from funcgraph.graph import Edge as Edge
from funcgraph.graph import Graph as Graph
from funcgraph.graph import grad as grad
from funcgraph.graph import lump as lump
from funcgraph.graph import reference as reference
from funcgraph.graph import trace as trace
from funcgraph.graph import value_and_grad as value_and_grad
from funcgraph.node import Example as Example
from funcgraph.node import Node as Node
from funcgraph.node import example as example
from funcgraph.node import examples_of as examples_of
from funcgraph.node import get_node as get_node
from funcgraph.node import node as node
from funcgraph.node import registry as registry
from funcgraph.train import History as History
from funcgraph.train import TrainState as TrainState
from funcgraph.train import fit as fit
from funcgraph.train import make_step as make_step

__version__ = "0.1.0"

__all__ = [
    "Application",
    "BackwardRuleError",
    "CheckpointError",
    "Constant",
    "DataError",
    "DrawError",
    "Drawing",
    "Edge",
    "Example",
    "FuncgraphError",
    "Graph",
    "History",
    "MissingBackwardError",
    "NanReport",
    "Node",
    "NodeDefinitionError",
    "NodeInputError",
    "NonFiniteLossError",
    "Report",
    "Row",
    "ShapeMismatchError",
    "TraceError",
    "TrainState",
    "assert_gradients",
    "check",
    "debug_nans",
    "draw",
    "example",
    "examples_of",
    "fit",
    "get_node",
    "grad",
    "load_checkpoint",
    "lump",
    "make_step",
    "nn",
    "node",
    "nodes",
    "reference",
    "registry",
    "save_checkpoint",
    "trace",
    "train",
    "value_and_grad",
]
