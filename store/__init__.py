"""Embedding stores: every byte written between the extract and fuse stages (no torch here)."""
