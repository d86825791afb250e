//! Interfaces coming and going, from the kernel's rtnetlink link
//! notifications (`RTMGRP_LINK`): `-i any` attaches to an interface as soon
//! as it comes up (a container's veth, before its first connection), and
//! every capture hears at once when an interface it taps is deleted.
//!
//! Only two fields of a fixed header are read (the message type and the
//! `ifinfomsg`'s index and flags), so this is a socket and a short parser
//! rather than a netlink library.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

/// What a notification said about one interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkEvent {
    /// RTM_NEWLINK: the interface exists (new, or changed); `up` is IFF_UP.
    Exists { index: u32, up: bool },
    /// RTM_DELLINK: gone (deleted, or moved to another network namespace).
    Gone { index: u32 },
    /// The socket's buffer overflowed (ENOBUFS): notifications were lost,
    /// so the interfaces must be listed again.
    Lost,
}

/// The notification socket.
pub struct LinkWatch {
    fd: AsyncFd<OwnedFd>,
    buf: Vec<u8>,
}

impl LinkWatch {
    /// Subscribes to link notifications of this network namespace. Must run
    /// inside a tokio runtime.
    pub fn open() -> std::io::Result<LinkWatch> {
        // SAFETY: plain socket(2); the result is checked.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: raw is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: a zeroed sockaddr_nl is valid; the fields are set below.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr.nl_groups = libc::RTMGRP_LINK as u32;
        // SAFETY: addr is a valid sockaddr_nl of the size given.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the AsyncFd owns the descriptor, which stays open and
        // unchanged until it is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(LinkWatch {
            fd,
            buf: vec![0u8; 64 << 10],
        })
    }

    /// Waits for the next notifications and returns what they say.
    /// Cancel-safe: nothing is read before the socket is readable.
    pub async fn next(&mut self) -> std::io::Result<Vec<LinkEvent>> {
        loop {
            let mut guard = self.fd.readable().await?;
            let buf = &mut self.buf;
            let got = guard.try_io(|fd| {
                // SAFETY: buf is valid for buf.len() bytes.
                let n =
                    unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match got {
                Ok(Ok(n)) => return Ok(parse(&self.buf[..n])),
                Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    return Ok(vec![LinkEvent::Lost])
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

/// The link events in one datagram of netlink messages; anything else (or
/// a message cut short) is skipped.
pub fn parse(mut buf: &[u8]) -> Vec<LinkEvent> {
    const NLMSG_HDRLEN: usize = 16;
    // ifinfomsg: family u8, pad u8, type u16, index i32, flags u32, change u32.
    const IFINFO_LEN: usize = 16;
    let u32_at = |b: &[u8], at: usize| u32::from_ne_bytes(b[at..at + 4].try_into().unwrap());
    let mut events = Vec::new();
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32_at(buf, 0) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            break;
        }
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        let body = &buf[NLMSG_HDRLEN..len];
        if body.len() >= IFINFO_LEN {
            let index = u32_at(body, 4);
            let flags = u32_at(body, 8);
            match kind {
                libc::RTM_NEWLINK => events.push(LinkEvent::Exists {
                    index,
                    up: flags & libc::IFF_UP as u32 != 0,
                }),
                libc::RTM_DELLINK => events.push(LinkEvent::Gone { index }),
                _ => {}
            }
        }
        // Messages are 4-byte aligned.
        let next = (len + 3) & !3;
        buf = buf.get(next..).unwrap_or(&[]);
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u16, index: u32, flags: u32, extra: usize) -> Vec<u8> {
        let len = 16 + 16 + extra;
        let mut m = Vec::new();
        m.extend((len as u32).to_ne_bytes());
        m.extend(kind.to_ne_bytes());
        m.extend(0u16.to_ne_bytes());
        m.extend([0u8; 8]);
        m.extend([0u8, 0]);
        m.extend(1u16.to_ne_bytes());
        m.extend(index.to_ne_bytes());
        m.extend(flags.to_ne_bytes());
        m.extend(0u32.to_ne_bytes());
        m.extend(vec![0xaa; extra]);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    #[test]
    fn new_and_deleted_links_are_read_and_the_rest_skipped() {
        let mut d = message(libc::RTM_NEWLINK, 7, libc::IFF_UP as u32, 5);
        d.extend(message(libc::RTM_NEWADDR, 3, 0, 0));
        d.extend(message(libc::RTM_NEWLINK, 8, 0, 0));
        d.extend(message(libc::RTM_DELLINK, 7, 0, 12));
        assert_eq!(
            parse(&d),
            [
                LinkEvent::Exists { index: 7, up: true },
                LinkEvent::Exists {
                    index: 8,
                    up: false
                },
                LinkEvent::Gone { index: 7 },
            ]
        );
        // A length past the datagram, or below the header: the rest is
        // skipped, what came before is kept.
        let mut cut = message(libc::RTM_DELLINK, 9, 0, 0);
        let mut bad = message(libc::RTM_NEWLINK, 1, 0, 0);
        bad[0..4].copy_from_slice(&999u32.to_ne_bytes());
        cut.extend(bad);
        assert_eq!(parse(&cut), [LinkEvent::Gone { index: 9 }]);
        assert!(parse(&[0u8; 10]).is_empty());
    }
}
