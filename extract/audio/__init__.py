"""Audio path: decode the audio track of a video (or a wav) on the video's clock, log-mel statistics and speech
model embeddings over the shared windows. Importing this package registers the ``audio`` extractor."""

from extract.audio import extractor as _extractor  # noqa: F401  (registers the extractor)
