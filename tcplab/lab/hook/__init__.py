"""The router's NFQUEUE hook: a child process in the router namespace.

    python -m tcplab.lab.hook      (config as one JSON line on stdin)

- __main__.py: the process: enter the namespace, bind the queue, install the rules,
  and the main loop (queue, stdin commands, held segments' release).
- plain.py: `Hook`, drop and delay, segment by segment: parse -> classify -> decide
  -> apply.
- faults.py: `FaultHook(Hook)`, the faults that act on time or make segments up.
- iptables.py: the rules that send segments to the queue, and the queue's counters.

The fault configs cross the process boundary as JSON through tcplab/lab/fault_config.py
(both directions, one place).
"""
