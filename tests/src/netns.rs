//! Private network namespaces and veth pairs for tests. Every name carries the
//! process id and a counter so tests run in parallel; everything is deleted
//! on drop. Addresses used live only inside these namespaces.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Context, Result};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A short name unique to this process and call ("wt<pid><n><tag>"),
/// kept under the kernel's 15-character interface-name limit.
pub fn unique_name(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id() % 100_000;
    let mut s = format!("wt{pid}x{n}{tag}");
    s.truncate(15);
    s
}

/// Runs a command and fails with its stderr if it fails.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd.output().with_context(|| format!("spawning {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out)
}

/// Runs `ip ARGS...` in the root namespace.
pub fn ip(args: &[&str]) -> Result<Output> {
    run(Command::new("ip").args(args))
}

/// A network namespace, deleted (with its interfaces) on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates a namespace with `lo` up.
    pub fn new(tag: &str) -> Result<Self> {
        let name = unique_name(tag);
        ip(&["netns", "add", &name])?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// A `Command` that runs `program` inside this namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Runs `ip ARGS...` inside this namespace.
    pub fn ip(&self, args: &[&str]) -> Result<Output> {
        run(Command::new("ip").args(["-n", &self.name]).args(args))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Two namespaces joined by a veth pair: `a` (10.77.0.1, fd77::1) and `b`
/// (10.77.0.2, fd77::2). The veth ends are named `a_if` and `b_if` inside
/// their namespaces.
pub struct VethPair {
    pub a: Netns,
    pub b: Netns,
    pub a_if: String,
    pub b_if: String,
}

impl VethPair {
    pub const A4: &'static str = "10.77.0.1";
    pub const B4: &'static str = "10.77.0.2";
    pub const A6: &'static str = "fd77::1";
    pub const B6: &'static str = "fd77::2";

    pub fn new() -> Result<Self> {
        let a = Netns::new("a")?;
        let b = Netns::new("b")?;
        let a_if = unique_name("va");
        let b_if = unique_name("vb");
        ip(&[
            "link", "add", &a_if, "netns", &a.name, "type", "veth", "peer", "name", &b_if, "netns",
            &b.name,
        ])?;
        for (ns, ifn, v4, v6) in [
            (&a, &a_if, Self::A4, Self::A6),
            (&b, &b_if, Self::B4, Self::B6),
        ] {
            ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", ifn])?;
            ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", ifn, "nodad"])?;
            ns.ip(&["link", "set", ifn, "up"])?;
        }
        Ok(VethPair { a, b, a_if, b_if })
    }
}
