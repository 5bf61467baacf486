"""The ladder diagram: client | network | server, one line per event. Pure: events
in, rich Text out (the caller prints it on its Console, live or from a saved run).

Sequence numbers are shown relative to each side's ISN, as Wireshark does; the JSON
keeps the absolute values.
"""

from __future__ import annotations

from rich.text import Text

from tcplab.core.events import (AppCalled, Event, FaultActed, KernelNoted, SegmentSeen,
                                StateChanged)
from tcplab.core.segments import flag_string

T_W, SIDE_W = 9, 30
MIN_WIDTH = 100  # narrower consoles get a cropped ladder rather than a wrapped one
STYLE = {"delivered": "green", "dropped": "bold red", "delayed": "yellow"}


class Ladder:
    def __init__(self, width: int = MIN_WIDTH) -> None:
        self._isn: dict[tuple[int, str], int] = {}
        self.net_w = max(MIN_WIDTH, width) - T_W - 2 * SIDE_W - 1

    def header(self) -> Text:
        t = Text()
        t.append(f"{'t (s)':>{T_W - 1}} ", style="bold")
        t.append(f"{'client':<{SIDE_W}}", style="bold cyan")
        t.append(f"{'network (router)':^{self.net_w}}", style="bold")
        t.append(f"{'server':>{SIDE_W}}", style="bold magenta")
        return t

    def line(self, ev: Event) -> Text | None:
        if isinstance(ev, SegmentSeen):
            return self._segment(ev)
        if isinstance(ev, StateChanged):
            return self._side(ev.t, ev.host, f"{ev.new}", "bold" if ev.source == "tracepoint"
                              else "italic", f"{ev.old}→" if ev.old != "CLOSE" else "")
        if isinstance(ev, AppCalled):
            took = f" {ev.t_end - ev.t:.3f}s" if ev.t_end is not None else ""
            style = "green" if ev.result == "ok" else "bold red"
            return self._side(ev.t_end if ev.t_end is not None else ev.t, ev.host,
                              f"{ev.call}() → {ev.result or 'blocked'}{took}", style)
        if isinstance(ev, FaultActed):  # drawn in the network column: the lab did it
            return self._side(ev.t, "router", f"⚡ {ev.host} {ev.what}", "bold yellow")
        if isinstance(ev, KernelNoted):
            return None
        return None

    def call_started(self, t: float, host: str, call: str, arg) -> Text:
        shown = "" if arg is None else (f"{arg[0]}:{arg[1]}" if isinstance(arg, (list, tuple))
                                        else str(arg))
        return self._side(t, host, f"{call}({shown}) …", "dim")

    def _time(self, t: float) -> Text:
        return Text(f"{t:>{T_W - 1}.3f} ", style="dim")

    def _side(self, t: float, host: str, text: str, style: str, prefix: str = "") -> Text:
        line = self._time(t)
        label = (prefix + text)[:SIDE_W - 1]
        if host == "client":
            line.append(f"{label:<{SIDE_W}}", style=style)
        elif host == "server":
            line.append(" " * (SIDE_W + self.net_w))
            line.append(f"{label:>{SIDE_W}}", style=style)
        else:
            line.append(" " * SIDE_W)
            line.append(f"{label:^{self.net_w}}", style=style)
        return line

    def _rel(self, s: SegmentSeen) -> tuple[int, int]:
        mine = self._isn.setdefault((s.conn, s.sender), s.seq) if (
            s.flags & 0x02 and not s.injected) else \
            self._isn.get((s.conn, s.sender), s.seq)
        other = "server" if s.sender == "client" else "client"
        theirs = self._isn.get((s.conn, other))
        seq = (s.seq - mine) & 0xFFFFFFFF
        ack = (s.ack - theirs) & 0xFFFFFFFF if theirs is not None and s.flags & 0x10 else s.ack
        return seq, ack

    def _segment(self, s: SegmentSeen) -> Text:
        seq, ack = self._rel(s)
        label = f" {s.name} #{s.nth} [{flag_string(s.flags)}] seq={seq}"
        if s.flags & 0x10:
            label += f" ack={ack}"
        if s.length:
            label += f" len={s.length}"
        label += " "
        if s.retransmission:
            label = label.replace(f"#{s.nth}", f"#{s.nth}↻")
        if s.injected:  # made by the router: a duplicate's copy, a forged segment
            label = label.replace(f" {s.name} #{s.nth}", f" ⊕{s.name} (router)")
        style = STYLE.get(s.fate, "")
        line = self._time(s.t)
        line.append(" " * SIDE_W)
        body = self.net_w - 2
        if s.fate == "dropped":
            # The arrow stops where the segment died, two thirds of the way across.
            reach = max(len(label) + 3, body * 2 // 3)
            if s.sender == "client":
                line.append(("──" + label).ljust(reach, "─") + "✕ dropped", style=style)
            else:
                text = "dropped ✕" + label.rjust(reach, "─") + "──"
                line.append(text.rjust(self.net_w), style=style)
            return line
        if s.fate == "delayed":
            held = f"⧗{s.t_out - s.t:.3f}s " if s.t_out is not None else "⧗ "
            arrow = (label + held).center(body, "─")
        else:
            arrow = label.center(body, "─")
        arrow = arrow[:body]
        line.append(("─" + arrow + "▶") if s.sender == "client" else ("◀" + arrow + "─"),
                    style=style)
        return line
