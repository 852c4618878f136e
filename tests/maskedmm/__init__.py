"""Tests of frugalml.maskedmm."""
