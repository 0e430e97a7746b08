"""Stage 2: stores -> trained fusion models, predictions and honest metrics. Never reads raw data.

Entry points: ``fuse.run.run_fuse(FuseConfig)`` (one run), ``fuse.models.load_model(results_dir)`` (a saved model),
registries ``fuse.strategies.STRATEGIES``, ``fuse.classifiers.CLASSIFIERS``, ``fuse.protocols.PROTOCOLS``.
"""
