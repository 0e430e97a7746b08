"""The built-in names of extract's registries, light (no store, no torch) for CLI help.

``tests/pipelines/test_help_names.py`` checks each tuple against its registry: ``extract.face.detectors.DETECTORS``
and ``extract.backbones.BACKBONES``. The first name is the default.
"""

from __future__ import annotations

DETECTOR_NAMES = ("mtcnn", "retinaface-r50", "retinaface-mnet", "tiny")
BACKBONE_NAMES = ("clip-vit-l14", "clip-vit-b32", "clip-vit-b16", "vit-b16", "fer-minixception", "tiny-clip",
                  "tiny-vit")
