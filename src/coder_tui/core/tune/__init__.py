"""Fit and tune: which split fits a VRAM budget, llama.cpp's own answer, and measured sweeps."""
