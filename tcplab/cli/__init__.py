"""tcplab's command line: main.py (the group and the one error handler), a module per
kind of command, and signals.py (Ctrl-C and SIGTERM from the process's first line)."""
