"""Measurements of URerF: the paper's figures, quality and speed against peers, scale, the engine."""
