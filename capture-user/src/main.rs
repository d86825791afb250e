//! The `wstap` binary: parse the command line and hand over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    keep_freed_memory();
    let cli = wstap::cli::Cli::parse();
    wstap::app::main(cli)
}

/// Message and output buffers of 64 KiB to tens of MiB come and go with
/// every large message. glibc's malloc gives such blocks back to the kernel
/// on free (mmap'd chunks, or a trimmed heap top) and the next message
/// faults every page in again: three quarters of the time of decoding
/// compressed 64 KiB messages went to page faults. Keep freed memory up to
/// 64 MiB in the heap and map only blocks of 32 MiB and more: peak memory
/// is what it was, it is only not returned between messages (measured:
/// `cargo xtask bench --only offline,memory`).
fn keep_freed_memory() {
    // SAFETY: mallopt only changes allocator parameters; called before any
    // other thread exists. A refusal (another allocator) changes nothing.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
    }
}
