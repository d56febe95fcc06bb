"""PyTorch builders for the layer registry's entries, one module per family."""
