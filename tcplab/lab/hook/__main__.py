"""The hook process: enter the router namespace, bind the queue, install the rules,
say `ready`, then loop: queued segments (the callback never sleeps), held segments
due for release, and the runner's commands on stdin (`go T0`, `stop`, and in step
mode `deliver ID` / `drop ID`).

With --queue-bypass, traffic flows unhooked if this process dies, and the runner then
calls the run an error (it never black-holes)."""

from __future__ import annotations

import os
import select
import sys
import time

from tcplab.core.faults import DUPLICATE, STRIP_MSS
from tcplab.lab import child, fault_config
from tcplab.lab.hook.faults import make_hook, prerouting_addrs
from tcplab.lab.hook.iptables import install_prerouting, install_rules, queue_stats
from tcplab.lab.hook import selection
from tcplab.lab.hook.log import SegmentLog
from tcplab.lab.hook.outbox import Outbox
from tcplab.lab.hook import observer
from tcplab.lab.hook.plain import Hook, enable_kernel_timestamps
from tcplab.lab.hook import watch
from tcplab.lab.rawstore import RAW_MAX

# The queue copies only the first RAW_MAX bytes of each packet to us (headers and what
# the record keeps): less to copy per segment. A fault that rewrites a packet
# (strip-mss) hands the kernel a whole new one, and a duplicate's copy is sent from
# our bytes, so then the whole packet is copied (before session 9 a copy of a segment
# over RAW_MAX bytes went out cut short, with its IP header's length intact, and the
# receiver's ip_rcv_core() dropped it as truncated: gen-8186 on 6.18).
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
    box = Outbox(sys.stdout.fileno())  # every message from here on goes through it
    log = SegmentLog(box, config.get("raw_path"))
    hook = make_hook(config, faults, host_faults, forges, log)
    # The fault hook acts on time and on whatever passes (silence, link-down, forges):
    # it sees everything, as before. The plain hook queues only what its faults can
    # touch, and the observer records the rest (selection.py, observer.py).
    step = config.get("step")  # --step: held for the presenter (core/step.py)
    kinds = selection.select(faults, step) if hook is None else None
    if hook is None:
        hook = Hook(faults, config["client_addrs"], log, step)
    watcher = None
    if kinds is not None:  # before the queue: nothing it lets pass goes unseen
        watcher = observer.ObserverProcess(
            observer.open_socket(), config["client_addrs"], kinds, config.get("raw_path")
        )
        watched = selection.watched(faults, step)
        if watched:
            hook.watch = watch.Watch(watch.open_socket(), watched, kinds)
    child.raise_priority(child.HOOK_NICE)  # after the imports: those are set-up, not forwarding
    keeper = enable_kernel_timestamps()  # noqa: F841 (kept open on purpose)
    nfq = NetfilterQueue()
    rewrites = any(f.action in (STRIP_MSS, DUPLICATE) for f in faults)
    nfq.bind(config["queue"], hook.on_packet, max_len=QUEUE_MAXLEN, range=FULL_COPY if rewrites else RAW_MAX)
    flavour = install_rules(config["queue"], selection.iptables_matches(kinds))
    install_prerouting(flavour, config["queue"], prerouting_addrs(hook))
    log.event("ready", iptables=flavour, pid=os.getpid())
    try:
        loop(nfq, hook, watcher, box)
    finally:
        hook.release_all()
        seen = watcher.stop(box.write_line, child.HOOK_NICE) if watcher is not None else {}
        if hook.watch is not None:
            seen["watch_drops"] = hook.watch.drops()
        log.close()
        log.event("stats", **queue_stats(config["queue"]), **seen, residency=hook.residency())
        box.close()
        nfq.unbind()


def loop(nfq, hook, watcher, box: Outbox) -> None:
    fd, stdin = nfq.get_fd(), sys.stdin.fileno()
    fds = [fd, stdin] + ([watcher] if watcher is not None else [])
    if hook.watch is not None:
        fds.append(hook.watch)
    while True:
        ready, writable, _ = select.select(
            fds, [box.fd] if box.pending() else [], [], hook.next_timeout(time.monotonic())
        )
        if fd in ready:
            nfq.run(block=False)
        if hook.watch is not None and hook.watch in ready:
            hook.watch.read()  # kept until a queued segment needs them: its socket never fills
        hook.release_due(time.monotonic())
        hook.log.flush()  # the batch this pass recorded, after all its verdicts
        if watcher in ready and not watcher.relay(box.write_line):
            fds.remove(watcher)  # it died: its drops stay unknown, the run an error
        if writable:
            box.send()
        if stdin in ready:
            line = os.read(stdin, 4096)
            if not line or b"stop" in line:
                return
            for command in line.decode(errors="replace").splitlines():
                hook.command(command)  # go T0


if __name__ == "__main__":
    main()
