"""Stage 1: raw datasets -> features (face embeddings, EEG band features) written to stores."""
