"""Speed measurements: whole configs in mmengine's training loop (:mod:`.pipeline`,
``tools/analysis_tools/benchmark_pipeline.py``) and backbones alone (:mod:`.backbone`,
``tools/analysis_tools/benchmark_backbone.py``)."""
from .pipeline import *  # noqa: F401,F403
