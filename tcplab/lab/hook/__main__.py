"""The hook process: enter the router namespace, bind the queue, install the rules,
say `ready`, then loop: queued segments (the callback never sleeps), held segments
due for release, and the runner's commands on stdin (`go T0`, `stop`).

With --queue-bypass, traffic flows unhooked if this process dies, and the runner then
calls the run an error (it never black-holes)."""

from __future__ import annotations

import os
import select
import sys
import time

from tcplab.core.rules import STRIP_MSS
from tcplab.lab import child, fault_config
from tcplab.lab.hook.faults import make_hook, prerouting_addrs
from tcplab.lab.hook.iptables import install_prerouting, install_rules, queue_stats
from tcplab.lab.hook.log import SegmentLog
from tcplab.lab.hook.plain import Hook, enable_kernel_timestamps
from tcplab.lab.rawstore import RAW_MAX

# The queue copies only the first RAW_MAX bytes of each packet to us (headers and what
# the record keeps): less to copy per segment. A fault that rewrites a packet
# (strip-mss) hands the kernel a whole new one, so then the whole packet is copied.
FULL_COPY = 0xFFFF
# Packets the kernel holds for us before it drops (and counts queue_dropped): a burst
# of a SYN flood or a window of bulk data fits.
QUEUE_MAXLEN = 4096


def main() -> None:
    config = child.read_config()
    child.enter_netns(config["netns"])
    child.write_sysctls(config.get("sysctls", {}))
    from netfilterqueue import NetfilterQueue

    faults, host_faults, forges = fault_config.hook_faults(config)
    log = SegmentLog(config.get("raw_path"))
    hook = make_hook(config, faults, host_faults, forges, log) or \
        Hook(faults, config["client_addrs"], log)
    child.raise_priority(child.HOOK_NICE)  # after the imports: those are set-up, not forwarding
    keeper = enable_kernel_timestamps()  # noqa: F841 (kept open on purpose)
    nfq = NetfilterQueue()
    rewrites = any(f.action == STRIP_MSS for f in faults)
    nfq.bind(config["queue"], hook.on_packet, max_len=QUEUE_MAXLEN,
             range=FULL_COPY if rewrites else RAW_MAX)
    flavour = install_rules(config["queue"])
    install_prerouting(flavour, config["queue"], prerouting_addrs(hook))
    child.emit("ready", iptables=flavour, pid=os.getpid())
    try:
        loop(nfq, hook)
    finally:
        hook.release_all()
        log.close()
        child.emit("stats", **queue_stats(config["queue"]))
        nfq.unbind()


def loop(nfq, hook) -> None:
    fd, stdin = nfq.get_fd(), sys.stdin.fileno()
    while True:
        ready, _, _ = select.select([fd, stdin], [], [], hook.next_timeout(time.monotonic()))
        if fd in ready:
            nfq.run(block=False)
        hook.release_due(time.monotonic())
        hook.log.flush()  # the batch this pass recorded, after all its verdicts
        if stdin in ready:
            line = os.read(stdin, 4096)
            if not line or b"stop" in line:
                return
            for command in line.decode(errors="replace").splitlines():
                hook.command(command)  # go T0


if __name__ == "__main__":
    main()
