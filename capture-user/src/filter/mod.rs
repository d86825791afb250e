//! Host and port filters and the filter expression, parsed once from the
//! command line. The same filter is loaded into the kernel's maps (live
//! capture) and applied in user space (capture files), so both modes select
//! the same traffic.

pub mod expr;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use expr::{Expr, ExprError};

/// Why a `--host` or `--port` value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilterError {
    #[error("--host {0:?}: not an IPv4/IPv6 address or CIDR prefix (examples: 10.0.0.1, 10.0.0.0/8, ::1, fd00::/8)")]
    BadHost(String),
    #[error("--host {value:?}: prefix length {len} is larger than {max} for this address family")]
    BadPrefix { value: String, len: u8, max: u8 },
    #[error("--port 0 matches no TCP connection; give a port from 1 to 65535")]
    ZeroPort,
    #[error(transparent)]
    Expr(#[from] ExprError),
}

/// An address prefix such as `10.0.0.0/8` or `::1/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostPrefix {
    /// Network address with host bits cleared.
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl HostPrefix {
    pub fn parse(s: &str) -> Result<Self, FilterError> {
        let (addr_s, len_s) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr_s
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| FilterError::BadHost(s.to_string()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len_s {
            Some(l) => l
                .parse::<u8>()
                .map_err(|_| FilterError::BadHost(s.to_string()))?,
            None => max,
        };
        if len > max {
            return Err(FilterError::BadPrefix {
                value: s.to_string(),
                len,
                max,
            });
        }
        Ok(HostPrefix {
            addr: mask(addr, len),
            prefix_len: len,
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4-mapped IPv6 address matches the IPv4 prefix.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix_len) == self.addr
    }
}

pub(crate) fn mask(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - len as u32)
            };
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len as u32)
            };
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

/// Hosts and ports to keep (empty lists mean "any") and the filter
/// expression; a segment must pass all three.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub hosts: Vec<HostPrefix>,
    pub ports: Vec<u16>,
    pub expr: Option<Expr>,
}

impl Filter {
    pub fn parse(hosts: &[String], ports: &[u16]) -> Result<Self, FilterError> {
        if ports.contains(&0) {
            return Err(FilterError::ZeroPort);
        }
        let hosts = hosts
            .iter()
            .map(|h| HostPrefix::parse(h))
            .collect::<Result<_, _>>()?;
        Ok(Filter {
            hosts,
            ports: ports.to_vec(),
            expr: None,
        })
    }

    /// `--host`, `--port` and the positional filter expression (empty: none).
    pub fn from_cli(cli: &crate::cli::Cli) -> Result<Self, FilterError> {
        let mut f = Self::parse(&cli.hosts, &cli.ports)?;
        // An empty expression (`wstap -r f ''`) keeps everything, as in tcpdump.
        if cli.expression.iter().any(|w| !w.trim().is_empty()) {
            f.expr = Some(Expr::parse(&cli.expression)?);
        }
        Ok(f)
    }

    /// True when a segment from `src`:`sport` to `dst`:`dport` passes (a
    /// host or port of the lists may be either end; the expression says
    /// for itself).
    pub fn matches(&self, src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> bool {
        let host_ok = self.hosts.is_empty()
            || self
                .hosts
                .iter()
                .any(|h| h.contains(src) || h.contains(dst));
        let port_ok =
            self.ports.is_empty() || self.ports.contains(&sport) || self.ports.contains(&dport);
        host_ok
            && port_ok
            && self
                .expr
                .as_ref()
                .is_none_or(|e| e.matches(src, sport, dst, dport))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses_and_prefixes() {
        let p = HostPrefix::parse("10.1.2.3/8").unwrap();
        assert_eq!(p.addr, "10.0.0.0".parse::<IpAddr>().unwrap());
        assert_eq!(p.prefix_len, 8);
        assert!(p.contains("10.200.0.1".parse().unwrap()));
        assert!(!p.contains("11.0.0.1".parse().unwrap()));
        assert!(p.contains("::ffff:10.9.9.9".parse().unwrap()));
        let v6 = HostPrefix::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        assert_eq!(HostPrefix::parse("::1").unwrap().prefix_len, 128);
        assert_eq!(HostPrefix::parse("[::1]").unwrap().prefix_len, 128);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(
            HostPrefix::parse("example.com"),
            Err(FilterError::BadHost(_))
        ));
        assert!(matches!(
            HostPrefix::parse("1.2.3.4/33"),
            Err(FilterError::BadPrefix { .. })
        ));
        assert!(matches!(
            HostPrefix::parse("1.2.3.4/x"),
            Err(FilterError::BadHost(_))
        ));
        assert_eq!(Filter::parse(&[], &[0]), Err(FilterError::ZeroPort));
    }

    #[test]
    fn empty_filter_matches_all_and_either_side_matches() {
        let any = Filter::default();
        let a: IpAddr = "1.1.1.1".parse().unwrap();
        let b: IpAddr = "2.2.2.2".parse().unwrap();
        assert!(any.matches(a, 1, b, 2));
        let f = Filter::parse(&["2.2.2.0/24".into()], &[80]).unwrap();
        assert!(f.matches(a, 80, b, 5000));
        assert!(f.matches(b, 5000, a, 80));
        assert!(!f.matches(a, 81, b, 5000));
        assert!(!f.matches(a, 80, a, 5000));
    }
}
