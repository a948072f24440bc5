"""Model files, into what gankit runs: the one loader, and generators trained elsewhere.

- ``from_module(module)``: an MLP generator nn.Module -> an equal Generator (``gankit.models.module``).
- ``load_model(path, options)``: any generator file -> a Generator, or an OnnxGraph for ``.onnx`` (the one
  loader of every command; ``gankit.models.files``), converting foreign state dicts on the fly.
- ``import_file(src, out, options)``: convert once and save as a gankit checkpoint (``gankit import``).
- ``ImportOptions``: what a file cannot say (activations, image shape, BatchNorm eps, an ONNX output range).
"""

from gankit.models.files import import_file, load_checkpoint, load_model, model_info
from gankit.models.module import from_module
from gankit.models.options import ImportOptions

__all__ = ["ImportOptions", "from_module", "import_file", "load_checkpoint", "load_model", "model_info"]
