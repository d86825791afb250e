//! Attaching the TLS hooks (`capture-ebpf/src/tls.rs`) to every OpenSSL
//! found: `libssl.so.*` in the dynamic linker's cache and in the maps of
//! running processes (through `/proc/PID/root`, so containers' own copies
//! count), plus the paths given with `--tls-lib`. A uprobe is set on the
//! file (its inode), so every process mapping a hooked library is covered,
//! also those started after wstap. One file reached by several paths is
//! hooked once (by device and inode), or its calls would be seen twice.
//!
//! A library without the symbols, or one that cannot be hooked, is one line
//! of the report and the rest of the capture goes on. The links are
//! perf-event / bpf_link fds of this process: they die with it.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use aya::programs::uprobe::{UProbeLink, UProbeScope};
use aya::programs::UProbe;
use aya::Ebpf;

use super::load::program;

/// The functions hooked: symbol and its entry program. The return of each
/// goes to `PROG_SSL_RET`.
const SYMBOLS: [(&str, &str); 4] = [
    ("SSL_read", capture_common::PROG_SSL_READ),
    ("SSL_read_ex", capture_common::PROG_SSL_READ_EX),
    ("SSL_write", capture_common::PROG_SSL_WRITE),
    ("SSL_write_ex", capture_common::PROG_SSL_WRITE_EX),
];

/// The attached TLS hooks; dropping this detaches them.
pub struct TlsLinks {
    _links: Vec<UProbeLink>,
    /// The libraries hooked (at least one function).
    pub hooked: Vec<PathBuf>,
    /// One line per library that could not be hooked whole, saying why.
    pub problems: Vec<String>,
}

/// Every OpenSSL library to hook: `extra` first, then what the linker's
/// cache and running processes map; one path per file.
pub fn find_libraries(extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut candidates: Vec<PathBuf> = extra.to_vec();
    candidates.extend(from_ld_cache());
    candidates.extend(from_process_maps());
    let mut seen = HashSet::new();
    candidates
        .into_iter()
        .filter(|p| match std::fs::metadata(p) {
            Ok(m) => seen.insert((m.dev(), m.ino())),
            // Kept so that attaching says what is wrong with it.
            Err(_) => extra.contains(p),
        })
        .collect()
}

/// Is this file name an OpenSSL libssl (`libssl.so`, `libssl.so.3`, ...)?
fn is_libssl(name: &str) -> bool {
    name == "libssl.so" || name.starts_with("libssl.so.")
}

/// `ldconfig -p`: the linker's cache, as the linker would find libraries.
fn from_ld_cache() -> Vec<PathBuf> {
    let out = ["/sbin/ldconfig", "/usr/sbin/ldconfig", "ldconfig"]
        .iter()
        .find_map(|l| std::process::Command::new(l).arg("-p").output().ok());
    let Some(out) = out else { return Vec::new() };
    parse_ld_cache(&String::from_utf8_lossy(&out.stdout))
}

/// Lines like `\tlibssl.so.3 (libc6,x86-64) => /lib/x86_64-linux-gnu/libssl.so.3`.
fn parse_ld_cache(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|l| {
            let (name, path) = l.trim().split_once(" => ")?;
            let name = name.split_whitespace().next()?;
            is_libssl(name).then(|| PathBuf::from(path.trim()))
        })
        .collect()
}

/// libssl files mapped by running processes, as seen from their own root.
fn from_process_maps() -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for e in dir.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
            continue;
        };
        for path in parse_maps(&maps) {
            found.push(PathBuf::from(format!("/proc/{pid}/root{path}")));
        }
    }
    found
}

/// The libssl paths in one `/proc/PID/maps`, each once.
fn parse_maps(maps: &str) -> Vec<&str> {
    let mut paths: Vec<&str> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| {
            Path::new(p)
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_libssl)
        })
        .collect();
    paths.dedup();
    paths
}

/// Hooks the four functions in each library. Fails only when the programs
/// themselves cannot be loaded; a library that cannot be hooked is reported.
pub(super) fn attach(ebpf: &mut Ebpf, libs: &[PathBuf]) -> Result<TlsLinks, String> {
    for name in SYMBOLS
        .iter()
        .map(|s| s.1)
        .chain([capture_common::PROG_SSL_RET, capture_common::PROG_SSL_FREE])
    {
        let prog: &mut UProbe = program(ebpf, name).map_err(|e| e.to_string())?;
        if prog.fd().is_err() {
            prog.load().map_err(|e| format!("{name}: {e}"))?;
        }
    }
    let mut links = Vec::new();
    let mut hooked = Vec::new();
    let mut problems = Vec::new();
    for lib in libs {
        if let Err(e) = std::fs::File::open(lib) {
            problems.push(format!(
                "{}: not hooked: cannot open it: {e}",
                lib.display()
            ));
            continue;
        }
        let mut missing = Vec::new();
        for (symbol, entry) in SYMBOLS {
            match attach_pair(ebpf, lib, symbol, entry) {
                Ok(pair) => links.extend(pair),
                Err(e) => missing.push((symbol, e)),
            }
        }
        if missing.len() < SYMBOLS.len() {
            hooked.push(lib.clone());
            // Without it a freed object's address, reused by a later
            // connection, would continue the old stream: said, not fatal.
            match attach_one(ebpf, lib, "SSL_free", capture_common::PROG_SSL_FREE) {
                Ok(link) => links.push(link),
                Err(e) => missing.push(("SSL_free", e)),
            }
        }
        if let Some(p) = not_hooked(lib, &missing) {
            problems.push(p);
        }
    }
    Ok(TlsLinks {
        _links: links,
        hooked,
        problems,
    })
}

/// One line saying which functions of `lib` could not be hooked and why:
/// a symbol aya cannot resolve (it then looks for a debuglink file) means
/// the library does not export it.
fn not_hooked(lib: &Path, missing: &[(&str, String)]) -> Option<String> {
    if missing.is_empty() {
        return None;
    }
    let no_symbol = |e: &str| e.contains("debuglink") || e.contains("symbol");
    let names: Vec<&str> = missing.iter().map(|m| m.0).collect();
    let why = if missing.iter().all(|m| no_symbol(&m.1)) {
        if missing.len() == SYMBOLS.len() {
            "it exports none of them: not OpenSSL, or a build stripped of its symbols".to_string()
        } else {
            "not exported by this build (OpenSSL before 1.1.1 has no _ex functions)".to_string()
        }
    } else {
        let mut errs: Vec<&str> = missing.iter().map(|m| m.1.as_str()).collect();
        errs.dedup();
        errs.join("; ")
    };
    let what = if missing.len() == SYMBOLS.len() {
        "not hooked"
    } else {
        "partly hooked"
    };
    Some(format!(
        "{}: {what}: {}: {why}",
        lib.display(),
        names.join(", ")
    ))
}

/// Entry and return probe of one function; both or neither.
fn attach_pair(
    ebpf: &mut Ebpf,
    lib: &Path,
    symbol: &str,
    entry: &'static str,
) -> Result<[UProbeLink; 2], String> {
    let enter = attach_one(ebpf, lib, symbol, entry)?;
    let ret = attach_one(ebpf, lib, symbol, capture_common::PROG_SSL_RET)?;
    Ok([enter, ret])
}

/// Program `name` on `symbol` of `lib`, for every process mapping it.
fn attach_one(
    ebpf: &mut Ebpf,
    lib: &Path,
    symbol: &str,
    name: &'static str,
) -> Result<UProbeLink, String> {
    let prog: &mut UProbe = program(ebpf, name).map_err(|e| e.to_string())?;
    let id = prog
        .attach(symbol, lib, UProbeScope::AllProcesses)
        .map_err(|e| root_cause(&e))?;
    prog.take_link(id).map_err(|e| e.to_string())
}

/// The innermost message of an error chain (aya's outer ones repeat the path).
fn root_cause(e: &dyn std::error::Error) -> String {
    let mut e = e;
    while let Some(s) = e.source() {
        e = s;
    }
    e.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_library_without_the_symbols_gets_one_clear_line() {
        let debuglink = "failed to access debuglink file `/x.debug`".to_string();
        let all: Vec<(&str, String)> = SYMBOLS.iter().map(|s| (s.0, debuglink.clone())).collect();
        let line = not_hooked(Path::new("/lib/libz.so.1"), &all).unwrap();
        assert_eq!(
            line,
            "/lib/libz.so.1: not hooked: SSL_read, SSL_read_ex, SSL_write, SSL_write_ex: \
             it exports none of them: not OpenSSL, or a build stripped of its symbols"
        );
        let old = vec![
            ("SSL_read_ex", debuglink.clone()),
            ("SSL_write_ex", debuglink),
        ];
        let line = not_hooked(Path::new("/lib/libssl.so.1.0.0"), &old).unwrap();
        assert!(
            line.starts_with(
                "/lib/libssl.so.1.0.0: partly hooked: SSL_read_ex, SSL_write_ex: not exported"
            ),
            "{line}"
        );
        assert_eq!(not_hooked(Path::new("/x"), &[]), None);
    }

    #[test]
    fn ld_cache_lines_name_libssl_only() {
        let text = "612 libs found in cache `/etc/ld.so.cache'\n\
            \tlibssl.so.3 (libc6,x86-64) => /lib/x86_64-linux-gnu/libssl.so.3\n\
            \tlibssl3.so (libc6,x86-64) => /lib/x86_64-linux-gnu/libssl3.so\n\
            \tlibssl.so (libc6,x86-64) => /usr/lib/libssl.so\n\
            \tlibcrypto.so.3 (libc6,x86-64) => /lib/x86_64-linux-gnu/libcrypto.so.3\n";
        assert_eq!(
            parse_ld_cache(text),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libssl.so.3"),
                PathBuf::from("/usr/lib/libssl.so")
            ]
        );
    }

    #[test]
    fn maps_lines_give_each_libssl_once() {
        let maps = "7f1-7f2 r--p 00000000 08:01 131 /usr/lib/x86_64-linux-gnu/libssl.so.3\n\
            7f2-7f3 r-xp 00020000 08:01 131 /usr/lib/x86_64-linux-gnu/libssl.so.3\n\
            7f3-7f4 r--p 00000000 08:01 132 /usr/lib/x86_64-linux-gnu/libcrypto.so.3\n\
            7f4-7f5 rw-p 00000000 00:00 0 \n\
            7f5-7f6 r-xp 00000000 08:01 140 /opt/app/libssl.so.1.1\n";
        assert_eq!(
            parse_maps(maps),
            vec![
                "/usr/lib/x86_64-linux-gnu/libssl.so.3",
                "/opt/app/libssl.so.1.1"
            ]
        );
    }
}
