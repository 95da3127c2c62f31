"""Registers the parameter-transfer methods (torch is imported at fit time, not here)."""

from __future__ import annotations

from transferlab.hookspecs import hookimpl
from transferlab.registry import RegisterCallback


@hookimpl
def register_methods(register: RegisterCallback) -> None:
    from transferlab_parameter.bitfit import BitFit
    from transferlab_parameter.finetune import Finetune
    from transferlab_parameter.freeze import Freeze
    from transferlab_parameter.l2sp import L2SP
    from transferlab_parameter.language_model import LanguageModelFinetune
    from transferlab_parameter.llrd import LayerwiseDecay
    from transferlab_parameter.lora import LoRA
    from transferlab_parameter.lpft import LinearProbeThenFinetune

    for method in (Finetune, LinearProbeThenFinetune, Freeze, BitFit, LoRA, L2SP,
                   LayerwiseDecay, LanguageModelFinetune):
        register(method)  # name, summary, params and family are read from the class
