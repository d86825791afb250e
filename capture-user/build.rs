// Builds the eBPF object. (Filled in by the kernel-tap work.)
fn main() {}
