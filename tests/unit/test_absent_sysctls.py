"""A sysctl an older kernel lacks is accepted where its absence is the value asked for
(tcp_syn_linear_timeouts: 0 before 6.5, ...), left out of what the agents write, and
said in a note; any other value of it, or an unknown sysctl, is still the scenario's
error (exit 2, file:line: key). /proc/sys is a directory built here."""

from __future__ import annotations

import pytest

from tcplab.errors import ScenarioError
from tcplab.format.load import load_text
from tcplab.lab.preflight import check_sysctls_exist, settable

SCENARIO = """\
scenario: old-kernel
summary: a client on a kernel older than a sysctl it pins
hosts:
  client:
    sysctls: {net.ipv4.tcp_syn_retries: 2, net.ipv4.tcp_syn_linear_timeouts: %s}
apps:
  server: [listen: 8080, accept]
  client: [connect: "server:8080"]
expect:
  client: {connect: ok}
"""


@pytest.fixture
def proc_sys(tmp_path):
    """A kernel like 6.1: tcp_syn_retries, no tcp_syn_linear_timeouts."""
    (tmp_path / "net/ipv4").mkdir(parents=True)
    (tmp_path / "net/ipv4/tcp_syn_retries").write_text("6\n")
    return str(tmp_path)


def test_the_value_its_absence_means_is_accepted_left_out_and_noted(proc_sys):
    sc = load_text(SCENARIO % 0, "old.yaml")
    check_sysctls_exist([sc], proc_sys)  # no error
    values, notes = settable(sc.sysctls["client"], proc_sys)
    assert values == {"net.ipv4.tcp_syn_retries": "2"}
    assert len(notes) == 1 and "tcp_syn_linear_timeouts=0" in notes[0] and "6.5" in notes[0]


def test_another_value_is_still_an_error_with_its_line(proc_sys):
    sc = load_text(SCENARIO % 4, "old.yaml")
    with pytest.raises(ScenarioError) as e:
        check_sysctls_exist([sc], proc_sys)
    assert "tcp_syn_linear_timeouts" in str(e.value) and "old.yaml:5" in str(e.value)


def test_a_kernel_that_has_it_writes_it(proc_sys, tmp_path):
    (tmp_path / "net/ipv4/tcp_syn_linear_timeouts").write_text("4\n")
    sc = load_text(SCENARIO % 0, "new.yaml")
    values, notes = settable(sc.sysctls["client"], proc_sys)
    assert values["net.ipv4.tcp_syn_linear_timeouts"] == "0" and notes == []
