"""What a run's record says the apps did and the network delivered (Observed)."""

from __future__ import annotations

import dataclasses
import math

from tcplab.core.legs import inbound_worst
from tcplab.core.model.kernel import LAST_HOP
from tcplab.core.model.teardown.params import ENDINGS, RACE_CAP, RACE_NOISE, SOCKET_OPTIONS, Unsupported
from tcplab.core.model.teardown.numbering import handshake_answers, isns, relative
from tcplab.core.model.teardown.paws import stamps
from tcplab.core.model.teardown.prediction import Observed
from tcplab.core.craft import tsval_of
from tcplab.core.segments import ACK, FIN, SYN


def observe(sc, record, host_faults: tuple) -> tuple[Observed | None, tuple]:
    """Observed from a record (None when the record has no connection to speak of),
    and the host faults on the model's clock."""
    syns = record.sent_by("client", "syn")
    if not syns:
        return None, host_faults
    origin, conn = syns[0].t, syns[0].conn
    for host, opener in (("client", "connect"), ("server", "accept")):
        plan = [s.call for s in sc.apps[host]]
        turned_on = opener in plan and "keepalive" in plan[plan.index(opener) :]
        if not turned_on and any(
            s.conn == conn and s.name == "keepalive" and s.sender == host for s in record.segments
        ):
            # SO_KEEPALIVE set before the connection existed (inherited by accept(),
            # armed by tcp_finish_connect()): not followed by keepalive.py
            raise Unsupported(f"{host} keepalive probes, keepalive set before the connection (not modelled)")
        if any(s.conn == conn and s.name == "keepalive" and s.sender == host for s in record.segments):
            done = established_at(record, conn, host)
            again = [
                s
                for s in record.segments
                if s.conn == conn
                and s.name in ("syn", "syn-ack")
                and done is not None
                and (
                    ((s.nth > 1 or s.injected) and s.t > done)
                    # the first SYN held by the router past the handshake (gen-9160:
                    # its challenge ACK reset the client's idle time)
                    or (s.name == "syn" and s.t_out is not None and s.t_out > done)
                )
            ]
            if again:
                # A SYN or SYN-ACK repeated (a retransmission, the router's copy) once the
                # host was established draws its answers after the handshake: the handshake model's, which the
                # teardown simulation does not replay, and whether one reset the idle
                # time (tcp_ack()'s rcv_tstamp) decides every probe's moment
                # (gen-8079, gen-8230, gen-9160 on 6.18: false FAILs before this)
                raise Unsupported(
                    f"{host} keepalive probes after a handshake with "
                    f"{again[0].name} #{again[0].nth} repeated (its answers "
                    "are the handshake model's)"
                )
    steps = {}
    for host, opener in (("client", "connect"), ("server", "accept")):
        plan = sc.apps[host]
        calls = sorted((c for c in record.apps if c.host == host and c.iteration is None), key=lambda c: c.t)
        if [c.call for c in calls] != [s.call for s in plan[: len(calls)]]:
            raise Unsupported(f"the {host}'s calls in the record do not follow its steps")
        at = [s.call for s in plan].index(opener)
        before = [None for s in plan[:at] if s.call in SOCKET_OPTIONS]
        steps[host] = before + [
            (c.t - origin, None if c.t_end is None else c.t_end - origin) for c in calls[at + 1 :]
        ]
    arrivals = {
        (s.sender, s.name, s.nth): s.t_out - origin
        for s in record.segments
        if s.conn == conn and not s.injected and s.t_out is not None
    }
    late = []
    for sender, name, receiver, opener, flags in (
        ("server", "syn-ack", "client", "connect", SYN | ACK),
        ("client", "syn", "server", "accept", SYN),
        ("client", "ack", "server", "accept", ACK),
    ):
        opened = [
            c.t_end
            for c in record.apps
            if c.host == receiver and c.call == opener and c.iteration is None and c.result == "ok"
        ]
        originals = [s for s in record.sent_by(sender, name)]
        late += [
            (
                s.t_out - origin,
                receiver,
                flags,
                # a copy carries its original's timestamp (TSval)
                (originals[0].t if s.injected and originals else s.t) - origin,
            )
            for s in record.segments
            if s.sender == sender
            and s.name == name
            and s.conn == conn
            and opened
            and s.t_out is not None
            and s.t_out > opened[0]
        ]  # copies too
    lag = app_lag(record)
    # A segment the router let go before a call's stamp reaches the host's kernel up to
    # the machine's slowest way from the router later (legs.py, measured in this run:
    # ~0.05 ms here, 1.5 ms in a 6.1 TCG guest whose server took an out-of-order
    # segment the router released 2.6 ms before its close() only after it, and reset:
    # gen-3003 in the guest's lab tests, session 13).
    leg, _change, _seg = inbound_worst(record, RACE_CAP)
    race = RACE_NOISE + lag + max(0.0, leg - LAST_HOP)
    # Timed host faults count from the client's start (its first call), a little
    # before its first SYN; where the record says when one acted (the agent's or the
    # hook's own stamp), that moment is taken.
    start = min((c.t for c in record.apps if c.host == "client"), default=origin) - origin
    shifted = []
    for f in host_faults:
        acted = [e.t - origin for e in record.faults if e.action == f.action and e.host == f.host]
        at = round(acted[0] if acted else f.at + start, 9)  # as the event queue rounds
        shifted.append(
            dataclasses.replace(f, at=at, until=(None if f.until is None else f.until + at - f.at))
        )
    copies: dict[tuple[str, str], list[tuple[float, bool]]] = {}
    for s in record.segments:  # a duplicate's copies (not the router's forgeries)
        if s.injected and s.t_out is not None and (s.fault or "").startswith("duplicate"):
            copies.setdefault((s.sender, s.name), []).append((s.t_out - origin, truncated(s)))
    return Observed(
        steps,
        arrivals,
        race,
        tuple(late),
        {k: tuple(v) for k, v in copies.items()},
        {h: rtt_samples(record, h, conn) for h in ("client", "server")},
        {
            (s.sender, s.name, s.nth): s.t - origin
            for s in record.segments
            if s.conn == conn and not s.injected
        },
        stamps(record, conn, origin),
        {
            host: max(
                0,
                sum(
                    1
                    for s in record.segments
                    if s.conn == conn and s.sender == host and s.name == name and not s.injected
                )
                - 1,
            )
            for host, name in (("client", "syn"), ("server", "syn-ack"))
        },
        contents(record, conn),
        handshake_answers(record, conn),
        # the legs rtt_samples() added to a first sample taken from the handshake
        {h: own_legs(record, h) for h in handshake_rtt(record)},
    ), tuple(shifted)


def contents(record, conn: int) -> dict[tuple[str, str, int], tuple[int, int]]:
    """(sender, name, nth) -> its (seq, ack) relative to the ISNs, for the run's own
    segments (numbering.py); empty without both ISNs."""
    isn = isns(record, conn)
    if len(isn) < 2:
        return {}
    return {
        (s.sender, s.name, s.nth): relative(s.sender, s.flags, s.seq, s.ack, isn)
        for s in record.segments
        if s.conn == conn and not s.injected
    }


def truncated(s) -> bool:
    """A copy the router sent with fewer bytes than the segment has: the hook queues
    only the first RAW_MAX (256) bytes of a packet (lab/hook/__main__.py, rawstore.py)
    and its copy is those bytes (raw_send_hdrinc() then sets the IP length to 256).
    Such copies of data were answered by full sockets and by closed ones (an RST) on
    6.18, as a whole copy is, but never by a TIME_WAIT socket (gen-7028, gen-7204,
    gen-7262; a whole 100-byte copy was, gen-2004): not understood, so not modelled.
    To a closed socket, such a copy drew an RST in gen-3057, gen-3076 and gen-6077 and
    none in gen-8186, so there too it is not judged. The hook copies whole packets when
    a fault duplicates since session 9, but the record keeps RAW_MAX bytes of every
    packet, so a whole copy looked the same here (3 runs of seeds 9000-9299 not judged).
    Since session 10 the hook records the bytes it sent (`sent_len`); records without
    it are read as before."""
    if s.sent_len is not None:  # the router said how much it sent (session 10 on)
        return s.sent_len < s.wire_len
    held = len(s.raw) // 2
    return bool(s.raw) and s.wire_len is not None and held < s.wire_len


def established_at(record, conn: int, host: str) -> float | None:
    """When the host's side of the handshake was done, as the router saw it: the
    client's at the first SYN-ACK, the server's at the client's first segment after it."""
    synacks = [s.t for s in record.segments if s.conn == conn and s.name == "syn-ack" and not s.injected]
    if not synacks:
        return None
    if host == "client":
        return synacks[0]
    return next(
        (
            s.t
            for s in record.segments
            if s.conn == conn and s.sender == "client" and s.name != "syn" and s.t > synacks[0]
        ),
        None,
    )


def _after(a: int, b: int) -> bool:
    """Sequence number a is after b (mod 2^32, as the kernel's after())."""
    return 0 < (a - b) % 2**32 < 2**31


def rtt_samples(record, host: str, conn: int) -> list[float]:
    """The RTT samples the host's kernel took, as the router saw them: its first one
    from the handshake, then one per ACK from the peer that acknowledges new data of
    the host's (tcp_clean_rtx_queue(): from the oldest segment it acknowledges;
    retransmitted ones are not timed, Karn), up to the host's first FIN. Where the
    host's own timestamps put its first sample above that (kernel_rtt_range(), the
    range's bottom; the client's SYN sent once), that bottom: the router cannot see all of the client's
    way out, 5-30 ms in a TCG VM (the 6.1 guest's fin-lost, session 14: the router's
    view and the client's turnaround gave 8.4 ms, its TSvals 16-18 ms, and its FIN's
    RTOs ran from 220 ms, not the model's 212)."""
    first = handshake_rtt(record).get(host)
    bound = kernel_rtt_range(record).get(host)
    if first is not None and bound is not None:
        first = max(first, bound[0])
    out = [first] if first is not None else []
    fin = next(
        (s.t for s in record.segments if s.conn == conn and s.sender == host and s.flags & FIN), math.inf
    )
    sent = [
        s
        for s in record.segments
        if s.conn == conn and s.sender == host and s.length and not s.injected and s.t < fin
    ]
    if any(s.retransmission for s in sent):
        return out  # Karn: the retransmitted range is not timed; keep the handshake's
    acks = [
        a
        for a in record.segments
        if a.conn == conn
        and a.sender != host
        and a.flags & ACK
        and not a.injected
        and a.t_out is not None
        and a.t_out < fin
    ]
    una = None
    for a in sorted(acks, key=lambda a: a.t_out):
        newly = [
            s
            for s in sent
            if not _after(s.seq + s.length, a.ack) and (una is None or _after(s.seq + s.length, una))
        ]
        if newly:
            out.append(max(a.t_out - min(s.t for s in newly), 0.0))
            una = a.ack
    return out


def app_lag(record) -> float:
    """The worst lag, in this run, from an app's stamp of close() or shutdown() to the
    kernel's act on it (the tracepoint's state change on that host): how far the
    stamps may be off."""
    worst = 0.0
    changes = [e for e in record.states() if e.source == "tracepoint"]
    for c in record.apps:
        if c.call not in ENDINGS or c.t_end is None:
            continue
        acts = [
            e.t
            for e in changes
            if e.host == c.host
            and c.t - 1e-4 <= e.t <= c.t_end
            and e.old in ("ESTABLISHED", "CLOSE_WAIT", "FIN_WAIT2")
        ]
        if acts:
            worst = max(worst, acts[0] - c.t)
    return worst


def handshake_rtt(record) -> dict[str, float]:
    """Each side's first RTT sample, as the router saw the handshake: the client's from
    its SYN to the SYN-ACK's arrival, the server's from its SYN-ACK to the ACK's."""
    out = {}
    for host, ask, answer in (("client", "syn", "syn-ack"), ("server", "syn-ack", "ack")):
        other = "server" if host == "client" else "client"
        q, a = record.sent_by(host, ask), record.sent_by(other, answer)
        if not q:
            continue
        # what completed the handshake: the first of its answers to get through, or,
        # at the server, any ACK-bearing segment of the client's (data, a FIN) when the
        # ACK itself was held or lost (tcp_check_req() takes whichever comes first)
        done = [s.t_out for s in a if s.t_out is not None]
        if host == "server":
            done += [
                s.t_out
                for s in record.segments
                if s.conn == q[0].conn
                and s.sender == other
                and s.flags & ACK
                and not s.flags & SYN
                and not s.injected
                and s.t_out is not None
                and s.t > q[0].t
            ]
        if done:
            out[host] = max(min(done) - _echoed(q).t, 0.0) + own_legs(record, host)
    return out


def kernel_rtt_range(record) -> dict[str, tuple[float, float]]:
    """The client's first RTT sample as its own kernel took it, from the timestamps
    it sent (RFC 7323 TSval, tcp_time_stamp_ts(): one clock, 1 ms ticks): the SYN's
    (stamped in tcp_connect(), the stamp tcp_clean_rtx_queue() takes the sample from)
    and the handshake ACK's (built by tcp_rcv_synsent_state_process() right after that
    sample). Between two ticks the time lies within 1 ms either side, so a range (lo,
    hi). The router cannot see the client's own way out, 5-30 ms in a TCG VM: on 6.12
    network-down's SYN went 25 ms of TSval ahead of its ACK with 13.5 ms between them
    at the router, and the RTOs were 25 + 200 ms, not 13.5 + 200. Only for a SYN sent
    once (after a retransmission the sample is Karn's, now - TSecr: handshake_rtt)."""
    syns = record.sent_by("client", "syn")
    if len(syns) != 1:
        return {}
    acks = [s for s in record.sent_by("client", "ack") if s.conn == syns[0].conn]
    sent = tsval_of(syns[0].raw)
    echoed = tsval_of(acks[0].raw) if acks else None
    if sent is None or echoed is None:
        return {}
    ticks = (echoed - sent) % 2**32
    if ticks >= 2**31:
        return {}
    return {"client": (max(ticks - 1, 0) / 1000, (ticks + 1) / 1000)}


def own_legs(record, host: str) -> float:
    """What the router does not see of a host's RTT: the way from the host's kernel to
    the router and back (veth, the host's own stack), measured as the host's turnaround
    on its first handshake answer — the client's ACK after the SYN-ACK left the router,
    the server's SYN-ACK after the SYN did (immediate answers). ~0.1 ms here, 5-40 ms in
    a TCG VM, where it is most of the RTT the kernel measures (and its RTO adds)."""
    question, answer = ("syn-ack", "ack") if host == "client" else ("syn", "syn-ack")
    other = "server" if host == "client" else "client"
    q = first_arrived(record.sent_by(other, question))
    if q is None:
        return 0.0
    a = next((s for s in record.sent_by(host, answer) if s.t >= q.t_out), None)
    return max(a.t - q.t_out, 0.0) if a is not None else 0.0


def _echoed(asks: list):
    """The SYN (or SYN-ACK) the first RTT sample counts from. Sent once: that one
    (tcp_clean_rtx_queue()'s, or tcp_synack_rtt_meas()'s snt_synack). Retransmitted:
    Karn's rule leaves no sample of its own, and tcp_ack_update_rtt() takes now -
    TSecr, the TSval of the ask the peer took its ts_recent from: the first one that
    reached it (the request keeps the SYN that made it, tcp_check_req() answering a
    retransmitted SYN without taking its TSval; the client in SYN_SENT the first
    SYN-ACK). Seen on 6.18: gen-4194 (SYN-ACK #2 answered after 1 s: no probe of the
    server's FIN held 1 s), gen-4233 (SYN #2: no retransmission of the client's FIN).
    The first to reach it, not the first sent that got through: a held SYN overtaken
    by its retransmission is answered after it (gen-18274 on 6.18: SYN #1 held 1.5 s,
    #2 answered at 1 s; timed from #1, the client's RTO came out 2.3 s, not 206 ms)."""
    if len(asks) == 1:
        return asks[0]
    return first_arrived(asks) or asks[-1]


def first_arrived(segments: list):
    """Of segments sent, the one the router let go first (None if none got through):
    a held one may be overtaken by a later one."""
    through = [s for s in segments if s.t_out is not None]
    return min(through, key=lambda s: s.t_out) if through else None


def first_closer(record) -> str | None:
    fins = [s for s in record.segments if s.name == "fin"]
    return fins[0].sender if fins else None
