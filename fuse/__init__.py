"""Stage 2: stores -> trained fusion models, predictions and honest metrics. Never reads raw data."""
