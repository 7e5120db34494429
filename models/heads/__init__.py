"""Temporal heads: (B, M, D) frame features -> the classifier's input, plus named feature levels for ADA."""
