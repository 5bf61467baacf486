#!/bin/bash
# A kernel VM's job, run as PID 1 (from guest-init). Sent fresh on every run, with the
# project and the arguments (NUL-separated in ./args) beside it:
#   mounts what the lab needs, puts the sent project in /root/project (keeping the
#   image's .venv), runs ./lab ARGS as root, then writes /root/out (the job's files, its
#   log, exit code, uname -r, timings) as a raw tar onto the third disk (/dev/vdc) and
#   powers off. The host reads that tar back.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
       LANG=C.UTF-8 TERM=dumb COLUMNS=120 KERNEL_VM=1
J=/root/kernel-vm OUT=/root/out
read -r up_start _ < /proc/uptime

finish() {
  trap - EXIT
  read -r up_end _ < /proc/uptime
  printf '{"boot_to_job_s": %s, "job_s": %s}\n' "$up_start" \
    "$(awk -v a="$up_start" -v b="$up_end" 'BEGIN{printf "%.2f", b-a}')" > $OUT/timing.json
  cp /root/kernel-vm/source.txt $OUT/ 2>/dev/null
  sync
  tar -cf /dev/vdc -C $OUT . && sync
  echo "kernel-vm: results written, powering off" > /dev/ttyS0
  echo o > /proc/sysrq-trigger
  sleep 30
}
mkdir -p $OUT
trap finish EXIT
echo 3 > $OUT/exit-code   # until the job says otherwise

mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null
mount -t cgroup2 none /sys/fs/cgroup 2>/dev/null
hostname tcplab-vm
ip link set lo up 2>/dev/null
uname -r > $OUT/uname-r

# The project as sent (the image's copy goes; its virtualenv stays: it was installed with
# this pyproject.toml, or the host would have rebuilt the image).
find /root/project -mindepth 1 -maxdepth 1 ! -name .venv -exec rm -rf {} +
cp -a $J/project/. /root/project/
cd /root/project
# Bytecode once, now, unless the host sent it: not by each of the lab's children at once.
.venv/bin/python -m compileall -q tcplab > /dev/null 2>&1
# Warm the machine up before the lab's deadlines start (a host that runs the lab has
# done all this long before): the netfilter and veth modules loaded, and the lab's
# Python modules read from disk once. Under TCG each costs seconds the first time.
prep=$(date +%s.%N)
modprobe -a veth nf_tables nft_compat nfnetlink_queue xt_NFQUEUE xt_tcpudp inet_diag tcp_diag 2>/dev/null
.venv/bin/python -c 'import tcplab.cli.main, tcplab.runner, tcplab.lab.app, tcplab.lab.hook, tcplab.lab.mkns' 2>/dev/null
echo "kernel-vm: warmed up in $(awk -v a="$prep" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s" > /dev/ttyS0
mapfile -d '' args < $J/args
{
  echo "kernel-vm: $(uname -r), up ${up_start}s; running ./lab ${args[*]}"
  ./lab "${args[@]}" < /dev/null
  echo $? > $OUT/exit-code
  echo "kernel-vm: ./lab exited $(cat $OUT/exit-code)"
} 2>&1 | tee $OUT/job.log > /dev/ttyS0
