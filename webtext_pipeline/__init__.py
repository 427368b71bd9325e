"""webtext: an open, reproducible rebuild of WebText (the GPT-2 corpus).

This package is the library layer: stage logic over plain records, with no
Beam import. `beam_jobs` composes it into pipelines; `webtext_pipeline.cli`
is the command line.
"""

__version__ = "0.1.0"
