//! Connections already open when wstap starts: the kernel hooks only see
//! what happens after they attach, so the owners of older connections come
//! from /proc once, at start. Each process's socket inodes are in
//! `/proc/PID/fd` (`socket:[INODE]`); the 4-tuple of each inode is in
//! `/proc/PID/net/tcp{,6}`, read once per network namespace (so processes
//! in containers are found too).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use super::{Owner, Owners};

/// A socket of /proc/net/tcp{,6}.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TcpSocket {
    /// A connection: local end, remote end.
    Connected(SocketAddr, SocketAddr),
    /// A listening socket on this local address.
    Listening(SocketAddr),
}

/// One line of /proc/net/tcp or tcp6: the socket's inode and what it is
/// (sockets neither connected nor listening are left out).
pub(crate) fn parse_tcp_line(line: &str) -> Option<(u64, TcpSocket)> {
    let mut f = line.split_whitespace();
    let _slot = f.next()?;
    let local = parse_addr(f.next()?)?;
    let remote = parse_addr(f.next()?)?;
    let state = f.next()?;
    // tx:rx, tr:when, retrnsmt, uid, timeout, then the inode.
    let inode = f.nth(5)?.parse().ok()?;
    if state == "0A" {
        return Some((inode, TcpSocket::Listening(local)));
    }
    if remote.port() == 0 {
        return None;
    }
    Some((inode, TcpSocket::Connected(local, remote)))
}

/// `0100007F:1F90` (IPv4) or 32 hex digits + port (IPv6): the address
/// words are printed as native-endian u32s, the port in host order.
fn parse_addr(s: &str) -> Option<SocketAddr> {
    let (a, p) = s.split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        Some(
            u32::from_str_radix(a.get(i * 8..i * 8 + 8)?, 16)
                .ok()?
                .to_ne_bytes(),
        )
    };
    let ip = match a.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Socket inodes open in process `pid`.
fn socket_inodes(pid: &Path) -> Vec<u64> {
    let Ok(dir) = std::fs::read_dir(pid.join("fd")) else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let link = std::fs::read_link(e.ok()?.path()).ok()?;
        let s = link.to_str()?;
        s.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
    })
    .collect()
}

/// What a scan found, as recorded in the owner table (the tap marks the
/// owner filter's verdicts of these in the kernel).
#[derive(Debug, Default)]
pub struct Found {
    /// Connection ends: local, remote, owner.
    pub ends: Vec<(SocketAddr, SocketAddr, Owner)>,
    /// Listening sockets: local address, owner.
    pub listeners: Vec<(SocketAddr, Owner)>,
}

/// Fills `owners` with the connections open now and the listening
/// sockets. A process that goes away during the walk is simply missed.
pub fn scan(owners: &Owners) -> Found {
    scan_root(Path::new("/proc"), owners)
}

fn scan_root(proc: &Path, owners: &Owners) -> Found {
    let mut found = Found::default();
    let Ok(dir) = std::fs::read_dir(proc) else {
        return found;
    };
    let mut netns_done: HashSet<std::path::PathBuf> = HashSet::new();
    let mut sockets: HashMap<u64, TcpSocket> = HashMap::new();
    let mut pids: Vec<(u32, std::path::PathBuf)> = dir
        .filter_map(|e| {
            let e = e.ok()?;
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((pid, e.path()))
        })
        .collect();
    pids.sort();
    for (pid, path) in pids {
        let inodes = socket_inodes(&path);
        if inodes.is_empty() {
            continue;
        }
        if let Ok(ns) = std::fs::read_link(path.join("ns/net")) {
            if netns_done.insert(ns) {
                for table in ["net/tcp", "net/tcp6"] {
                    let text = std::fs::read_to_string(path.join(table)).unwrap_or_default();
                    sockets.extend(text.lines().skip(1).filter_map(parse_tcp_line));
                }
            }
        }
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let owner = Owner::new(pid, comm.trim_end().as_bytes());
        for inode in inodes {
            // The lowest pid holding a socket wins (usually the parent).
            match sockets.remove(&inode) {
                Some(TcpSocket::Connected(local, remote)) => {
                    let o = owners.insert(local, remote, owner.clone());
                    found.ends.push((local, remote, o));
                }
                Some(TcpSocket::Listening(local)) => {
                    let o = owners.insert_listener(local, owner.clone());
                    found.listeners.push((local, o));
                }
                None => {}
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_lines_parse() {
        let v4 = "   1: 0100007F:1F90 0200007F:9C40 01 00000000:00000000 00:00000000 00000000  1000        0 123456 1 0000000000000000 20 4 30 10 -1";
        assert_eq!(
            parse_tcp_line(v4),
            Some((
                123456,
                TcpSocket::Connected(
                    "127.0.0.1:8080".parse().unwrap(),
                    "127.0.0.2:40000".parse().unwrap()
                )
            ))
        );
        let listen = "   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1 0000000000000000 100 0 0 10 0";
        assert_eq!(
            parse_tcp_line(listen),
            Some((99, TcpSocket::Listening("0.0.0.0:8080".parse().unwrap())))
        );
        let v6 = "   0: 00000000000000000000000001000000:1F90 0000000000000000FFFF00000100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 20 4 0 10 -1";
        assert_eq!(
            parse_tcp_line(v6),
            Some((
                777,
                TcpSocket::Connected(
                    "[::1]:8080".parse().unwrap(),
                    "[::ffff:127.0.0.1]:54321".parse().unwrap()
                )
            ))
        );
    }

    #[test]
    fn a_connection_of_this_process_is_found() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, _) = listener.accept().unwrap();
        let owners = Owners::new();
        let found = scan(&owners);
        assert!(found.ends.len() >= 2);
        let here = listener.local_addr().unwrap();
        assert!(
            found
                .listeners
                .iter()
                .any(|(a, o)| *a == here && o.pid == std::process::id()),
            "this test's listener is found"
        );
        let me = owners
            .owner_of(client.local_addr().unwrap(), client.peer_addr().unwrap())
            .expect("this test's own connection is found");
        assert_eq!(me.pid, std::process::id());
    }
}
