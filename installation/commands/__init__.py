"""Sub-commands of run.py, one module per room. Each module has `register(sub, groups)`.

`sub` is the top-level sub-parser collection; `groups` maps "bench", "eval" and "train" to
their own sub-parser collections, so `run.py bench listen` lives in commands/listen.py.
Handlers import heavy libraries inside the function, so `run.py --help` stays fast.
A handler returns the process exit code.
"""

MODULES = ("listen", "beats", "captions", "visuals", "compose", "control", "soak", "synth", "operations", "rig", "reactivity", "latency")
