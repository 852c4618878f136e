"""Measurements of prereq: EM speed and memory vs gensim, the paper reproduction, siamese selection."""
