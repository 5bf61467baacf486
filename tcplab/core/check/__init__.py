"""The checker: a scenario's expectations (expect.py) and the kernel model (model.py)
against a Record. Pure."""
