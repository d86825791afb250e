//! The handshake messages read in the clear: ClientHello (the random that
//! keys the key log, SNI, ALPN offered, versions offered) and ServerHello
//! (the server random, the version and cipher suite chosen; a
//! HelloRetryRequest is told apart by its fixed random, RFC 8446 §4.1.3).
//! Every length is checked against what holds it: a hostile hello is an
//! error, never a panic or an out-of-bounds read.

/// The random of a HelloRetryRequest: SHA-256("HelloRetryRequest").
const HRR_RANDOM: [u8; 32] = [
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
    0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
];

const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const EXT_SUPPORTED_VERSIONS: u16 = 43;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    pub random: [u8; 32],
    pub sni: Option<String>,
    pub alpn: Vec<String>,
    /// supported_versions, or the legacy version alone.
    pub versions: Vec<u16>,
    pub cipher_suites: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHello {
    pub random: [u8; 32],
    /// The negotiated version (supported_versions, else the legacy field).
    pub version: u16,
    pub suite: u16,
    pub alpn: Option<String>,
    /// A HelloRetryRequest: the real ServerHello comes later.
    pub retry: bool,
}

/// A bounds-checked reader over one message body.
struct Rd<'a>(&'a [u8]);

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()? as usize;
        self.take(n)
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()? as usize;
        self.take(n)
    }
}

fn extensions(r: &mut Rd<'_>, mut each: impl FnMut(u16, &[u8]) -> Option<()>) -> Option<()> {
    if r.0.is_empty() {
        return Some(()); // no extensions at all (old clients)
    }
    let mut exts = Rd(r.vec16()?);
    while !exts.0.is_empty() {
        let ty = exts.u16()?;
        let body = exts.vec16()?;
        each(ty, body)?;
    }
    Some(())
}

fn alpn_list(body: &[u8]) -> Option<Vec<String>> {
    let mut r = Rd(body);
    let mut list = Rd(r.vec16()?);
    let mut out = Vec::new();
    while !list.0.is_empty() {
        out.push(String::from_utf8_lossy(list.vec8()?).into_owned());
    }
    Some(out)
}

/// A ClientHello body (after the 4-byte handshake header); None when
/// malformed.
pub fn client_hello(body: &[u8]) -> Option<ClientHello> {
    let mut r = Rd(body);
    let legacy = r.u16()?;
    let random: [u8; 32] = r.take(32)?.try_into().ok()?;
    r.vec8()?; // session id
    let suites = r.vec16()?;
    r.vec8()?; // compression methods
    let mut hello = ClientHello {
        random,
        sni: None,
        alpn: Vec::new(),
        versions: vec![legacy],
        cipher_suites: suites.len() / 2,
    };
    extensions(&mut r, |ty, b| {
        match ty {
            EXT_SERVER_NAME => {
                let mut list = Rd(Rd(b).vec16()?);
                while !list.0.is_empty() {
                    let kind = list.u8()?;
                    let name = list.vec16()?;
                    if kind == 0 && hello.sni.is_none() {
                        hello.sni = Some(String::from_utf8_lossy(name).into_owned());
                    }
                }
            }
            EXT_ALPN => hello.alpn = alpn_list(b)?,
            EXT_SUPPORTED_VERSIONS => {
                let mut v = Rd(Rd(b).vec8()?);
                let mut versions = Vec::new();
                while !v.0.is_empty() {
                    versions.push(v.u16()?);
                }
                hello.versions = versions;
            }
            _ => {}
        }
        Some(())
    })?;
    Some(hello)
}

/// The ALPN protocol chosen in a TLS 1.3 EncryptedExtensions body (its
/// extensions, laid out as the hellos' are); None when absent or malformed.
pub fn encrypted_extensions_alpn(body: &[u8]) -> Option<String> {
    let mut alpn = None;
    extensions(&mut Rd(body), |ty, b| {
        if ty == EXT_ALPN {
            alpn = alpn_list(b)?.into_iter().next();
        }
        Some(())
    })?;
    alpn
}

/// A ServerHello body; None when malformed.
pub fn server_hello(body: &[u8]) -> Option<ServerHello> {
    let mut r = Rd(body);
    let legacy = r.u16()?;
    let random: [u8; 32] = r.take(32)?.try_into().ok()?;
    r.vec8()?; // session id echo
    let suite = r.u16()?;
    r.u8()?; // compression
    let mut hello = ServerHello {
        random,
        version: legacy,
        suite,
        alpn: None,
        retry: random == HRR_RANDOM,
    };
    extensions(&mut r, |ty, b| {
        match ty {
            EXT_SUPPORTED_VERSIONS => hello.version = Rd(b).u16()?,
            EXT_ALPN => hello.alpn = alpn_list(b)?.into_iter().next(),
            _ => {}
        }
        Some(())
    })?;
    Some(hello)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(ty: u16, body: &[u8]) -> Vec<u8> {
        let mut v = ty.to_be_bytes().to_vec();
        v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    pub(crate) fn client_hello_body(random: [u8; 32], sni: &str, alpn: &[&str]) -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend_from_slice(&random);
        b.push(0);
        b.extend_from_slice(&[0, 4, 0x13, 0x01, 0x13, 0x02]);
        b.extend_from_slice(&[1, 0]);
        let mut exts = Vec::new();
        let mut names = vec![0u8];
        names.extend_from_slice(&(sni.len() as u16).to_be_bytes());
        names.extend_from_slice(sni.as_bytes());
        let mut sn = (names.len() as u16).to_be_bytes().to_vec();
        sn.extend_from_slice(&names);
        exts.extend(ext(EXT_SERVER_NAME, &sn));
        let mut protos = Vec::new();
        for a in alpn {
            protos.push(a.len() as u8);
            protos.extend_from_slice(a.as_bytes());
        }
        let mut al = (protos.len() as u16).to_be_bytes().to_vec();
        al.extend_from_slice(&protos);
        exts.extend(ext(EXT_ALPN, &al));
        exts.extend(ext(EXT_SUPPORTED_VERSIONS, &[4, 3, 4, 3, 3]));
        b.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        b.extend_from_slice(&exts);
        b
    }

    #[test]
    fn hellos_parse_and_every_truncation_is_refused() {
        let body = client_hello_body([9; 32], "chat.example.com", &["h2", "http/1.1"]);
        let h = client_hello(&body).unwrap();
        assert_eq!(h.random, [9; 32]);
        assert_eq!(h.sni.as_deref(), Some("chat.example.com"));
        assert_eq!(h.alpn, ["h2", "http/1.1"]);
        assert_eq!(h.versions, [0x0304, 0x0303]);
        assert_eq!(h.cipher_suites, 2);
        for cut in 0..body.len() {
            // Cut inside the extensions: a lying outer length, refused.
            let r = client_hello(&body[..cut]);
            // (Cut right after the compression methods: a hello without
            // extensions, which is valid.)
            assert!(r.is_none() || cut == 43, "cut at {cut} parsed");
        }
        let mut s = vec![3, 3];
        s.extend_from_slice(&HRR_RANDOM);
        s.extend_from_slice(&[0, 0x13, 0x01, 0]);
        let e = ext(EXT_SUPPORTED_VERSIONS, &[3, 4]);
        s.extend_from_slice(&(e.len() as u16).to_be_bytes());
        s.extend_from_slice(&e);
        let sh = server_hello(&s).unwrap();
        assert!(sh.retry);
        // EncryptedExtensions: the extensions alone.
        let mut al = vec![0, 3, 2];
        al.extend_from_slice(b"h2");
        let e = ext(EXT_ALPN, &al);
        let mut ee = (e.len() as u16).to_be_bytes().to_vec();
        ee.extend_from_slice(&e);
        assert_eq!(encrypted_extensions_alpn(&ee).as_deref(), Some("h2"));
        assert_eq!(encrypted_extensions_alpn(&ee[..ee.len() - 1]), None);
        assert_eq!((sh.version, sh.suite), (0x0304, 0x1301));
        assert!(server_hello(&s[..s.len() - 1]).is_none());
    }
}
