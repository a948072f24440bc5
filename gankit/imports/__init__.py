"""Generators trained elsewhere, into every gankit path.

- ``from_module(module)``: an MLP generator nn.Module -> an equal Generator (``gankit.imports.module``).
- ``load_model(path, options)``: any generator file -> a Generator, or an OnnxGraph for ``.onnx`` (the one
  loader of every command; ``gankit.imports.files``), converting foreign state dicts on the fly.
- ``import_file(src, out, options)``: convert once and save as a gankit checkpoint (``gankit import``).
- ``ImportOptions``: what a file cannot say (activations, image shape, BatchNorm eps, an ONNX output range).
"""

from gankit.imports.files import import_file, load_checkpoint, load_model, model_info
from gankit.imports.module import from_module
from gankit.imports.options import ImportOptions

__all__ = ["ImportOptions", "from_module", "import_file", "load_checkpoint", "load_model", "model_info"]
