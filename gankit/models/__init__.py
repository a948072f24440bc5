"""Model files, into what gankit runs: the one loader, and generators trained elsewhere.

- ``load(model, options)``: a model argument (a bundled name, a gankit file, a foreign state dict, an ONNX graph)
  -> a ``LoadedModel`` (kind, config, weights or graph, sha256 once): the loader of every command
  (``gankit.models.files``), converting foreign state dicts on the fly; ``load_model`` and ``load_checkpoint``
  give its Generator or graph directly, ``model_info`` what ``gankit info`` prints.
- ``from_module(module)``: an MLP generator nn.Module -> an equal Generator (``gankit.models.module``).
- ``import_file(src, out, options)``: convert once and save as a gankit checkpoint (``gankit import``).
- ``ImportOptions``: what a file cannot say (activations, image shape, BatchNorm eps, an ONNX output range).

No torch at import: a gankit checkpoint or an ONNX graph is read without it.
"""

from gankit.models.files import LoadedModel, ModelFile, import_file, load, load_checkpoint, load_model, model_info
from gankit.models.options import ImportOptions


def __getattr__(name: str):
    if name == "from_module":  # walks a torch module: imported with torch, when asked for
        from gankit.models.module import from_module

        return from_module
    raise AttributeError(f"module 'gankit.models' has no attribute {name!r}")


__all__ = [
    "ImportOptions",
    "LoadedModel",
    "ModelFile",
    "from_module",
    "import_file",
    "load",
    "load_checkpoint",
    "load_model",
    "model_info",
]
