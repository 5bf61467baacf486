"""The ladder diagram: client | network | server, one line per event. Pure: events
in, rich Text out (the caller prints it on its Console, live or from a saved run).

Sequence numbers are shown relative to each side's ISN, as Wireshark does; the JSON
keeps the absolute values.
"""

from __future__ import annotations

from rich.text import Text

from tcplab.core.events import AppCalled, Event, FaultActed, KernelNoted, SegmentSeen, StateChanged
from tcplab.core.segments import flag_string

T_W, SIDE_W = 9, 30
MIN_WIDTH = 100  # narrower consoles get a cropped ladder rather than a wrapped one
STYLE = {"delivered": "green", "dropped": "bold red", "delayed": "yellow", "held": "bold cyan"}
HELD = "⏸ held"  # step mode: the presenter decides (core/step.py)


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
            return self._side(
                ev.t,
                ev.host,
                f"{ev.new}",
                "bold" if ev.source == "tracepoint" else "italic",
                f"{ev.old}→" if ev.old != "CLOSE" else "",
            )
        if isinstance(ev, AppCalled):
            took = f" {ev.t_end - ev.t:.3f}s" if ev.t_end is not None else ""
            style = "green" if ev.result == "ok" else "bold red"
            return self._side(
                ev.t_end if ev.t_end is not None else ev.t,
                ev.host,
                f"{ev.call}() → {ev.result or 'blocked'}{took}",
                style,
            )
        if isinstance(ev, FaultActed):  # drawn in the network column: the lab did it
            return self._side(ev.t, "router", f"⚡ {ev.host} {ev.what}", "bold yellow")
        if isinstance(ev, KernelNoted):
            return None
        return None

    def choices(self, pending, t: float, hints: dict[str, str]) -> list[Text]:
        """Step mode: the held segment's choices, each with the model's hint."""
        lines = [
            Text(f"{t:>{T_W - 1}.3f} ", style="dim")
            + Text(
                f"⏸ {pending.label()} is held in the router"
                + (f" (the scenario: {pending.scenario})" if pending.scenario else "")
                + ". What now?",
                style="bold cyan",
            )
        ]
        for keys, what, hint in (
            ("d/Enter", "deliver", hints.get("deliver")),
            ("x", "drop", hints.get("drop")),
            ("h", "hold", "it stays in the router; the kernels' timers go on"),
        ):
            lines.append(
                Text(f"{'':>{T_W}}  [{keys}] {what}: ", style="cyan")
                + Text(hint or "the model has nothing to say", style="dim")
            )
        return lines

    def decided(self, s: SegmentSeen, t: float | None) -> Text:
        """Step mode: the presenter's decision, at the moment it was carried out."""
        return self._time(t if t is not None else s.t) + self._segment(s, "by hand")[T_W:]

    def call_started(self, t: float, host: str, call: str, arg) -> Text:
        shown = "" if arg is None else (f"{arg[0]}:{arg[1]}" if isinstance(arg, (list, tuple)) else str(arg))
        return self._side(t, host, f"{call}({shown}) …", "dim")

    def _time(self, t: float) -> Text:
        return Text(f"{t:>{T_W - 1}.3f} ", style="dim")

    def _side(self, t: float, host: str, text: str, style: str, prefix: str = "") -> Text:
        line = self._time(t)
        label = (prefix + text)[: SIDE_W - 1]
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
        mine = (
            self._isn.setdefault((s.conn, s.sender), s.seq)
            if (s.flags & 0x02 and not s.injected)
            else self._isn.get((s.conn, s.sender), s.seq)
        )
        other = "server" if s.sender == "client" else "client"
        theirs = self._isn.get((s.conn, other))
        seq = (s.seq - mine) & 0xFFFFFFFF
        ack = (s.ack - theirs) & 0xFFFFFFFF if theirs is not None and s.flags & 0x10 else s.ack
        return seq, ack

    def _segment(self, s: SegmentSeen, who: str = "") -> Text:
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
        if who and len(label) + len(who) + 14 < body * 2 // 3:  # who decided, if it fits
            label = label[:-1] + f" · {who} "
        if s.fate in ("dropped", "held"):
            # The arrow stops where the segment died (or waits), two thirds across.
            reach = max(len(label) + 3, body * 2 // 3)
            if s.sender == "client":
                end = "✕ dropped" if s.fate == "dropped" else HELD
                line.append(("──" + label).ljust(reach, "─") + end, style=style)
            else:
                end = "dropped ✕" if s.fate == "dropped" else "held ⏸"
                text = end + label.rjust(reach, "─") + "──"
                line.append(text.rjust(self.net_w), style=style)
            return line
        if s.fate == "delayed":
            held = f"⧗{s.t_out - s.t:.3f}s " if s.t_out is not None else "⧗ "
            arrow = (label + held).center(body, "─")
        else:
            arrow = label.center(body, "─")
        arrow = arrow[:body]
        line.append(("─" + arrow + "▶") if s.sender == "client" else ("◀" + arrow + "─"), style=style)
        return line
