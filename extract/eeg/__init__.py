"""EEG features: band-pass filters, windows, differential entropy and band power as pure array functions, and the
extractors built on them. Importing this package registers ``eeg``, ``eeg-peripheral``, ``seedv-eeg-de`` and
``seedv-eye`` in ``extract.base.EXTRACTORS``."""

from extract.eeg import extractor as _extractor  # noqa: F401  (registers the extractors)
