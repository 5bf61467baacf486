"""The two state observers on the kernel: one handshake and teardown between two
namespaces, watched by a TraceSession and by a DiagPoller in the server namespace.

The server's INPUT chain drops every non-SYN segment for the first 1.3 s, so the
client is ESTABLISHED at once while the server holds a request sock (SYN_RECV) that
only inet_diag shows; its SYN-ACK retransmit at 1 s is a tcp_retransmit_synack. Then
the client's data completes the handshake, the server closes first and its socket
ends in TIME_WAIT, which again only inet_diag shows.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest
from labhelpers import LATENCY, ns_argv

from tcplab.core.events import KernelNoted, StateChanged
from tcplab.lab.tracefs import TraceSession, leftover_instances, to_events

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, tracefs)"),
    pytest.mark.skipif(shutil.which("iptables") is None, reason="needs iptables"),
]

RUN = f"tlt-{os.getpid()}"
CLIENT_NS, SERVER_NS = f"{RUN}-c", f"{RUN}-s"
CLIENT_IP, SERVER_IP, PORT = "198.18.250.1", "198.18.250.2", 8080
HOLD_ACK = ["INPUT", "-p", "tcp", "--dport", str(PORT), "!", "--syn", "-j", "DROP"]

SERVER = f"""
import socket
s = socket.socket(); s.bind(({SERVER_IP!r}, {PORT})); s.listen(8); print("ready", flush=True)
c, _ = s.accept(); c.recv(10); c.close(); s.close()
"""
CLIENT = f"""
import socket, sys
c = socket.socket(); c.connect(({SERVER_IP!r}, {PORT}))
print("connected", c.getsockname()[1], flush=True)
sys.stdin.readline(); c.sendall(b"hi"); c.recv(10); c.close()
"""
POLLER = """
import json, socket, sys
from pyroute2 import DiagSocket
from tcplab.lab.diag import REQUEST_STATES, STATES, DiagPoller, dump_tcp, open_diag_socket
seen = []
with DiagPoller(seen.append) as poller:
    print("polling", flush=True)
    sys.stdin.read()
    known = poller.known()
# The same dump read by dump_tcp and by pyroute2's DiagSocket, back to back.
ds = DiagSocket()
ds.bind()
with open_diag_socket() as sock:
    ours = dump_tcp(sock)
theirs = [(m["idiag_src"], m["idiag_sport"], m["idiag_dst"], m["idiag_dport"],
           STATES[m["idiag_state"]])
          for m in ds.get_sock_stats(family=socket.AF_INET, protocol=socket.IPPROTO_TCP,
                                     states=REQUEST_STATES)]
ds.close()
print(json.dumps({"seen": seen, "known": known, "ours": ours, "theirs": theirs}))
"""


def in_ns(ns: str, code: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.Popen(
        ns_argv(ns, sys.executable, "-c", code),
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def expect(proc: subprocess.Popen, word: str, timeout: float = 5.0) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    assert line.startswith(word), f"expected {word!r} within {timeout} s, got {line!r}"
    return line


def iptables(ns: str, *args: str) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    subprocess.run(ns_argv(ns, "iptables", *args), check=True, env=env)


@contextmanager
def two_namespaces():
    """Client and server namespaces joined by a veth created inside them (the root
    namespace never holds an interface, not even for a moment)."""
    from pyroute2 import NetNS, netns

    try:
        for ns in (CLIENT_NS, SERVER_NS):
            netns.create(ns)
        with NetNS(CLIENT_NS) as ipr:
            ipr.link("add", ifname="veth0", kind="veth", peer={"ifname": "veth0", "net_ns_fd": SERVER_NS})
        for ns, addr in ((CLIENT_NS, CLIENT_IP), (SERVER_NS, SERVER_IP)):
            with NetNS(ns) as ipr:
                (veth,) = ipr.link_lookup(ifname="veth0")
                ipr.addr("add", index=veth, address=addr, prefixlen=30)
                for index in (veth, *ipr.link_lookup(ifname="lo")):
                    ipr.link("set", index=index, state="up")
        yield
    finally:
        for ns in (CLIENT_NS, SERVER_NS):
            if ns in netns.listnetns():
                netns.remove(ns)


def run_exchange(procs: list) -> tuple[float, int, dict]:
    """The exchange described at the top; returns t0, the client port, and what the
    poller printed: its changes, known() at the end, and a last dump read two ways."""
    iptables(SERVER_NS, "-A", *HOLD_ACK)
    poller = in_ns(SERVER_NS, POLLER)
    procs.append(poller)
    expect(poller, "polling")
    server = in_ns(SERVER_NS, SERVER)
    procs.append(server)
    expect(server, "ready")
    t0 = time.monotonic()
    client = in_ns(CLIENT_NS, CLIENT)
    procs.append(client)
    client_port = int(expect(client, "connected").split()[1])
    time.sleep(1.3)  # past the SYN-ACK retransmit at 1 s, whose ACK is dropped too
    iptables(SERVER_NS, "-D", *HOLD_ACK)
    client.stdin.write("go\n")
    client.stdin.flush()
    assert client.wait(5) == 0 and server.wait(5) == 0
    # a few polls of the server's TIME_WAIT (it lasts 60 s): 0.1 s was once too short
    # under CI's load for the poller to get the CPU (2ea85a4: ['SYN_RECV', 'CLOSE'],
    # the request seen going, the timewait socket never polled)
    time.sleep(0.5 * LATENCY)
    out, _ = poller.communicate(timeout=5)
    return t0, client_port, json.loads(out.splitlines()[-1])


def test_tracepoint_and_inet_diag_see_their_states():
    procs: list[subprocess.Popen] = []
    with two_namespaces(), TraceSession(f"{RUN}-trace") as trace:
        assert trace.missing == []
        try:
            t0, port, polled = run_exchange(procs)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    records = trace.records()
    from pyroute2 import netns

    assert leftover_instances(RUN) == []
    assert not {CLIENT_NS, SERVER_NS} & set(netns.listnetns())
    assert trace.lost == 0

    events = to_events(records, {CLIENT_IP: "client", SERVER_IP: "server"}, t0)

    def states(host, **where):
        return [
            e
            for e in events
            if isinstance(e, StateChanged)
            and e.host == host
            and all(getattr(e, k) == v for k, v in where.items())
        ]

    client = states("client", lport=port)
    assert [(e.old, e.new) for e in client[:2]] == [("CLOSE", "SYN_SENT"), ("SYN_SENT", "ESTABLISHED")]
    child = states("server", rport=port)
    if [(e.old, e.new) for e in child[:1]] == [("SYN_RECV", "ESTABLISHED")]:
        # 6.1 reports the child's clone as LISTEN->SYN_RECV on the listener's own
        # addresses (remote port 0), at the same moment (docs/kernel-notes.md, the 6.1 run).
        clone = states("server", rport=0, old="LISTEN", new="SYN_RECV")
        assert clone and abs(clone[-1].t - child[0].t) < 0.05, clone  # one softirq
        child = [clone[-1], *child]
    assert [(e.old, e.new) for e in child[:2]] == [("LISTEN", "SYN_RECV"), ("SYN_RECV", "ESTABLISHED")]
    # The tracepoint shows the server's child only when the handshake completes, after
    # the drop rule went at 1.3 s, and never shows TIME_WAIT.
    assert child[0].t > 1.3, f"child appeared at {child[0].t:.3f} s, expected after 1.3 s"
    assert all(e.new != "TIME_WAIT" for e in events if isinstance(e, StateChanged))
    synacks = [
        e.t
        for e in events
        if isinstance(e, KernelNoted) and e.host == "server" and e.event == "tcp_retransmit_synack"
    ]
    # The request's SYN-ACK timer: 1 s after the SYN, late by up to one 4 ms jiffy plus
    # timer-wheel slack.
    after_syn = [round(t - client[0].t, 3) for t in synacks]
    assert after_syn and 1.0 <= after_syn[0] <= 1.05, f"SYN-ACK retransmits at +{after_syn} s"

    diag = polled["seen"]
    conn = [
        d
        for d in diag
        if (d["laddr"], d["lport"], d["raddr"], d["rport"]) == (SERVER_IP, PORT, CLIENT_IP, port)
    ]
    seen = [d["new"] for d in conn]
    # Polling misses short states (the server's ESTABLISHED lasts microseconds here), but
    # the request sock lived 1.3 s and the timewait minisocket outlives the test. On a
    # failure, both observers' view of the connection is printed: a CI run once saw
    # ['SYN_RECV', 'CLOSE'] here and printed too little to say why.
    views = {
        "polled": [(round(d["mono"] - t0, 4), d["old"], d["new"]) for d in conn],
        "traced": [(round(e.t, 4), e.host, e.old, e.new) for e in events if isinstance(e, StateChanged)],
        "noted": [(round(e.t, 4), e.host, e.event) for e in events if isinstance(e, KernelNoted)],
        "last dump": polled["ours"],
    }
    assert seen[0] == "SYN_RECV" and seen[-1] == "TIME_WAIT", f"inet_diag saw {seen}: {views}"
    # One clock: the request sock was polled within a few polls after the client's
    # SYN_SENT tracepoint, more than a second before the server child's.
    seen_after = conn[0]["mono"] - t0 - client[0].t
    assert 0 <= seen_after < 0.1, f"request sock polled {seen_after:.3f} s after SYN_SENT"
    assert ("CLOSE", "LISTEN") in [(d["old"], d["new"]) for d in diag if d["rport"] == 0]
    # The timewait socket is all the server namespace holds at the end: known() has it,
    # and dump_tcp reads the kernel's messages as pyroute2 does.
    timewait = [SERVER_IP, PORT, CLIENT_IP, port]
    assert polled["known"] == [timewait]
    assert polled["ours"] == polled["theirs"] == [[*timewait, "TIME_WAIT"]]
