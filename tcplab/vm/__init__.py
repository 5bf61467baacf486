"""Kernel VMs built from Debian packages: `scripts/kernel-vm` (or `./lab kernels`) builds
a cached disk per kernel (Debian 12's 6.1, bookworm-backports' 6.12), boots it under qemu
and runs the lab inside. Standard library only: it runs with the system python3, before
(and without) the project's virtualenv. docs/kernel-vms.md."""
