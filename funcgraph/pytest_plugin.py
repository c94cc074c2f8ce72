"""funcgraph's pytest plugin (registered through the `pytest11` entry point).

Loaded in every pytest run where funcgraph is installed, so it imports nothing heavy at load time
and does nothing unless a test asks for it.
"""

from __future__ import annotations
