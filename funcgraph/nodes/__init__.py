"""The standard node library: gates, vector ops, reductions, activations, losses and layers.

Every node has a hand-written backward rule, its forward and backward formula in its docstring,
example inputs (`example=`) and, where it is not smooth, its kinks (`kinks=`), so that
`fg.check` and the registry test can verify all of them against autodiff.

```python
import funcgraph as fg

h = fg.nodes.relu(fg.nodes.dense(x, w, b))
loss = fg.nodes.softmax_cross_entropy(fg.nodes.dense(h, w2, b2), labels)
```
"""

from funcgraph.nodes._util import unbroadcast as unbroadcast
from funcgraph.nodes.activations import gelu as gelu
from funcgraph.nodes.activations import leaky_relu as leaky_relu
from funcgraph.nodes.activations import log_softmax as log_softmax
from funcgraph.nodes.activations import relu as relu
from funcgraph.nodes.activations import softmax as softmax
from funcgraph.nodes.activations import softplus as softplus
from funcgraph.nodes.activations import tanh as tanh
from funcgraph.nodes.attention import attention as attention
from funcgraph.nodes.conv import conv2d as conv2d
from funcgraph.nodes.dropout import dropout as dropout
from funcgraph.nodes.embedding import embedding as embedding
from funcgraph.nodes.gates import add as add
from funcgraph.nodes.gates import div as div
from funcgraph.nodes.gates import exp as exp
from funcgraph.nodes.gates import log as log
from funcgraph.nodes.gates import maximum as maximum
from funcgraph.nodes.gates import mul as mul
from funcgraph.nodes.gates import power as power
from funcgraph.nodes.gates import reciprocal as reciprocal
from funcgraph.nodes.gates import scale as scale
from funcgraph.nodes.gates import sigmoid as sigmoid
from funcgraph.nodes.gates import square as square
from funcgraph.nodes.linalg import concatenate as concatenate
from funcgraph.nodes.linalg import dense as dense
from funcgraph.nodes.linalg import dot as dot
from funcgraph.nodes.linalg import matmul as matmul
from funcgraph.nodes.linalg import reshape as reshape
from funcgraph.nodes.linalg import split as split
from funcgraph.nodes.linalg import take as take
from funcgraph.nodes.linalg import transpose as transpose
from funcgraph.nodes.losses import (
    binary_cross_entropy_with_logits as binary_cross_entropy_with_logits,
)
from funcgraph.nodes.losses import mse as mse
from funcgraph.nodes.losses import softmax_cross_entropy as softmax_cross_entropy
from funcgraph.nodes.losses import svm_hinge as svm_hinge
from funcgraph.nodes.norm import batch_norm as batch_norm
from funcgraph.nodes.norm import batch_norm_eval as batch_norm_eval
from funcgraph.nodes.norm import layer_norm as layer_norm
from funcgraph.nodes.pool import avg_pool2d as avg_pool2d
from funcgraph.nodes.pool import max_pool2d as max_pool2d
from funcgraph.nodes.reductions import logsumexp as logsumexp
from funcgraph.nodes.reductions import max as max
from funcgraph.nodes.reductions import mean as mean
from funcgraph.nodes.reductions import sum as sum

__all__ = [
    "add",
    "attention",
    "avg_pool2d",
    "batch_norm",
    "batch_norm_eval",
    "binary_cross_entropy_with_logits",
    "concatenate",
    "conv2d",
    "dense",
    "div",
    "dot",
    "dropout",
    "embedding",
    "exp",
    "gelu",
    "layer_norm",
    "leaky_relu",
    "log",
    "log_softmax",
    "logsumexp",
    "matmul",
    "max",
    "max_pool2d",
    "maximum",
    "mean",
    "mse",
    "mul",
    "power",
    "reciprocal",
    "relu",
    "reshape",
    "scale",
    "sigmoid",
    "softmax",
    "softmax_cross_entropy",
    "softplus",
    "split",
    "square",
    "sum",
    "svm_hinge",
    "take",
    "tanh",
    "transpose",
    "unbroadcast",
]
