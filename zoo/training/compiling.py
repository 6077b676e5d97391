"""torch.compile for training (`compile = true`): each part of a model compiled in place, and how
to tell the compiler's own failures from the model's."""

import torch


def compile_in_place(model: torch.nn.Module) -> None:
    """Compile every part of `model` in place (called_parts), so that the weights keep their names in checkpoints.

    Every module compiled in place is one more graph of the same wrapper function to Dynamo, and each once
    more without gradients (validation): past Dynamo's limit of 8 graphs (a hierarchical VAE's parts) the
    rest ran uncompiled, with a warning. The limit is raised to what the model needs, never lowered."""
    import torch._dynamo.config as dynamo

    parts = called_parts(model)
    name = "recompile_limit" if hasattr(dynamo, "recompile_limit") else "cache_size_limit"  # torch < 2.6
    setattr(dynamo, name, max(getattr(dynamo, name), 4 * len(parts)))
    for part in parts:
        part.compile()


def called_parts(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The model's children, those held in a ModuleList or ModuleDict replaced by what they hold: a container
    is never called, so compiling it compiled nothing (a hierarchical VAE's per-layer networks)."""
    parts = []
    for child in model.children():
        if isinstance(child, (torch.nn.ModuleList, torch.nn.ModuleDict)):
            parts += called_parts(child)
        else:
            parts.append(child)
    return parts


def from_compiler(e: BaseException) -> bool:
    """True for errors raised by torch.compile (Dynamo, Inductor, a missing C++ compiler or Triton)."""
    return any(type(x).__module__.startswith(("torch._dynamo", "torch._inductor"))
               for x in (e, e.__cause__) if x is not None)
