"""Registers the parameter-transfer methods (torch is imported at fit time, not here)."""

from __future__ import annotations

from typing import Any

from transferlab.hookspecs import hookimpl


@hookimpl
def register_methods(register: Any) -> None:
    from transferlab_parameter.bitfit import BitFit
    from transferlab_parameter.finetune import Finetune
    from transferlab_parameter.freeze import Freeze
    from transferlab_parameter.l2sp import L2SP
    from transferlab_parameter.llrd import LayerwiseDecay
    from transferlab_parameter.lora import LoRA

    for method in (Finetune, Freeze, BitFit, LoRA, L2SP, LayerwiseDecay):
        register(method.name, method, summary=method.summary, params=method.params,
                 family=method.family)
