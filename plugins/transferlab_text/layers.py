"""Layer groups of a transformer, found from its structure rather than per-architecture names.

The stack of blocks is the ``nn.ModuleList`` holding the most parameters (``encoder.layer``
in BERT, ``h`` in GPT-2, ``layers`` in Llama). Along the path from the root to it, siblings
registered before the stack are the embeddings and siblings after it are the head (final
norm, pooler), so the groups read bottom to top: ``embeddings``, ``layer.0`` ... ``layer.N-1``,
``head``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from transferlab.errors import IncompatibleError

if TYPE_CHECKING:
    from torch import nn


def _param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def find_blocks(root: nn.Module) -> str:
    """Dotted path of the largest ``nn.ModuleList`` in ``root`` (the transformer blocks)."""
    from torch import nn

    best, best_size = "", -1
    for path, module in root.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) > 0:
            size = _param_count(module)
            if size > best_size:
                best, best_size = path, size
    if not best:
        raise IncompatibleError(f"{type(root).__name__} has no list of transformer blocks;"
                                " layer groups need an nn.ModuleList of layers")
    return best


def layer_groups(
    root: nn.Module, extra_head: list[nn.Module] | None = None
) -> list[tuple[str, list[nn.Module]]]:
    """``[("embeddings", ...), ("layer.0", [block]), ..., ("head", ...)]`` for ``root``;
    ``extra_head`` (an LM head, a pooling module) is appended to the head group."""
    path = find_blocks(root)
    below: list[nn.Module] = []
    above: list[nn.Module] = []
    node = root
    for part in path.split("."):
        children = list(node.named_children())
        index = [child_name for child_name, _ in children].index(part)
        below += [child for _, child in children[:index]]
        above = [child for _, child in children[index + 1 :]] + above  # deeper ones first
        node = getattr(node, part)
    groups = [("embeddings", [m for m in below if _param_count(m) > 0])]
    groups += [(f"layer.{i}", [block]) for i, block in enumerate(node.children())]
    groups.append(("head", [m for m in above if _param_count(m) > 0] + list(extra_head or [])))
    return groups
