//! Loading and attaching the eBPF programs, draining the ring buffer. (Filled in by the kernel-tap work.)
