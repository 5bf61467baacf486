"""The router hook with the faults that act on time or make segments up: link-down,
crash, reboot (the router's part: silence), duplicate, strip-mss, forge rst, forge
stale-syn. A subclass of tcplab.lab.hook.plain.Hook; the callback stays parse -> classify ->
decide -> apply, and what is in force when is decided by tcplab.core.faults (pure).

Segments the router makes up (a duplicate's copy, a forged RST, a stale SYN) are sent
through a raw socket of the router's own: locally generated, they leave through
OUTPUT, never through our FORWARD queue, so the hook never sees them twice. Each is
reported as a segment with `injected: true`.

A link set down takes the router's connected route with it, so what arrives for that
host is answered by the router's kernel with ICMP net unreachable in PREROUTING and
never reaches FORWARD. To record those segments, a scenario with link-down also
queues TCP toward that host in mangle PREROUTING: while the link is up the hook lets
them pass unrecorded (FORWARD sees them next), while it is down it records them as
dropped by the link-down and lets the kernel answer them.
"""

from __future__ import annotations

import heapq
import socket
import time

from tcplab.core import craft
from tcplab.core.faults import (
    DELAY,
    DROP,
    DUPLICATE,
    STRIP_MSS,
    Forge,
    HostFault,
    expected_seq,
    rst_after,
    schedule,
    silencing,
)
from tcplab.core.packet import parse_ipv4_tcp
from tcplab.core.rules import Verdict, decide
from tcplab.core.segments import Classified, Segment
from tcplab.lab.hook.plain import Hook, arrival, wire_length

NF_INET_PRE_ROUTING, NF_INET_LOCAL_OUT = 0, 3
# ICMP destination-unreachable codes (RFC 792) the router's kernel may send
ICMP_UNREACH = {0: "net unreachable", 1: "host unreachable", 3: "port unreachable"}
STALE_ISN_BACK = 0x10000000  # the stale SYN's ISN lies this far behind the real one
STALE_HOLD = 0.5  # the real SYN is held until the client's RST passed, at most this long
# (below the client's 1 s SYN timer, so it is not retransmitted meanwhile)


def _after(a: int, b: int) -> bool:
    return 0 < ((a - b) & 0xFFFFFFFF) < 0x80000000


class FaultHook(Hook):
    def __init__(
        self,
        faults,
        client_addrs,
        host_faults: list[HostFault],
        forges: list[Forge],
        addrs: dict[str, str],
        links: dict[str, dict],
        log=None,
        step: str | None = None,
    ):
        super().__init__(faults, client_addrs, log, step)
        self.host_faults, self.forges = tuple(host_faults), tuple(forges)
        self.addrs, self.links = addrs, links  # host -> address; host -> router interface
        self.host_of = {addr: host for host, addr in addrs.items()}
        self.t0: float | None = None  # the apps' start (the Record's t = 0)
        self.timers = schedule(self.host_faults, self.forges)
        for f in self.host_faults:  # silence has no action of its own; the ladder shows it
            if f.action in ("crash", "reboot"):
                self.timers.append((f.at, "silent", f))
                if f.until is not None:
                    self.timers.append((f.until, "back", f))
        self.timers.sort(key=lambda x: (x[0], x[1]))
        self.copies: list[tuple[float, int, bytes, dict]] = []  # (due, n, packet, fields)
        self.down: set[str] = set()
        self.ends: dict[int, dict[str, int]] = {}  # conn -> sender -> seq after its data
        self.tuples: dict[int, Segment] = {}  # conn -> a client-to-server segment of it
        self.stale = next((f for f in self.forges if f.kind == "stale-syn"), None)
        self.stale_held = None  # the real SYN's queue entry while it is held
        self.raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self._n = 0
        # Ready before the apps start: pyroute2's first import and its netlink socket
        # took 0.2 s here and over a second in the 6.1 TCG guest, and the hook gives no
        # verdict meanwhile (there the link went down 1.7 s late, the client's data
        # waiting in the queue behind it, network-restored-client-gave-up).
        self.link_setter = Links() if any(what in ("down", "up") for _at, what, _f in self.timers) else None

    # -- commands and timers (main loop) ----------------------------------------------
    def command(self, line: str) -> None:
        words = line.split()
        if words[:1] == ["go"] and len(words) == 2 and self.t0 is None:
            self.t0 = float(words[1])
        else:
            super().command(line)

    def t(self, mono: float) -> float | None:
        return None if self.t0 is None else mono - self.t0

    def next_timeout(self, now: float, idle: float = 0.5) -> float:
        due = [self.copies[0][0]] if self.copies else []
        if self.timers and self.t0 is not None:
            due.append(self.t0 + self.timers[0][0])
        wait = super().next_timeout(now, idle)
        return max(0.0, min([wait, *(d - now for d in due)]))

    def release_due(self, now: float) -> None:
        super().release_due(now)
        while self.copies and self.copies[0][0] <= now:
            _due, _n, packet, fields = heapq.heappop(self.copies)
            self.inject(packet, **fields)
        while self.t0 is not None and self.timers and self.t0 + self.timers[0][0] <= now:
            _at, what, fault = self.timers.pop(0)
            self.act(what, fault)

    def release_all(self) -> None:
        super().release_all()
        self.copies.clear()  # the run is over: a copy not yet sent is not sent
        self.timers.clear()

    def act(self, what: str, fault) -> None:
        if what in ("down", "up"):
            link = self.links[fault.host]
            assert self.link_setter is not None  # made when a timer sets a link
            self.link_setter.set(link["ifname"], what == "up", link["addr"], link["prefixlen"])
            if what == "down":
                self.down.add(fault.host)
            else:
                self.down.discard(fault.host)
        elif what == "forge":
            self.forge_rst(fault, None)
            return
        self.log.event(
            "fault",
            action=fault.action,
            host=fault.host,
            what=_SAYS[(fault.action, what)],
            fault=fault.describe(),
        )

    # -- segments ---------------------------------------------------------------------
    def on_packet(self, pkt) -> None:
        if pkt.hook == NF_INET_PRE_ROUTING:
            self.on_prerouting(pkt)
            return
        if pkt.hook == NF_INET_LOCAL_OUT:
            self.on_icmp(pkt)
            return
        super().on_packet(pkt)  # parse, classify, then this class's on_classified

    def on_prerouting(self, pkt) -> None:
        """Toward a host whose link is down: record it as the link-down's drop, and let
        the router's kernel answer it (ICMP net unreachable). Otherwise FORWARD sees it."""
        packet = pkt.get_payload()
        seg = parse_ipv4_tcp(packet)
        host = self.host_of.get(seg.dst) if seg else None
        if host not in self.down:
            pkt.accept()
            return
        now = arrival(pkt)
        seen = self.classifier.classify(seg)
        fault = next(f for f in self.host_faults if f.action == "link-down" and f.host == host)
        super().apply(
            _KernelDrops(pkt),
            seen,
            Verdict(DROP, fault=_Why(fault.describe() + " (the router answers ICMP net unreachable)")),
            now,
            packet,
        )

    def on_icmp(self, pkt) -> None:
        """An ICMP destination unreachable the router's own kernel sends (link-down):
        recorded as a fault event naming the TCP segment it answers, then let go."""
        packet = pkt.get_payload()
        pkt.accept()
        icmp = parse_icmp_unreach(packet)
        if icmp is None:
            return
        code, to, quoted_seq = icmp
        self.log.event(
            "fault",
            action="icmp",
            host=self.host_of.get(to, to),
            what=f"ICMP {ICMP_UNREACH.get(code, f'unreachable code {code}')}",
            fault=f"from the router, quoting seq={quoted_seq}",
        )

    def decide(self, seen, now: float) -> Verdict:
        s = seen.segment
        silent = silencing(self.host_faults, self.host_of.get(s.src), self.host_of.get(s.dst), self.t(now))
        if silent is not None:
            return Verdict(DROP, fault=silent)
        if self.stale is not None and seen.name == "syn" and seen.nth == 1 and self.stale_held is None:
            return Verdict(DELAY, STALE_HOLD, self.stale)
        return decide(self.faults, seen)

    def on_classified(self, pkt, seen, now: float, packet: bytes) -> None:
        verdict = self.decide(seen, now)
        sent = None
        if verdict.action == STRIP_MSS:  # the record keeps both: as it came, as it went
            sent = craft.strip_mss(packet)
            pkt.set_payload(sent)
        if verdict.fault is self.stale and verdict.action == DELAY:
            self.send_stale_syn(seen, packet)  # ahead of the real one
        self.apply(pkt, seen, verdict, now, packet, sent=sent)
        if verdict.fault is self.stale and verdict.action == DELAY:
            self.stale_held = next(e for e in self.held if e[2] is pkt)
        if verdict.action == DUPLICATE:
            self._n += 1
            heapq.heappush(
                self.copies,
                (
                    now + verdict.delay,
                    self._n,
                    packet,
                    dict(seen=seen, nth=seen.nth, fault=verdict.fault.describe() + " (the copy)"),
                ),
            )
        if verdict.action != DROP:
            self.learn(seen)
            for forge in rst_after(self.forges, seen.name, seen.nth, seen.sender):
                self.forge_rst(forge, seen.conn)
            if seen.name == "rst" and seen.sender == "client" and self.stale_held:
                self.release_stale()

    def learn(self, seen) -> None:
        s = seen.segment
        end = (s.seq + s.seq_space) & 0xFFFFFFFF
        ends = self.ends.setdefault(seen.conn, {})
        if seen.name != "rst" and (seen.sender not in ends or _after(end, ends[seen.sender])):
            ends[seen.sender] = end
        if seen.sender == "client":
            self.tuples[seen.conn] = s

    # -- making segments up -----------------------------------------------------------
    def inject(
        self,
        packet: bytes,
        seen=None,
        nth: int = 0,
        fault: str = "",
        name: str | None = None,
        sender: str | None = None,
        conn: int = 0,
    ) -> None:
        seg = parse_ipv4_tcp(packet)
        now = time.monotonic()  # before it leaves: an answer to it comes after it
        try:
            self.raw.sendto(packet, (seg.dst, 0))
        except OSError as e:  # e.g. no route while a link is down: the record says so
            self.log.event(
                "fault",
                action="inject",
                host=sender or seen.sender,
                what=f"not sent: {e.strerror}",
                fault=fault,
            )
            return
        seen = Classified(
            seg, name or seen.name, nth, sender or seen.sender, False, seen.conn if seen else conn
        )
        self.log.segment(
            self.log.next_id(),
            now,
            seen,
            "delivered",
            now,
            fault,
            packet,
            wire_length(packet),
            injected=True,
            sent_len=len(packet),
        )

    def send_stale_syn(self, seen, packet: bytes) -> None:
        """A SYN of the same 4-tuple with an old ISN (its options copied from the real
        one), as an old duplicate from an earlier incarnation would arrive."""
        stale = craft.with_seq(packet, seen.segment.seq - STALE_ISN_BACK)
        self.inject(stale, seen, 0, self.stale.describe())

    def release_stale(self) -> None:
        """The client refused the stale SYN's SYN-ACK (and the server dropped that
        request): the real SYN may go now."""
        entry, self.stale_held = self.stale_held, False
        if entry in self.held:
            self.held.remove(entry)
            heapq.heapify(self.held)
            heapq.heappush(self.held, (0.0, entry[1], entry[2]))  # due at once

    def forge_rst(self, forge: Forge, conn: int | None) -> None:
        """An RST toward forge.to with the sequence number it expects next, on the
        given connection (the latest one for a forge at a time)."""
        conn = conn if conn is not None else max(self.tuples, default=None)
        c2s = self.tuples.get(conn)
        seq = expected_seq(self.ends.get(conn, {}), forge.to) if c2s else None
        if seq is None:
            self.log.event(
                "fault", action="forge", host=forge.to, what="nothing to forge on", fault=forge.describe()
            )
            return
        if forge.to == "client":
            src, sport, dst, dport = c2s.dst, c2s.dport, c2s.src, c2s.sport
        else:
            src, sport, dst, dport = c2s.src, c2s.sport, c2s.dst, c2s.dport
        sender = "server" if forge.to == "client" else "client"
        packet = craft.rst(src, sport, dst, dport, seq)
        self.inject(packet, None, 0, forge.describe(), name="rst", sender=sender, conn=conn)


# What the record and the ladder say (short: the ladder's network column is narrow).
_SAYS = {
    ("link-down", "down"): "link down",
    ("link-down", "up"): "link up again",
    ("crash", "silent"): "crashed: silent",
    ("reboot", "silent"): "rebooting: silent",
    ("reboot", "back"): "back up, no sockets",
}


class _KernelDrops:
    """The router's kernel, not the hook, disposes of a segment for a downed link: the
    hook records the drop and hands the packet back for the kernel to refuse."""

    def __init__(self, pkt):
        self.pkt = pkt

    def drop(self) -> None:
        self.pkt.accept()


class _Why:
    def __init__(self, text: str):
        self.text = text

    def describe(self) -> str:
        return self.text


class Links:
    """The router's interfaces toward the hosts, set down or up (in this process's
    namespace), through one netlink socket opened up front. IPv4 keeps the address on
    a downed link and re-adds the connected route when it comes up (fib_add_ifaddr on
    NETDEV_UP); both are checked and restored anyway."""

    def __init__(self):
        from pyroute2 import IPRoute

        self.ipr = IPRoute()

    def set(self, ifname: str, up: bool, addr: str, prefixlen: int) -> None:
        ipr = self.ipr
        idx = ipr.link_lookup(ifname=ifname)[0]
        ipr.link("set", index=idx, state="up" if up else "down")
        if up and not any(
            a.get_attr("IFA_ADDRESS") == addr for a in ipr.get_addr(index=idx, family=socket.AF_INET)
        ):
            ipr.addr("add", index=idx, address=addr, prefixlen=prefixlen)


def parse_icmp_unreach(packet: bytes) -> tuple[int, str, int] | None:
    """(code, destination, quoted TCP sequence number) of an IPv4 ICMP destination
    unreachable quoting a TCP segment; None for anything else."""
    ihl = (packet[0] & 0x0F) * 4 if packet else 0
    if len(packet) < ihl + 8 + 20 + 8 or packet[9] != socket.IPPROTO_ICMP or packet[ihl] != 3:
        return None
    inner = ihl + 8
    inner_ihl = (packet[inner] & 0x0F) * 4
    if packet[inner + 9] != socket.IPPROTO_TCP or len(packet) < inner + inner_ihl + 8:
        return None
    seq = int.from_bytes(packet[inner + inner_ihl + 4 : inner + inner_ihl + 8], "big")
    return packet[ihl + 1], socket.inet_ntoa(packet[16:20]), seq


def make_hook(config: dict, faults, host_faults, forges, log=None) -> FaultHook | None:
    """A FaultHook when the scenario has faults only it can apply, else None (the
    plain Hook then does drop and delay as ever)."""
    if not (host_faults or forges or any(f.action in (DUPLICATE, STRIP_MSS) for f in faults)):
        return None
    return FaultHook(
        faults,
        config["client_addrs"],
        host_faults,
        forges,
        config["addrs"],
        config["links"],
        log,
        config.get("step"),
    )


def prerouting_addrs(hook) -> list[str]:
    """Hosts whose link may go down: what arrives for them is queued in PREROUTING too
    (see the module doc)."""
    if not isinstance(hook, FaultHook):
        return []
    return sorted({hook.addrs[f.host] for f in hook.host_faults if f.action == "link-down"})
