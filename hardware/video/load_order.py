"""Native libraries that must be in the process before a window loads the system's OpenGL driver.

On Mesa (Intel, AMD, software GL, Xvfb) the first window loads `libLLVM-NN.so` into the global
symbol scope: SDL probes an OpenGL context to pick its framebuffer even for a plain 2D window.
Triton's `libtriton.so` carries its own, newer LLVM and exports those symbols unversioned, so when it
is loaded afterwards (torch._dynamo imports it; transformers imports torch._dynamo, so the sentence
model pulls it in seconds into a show) its static constructors bind to Mesa's LLVM and the process
dies with SIGSEGV inside `dlopen`. Loaded first, triton keeps its own symbols (Python loads extensions
with RTLD_LOCAL) and Mesa's driver binds to its own; both work, llvmpipe's shaders included.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import os

log = logging.getLogger("chromesthesia.display")

PRIVATE_LLVM_MODULES = ("triton",)
"""Installed packages whose native library exports a private LLVM (checked with `nm -D`; llvmlite
hides its own, so numba is safe in any order)."""


def load_before_gl(modules: tuple[str, ...] = PRIVATE_LLVM_MODULES) -> list[str]:
    """Import each installed module of `modules` now, on this thread; the names loaded.

    Call before the first window or GL context. A dummy SDL video driver never loads GL: nothing to do.
    """
    if os.environ.get("SDL_VIDEODRIVER") == "dummy":
        return []
    loaded = []
    for name in modules:
        try:
            if importlib.util.find_spec(name) is None:
                continue
            importlib.import_module(name)
        except Exception as exc:  # a broken optional package must not keep the window shut
            log.debug("not preloading %s: %s", name, exc)
            continue
        loaded.append(name)
    return loaded
