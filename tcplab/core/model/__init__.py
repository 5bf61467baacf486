"""The kernel model: what this kernel should do, as pure code. `predict.predict` is
the one entry point; the parts (handshake, open, established, flood, teardown) each
simulate one phase."""
