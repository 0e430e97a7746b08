"""Stage 2: stores -> trained fusion models, predictions and honest metrics. Never reads raw data.

Entry points: ``fuse.run.run_fuse(FuseConfig)`` (one run), ``fuse.models.load_model(results_dir)`` (a saved model),
registries ``fuse.registries.STRATEGIES``, ``CLASSIFIERS``, ``PROTOCOLS`` (filled by ``fuse.strategies``,
``fuse.classifiers``, ``fuse.protocols``).
"""
