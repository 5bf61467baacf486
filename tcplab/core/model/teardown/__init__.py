"""What this kernel does when a connection closes: the Linux teardown timers as pure code.

Rules from ../shared/docs/LINUX-TCP.md rows 4-8a, checked on 6.18 by the scenarios in
scenarios/teardown (numbers in docs/kernel-notes.md, rules in docs/kernel-model.md):

- RTO (tcp_rtt_estimator, __tcp_set_rto): after one RTT sample m, srtt = m and
  rttvar = max(2m, tcp_rto_min), so the RTO is m + max(2m, rto_min), rounded up to
  jiffies: 0.204 s on a LAN at HZ=250.
- A FIN that is not acknowledged (FIN_WAIT1, CLOSING, LAST_ACK): one tail loss probe
  after min(2 srtt + rto_min, RTO) = RTO (tcp_schedule_loss_probe, when
  tcp_early_retrans is 3 or 4), then RTO retransmissions, the wait doubling each time
  and capped at rto_max: offsets R, 2R, 4R, 8R, ... from the first FIN.
- Giving up (tcp_write_timeout, retransmits_timed_out): at an RTO expiry, once the time
  since the first RTO retransmission (retrans_stamp; the probe does not set it) reaches
  tcp_model_timeout(boundary, TCP_RTO_MIN = 200 ms, whatever tcp_rto_min_us says):
  (2^(b+1) - 1) * 0.2 s up to b = log2(rto_max / 0.2 s), rto_max for each one beyond.
  b = tcp_orphan_retries for an orphan (close()d; 0 means 8 while the RTO is below
  rto_max), tcp_retries2 when the application still holds the socket. The socket is
  destroyed silently: no RST.
- FIN_WAIT2 after close(): tcp_fin_time() = max(tcp_fin_timeout, 3.5 RTO), kept by a
  timewait minisocket in substate FIN_WAIT2; then it is gone and a late FIN gets an RST.
  After shutdown(SHUT_WR) the socket is not orphaned and FIN_WAIT2 has no timer.
- A FIN that arrives with the ACK of ours in one segment: the ACK moves FIN_WAIT1 to
  FIN_WAIT2, then the FIN moves it on to TIME_WAIT at once (tcp_rcv_state_process, then
  tcp_fin): FIN_WAIT2 lasts no time at all.
- A FIN in FIN_WAIT1 without the ACK of ours: CLOSING, and an ACK at once (tcp_fin).
- TIME_WAIT lasts TCP_TIMEWAIT_LEN (60 s, a constant); every retransmitted FIN restarts
  it and is ACKed, not rate-limited (tcp_timewait_state_process; tcp_oow_rate_limited
  skips segments that occupy sequence space).
- The passive side ACKs a first FIN with a delayed ACK (up to TCP_DELACK_MIN, 40 ms);
  when the application close()s as its recv() returns EOF, the FIN carries that ACK
  (a three-way close). Every retransmitted FIN is ACKed at once.

`predict.predict_teardown` simulates both ends from the moment the connection exists (t = 0)
through the apps' steps, with the scenario's faults applied by the same Classifier and
rule matching as the router's hook.
"""
