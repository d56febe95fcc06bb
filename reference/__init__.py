"""The PyTorch oracle and the differential machinery that compares it with ``manual``."""
