//! Record protection: the cipher suites wstap decrypts, their keys derived
//! from key-log secrets (TLS 1.3: HKDF-Expand-Label, RFC 8446 §7.1 and
//! §7.3; TLS 1.2: the PRF key block, RFC 5246 §6.3), and one direction's
//! record decryption (nonce and additional data per RFC 8446 §5.2, RFC
//! 5288 §3 for AES-GCM in TLS 1.2, RFC 7905 for ChaCha20-Poly1305). The
//! primitives are RustCrypto's.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use chacha20poly1305::ChaCha20Poly1305;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384};

/// TLS versions as on the wire.
pub const TLS12: u16 = 0x0303;
pub const TLS13: u16 = 0x0304;

/// The AEAD of a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    Aes128Gcm,
    Aes256Gcm,
    ChaCha20Poly1305,
}

/// The hash of a suite (its HKDF or PRF hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
}

impl Hash {
    pub fn output_len(self) -> usize {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
        }
    }
}

/// A cipher suite wstap can decrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suite {
    pub id: u16,
    pub cipher: Cipher,
    pub hash: Hash,
}

impl Cipher {
    fn key_len(self) -> usize {
        match self {
            Cipher::Aes128Gcm => 16,
            Cipher::Aes256Gcm | Cipher::ChaCha20Poly1305 => 32,
        }
    }
}

/// The suite of `id` for `version`, or why it cannot be decrypted.
pub fn suite(version: u16, id: u16) -> Result<Suite, &'static str> {
    use Cipher::*;
    use Hash::*;
    let (cipher, hash) = match (version, id) {
        (TLS13, 0x1301) => (Aes128Gcm, Sha256),
        (TLS13, 0x1302) => (Aes256Gcm, Sha384),
        (TLS13, 0x1303) => (ChaCha20Poly1305, Sha256),
        // ECDHE / DHE / RSA key exchange with AES-GCM or ChaCha20-Poly1305:
        // the key exchange does not matter once the master secret is known.
        (TLS12, 0xC02B | 0xC02F | 0x009C | 0x009E | 0x00A2 | 0x00A6) => (Aes128Gcm, Sha256),
        (TLS12, 0xC02C | 0xC030 | 0x009D | 0x009F | 0x00A3 | 0x00A7) => (Aes256Gcm, Sha384),
        (TLS12, 0xCCA8..=0xCCAA) => (ChaCha20Poly1305, Sha256),
        (TLS13, _) => return Err("the server chose a TLS 1.3 cipher suite wstap does not decrypt"),
        (TLS12, _) => {
            return Err(
                "the server chose a TLS 1.2 cipher suite wstap does not decrypt (only AES-GCM and ChaCha20-Poly1305; not CBC)",
            )
        }
        _ => return Err("a TLS version wstap does not decrypt (only TLS 1.2 and 1.3)"),
    };
    Ok(Suite { id, cipher, hash })
}

/// HKDF-Expand-Label(secret, label, "", len) (RFC 8446 §7.1).
pub fn expand_label(hash: Hash, secret: &[u8], label: &str, len: usize) -> Option<Vec<u8>> {
    let full = format!("tls13 {label}");
    let mut info = Vec::with_capacity(4 + full.len());
    info.extend_from_slice(&(len as u16).to_be_bytes());
    info.push(full.len() as u8);
    info.extend_from_slice(full.as_bytes());
    info.push(0); // empty context
    let mut out = vec![0u8; len];
    match hash {
        Hash::Sha256 => hkdf::Hkdf::<Sha256>::from_prk(secret)
            .ok()?
            .expand(&info, &mut out)
            .ok()?,
        Hash::Sha384 => hkdf::Hkdf::<Sha384>::from_prk(secret)
            .ok()?
            .expand(&info, &mut out)
            .ok()?,
    }
    Some(out)
}

/// The TLS 1.2 PRF (RFC 5246 §5): P_hash(secret, label + seed), `len` bytes.
pub fn prf12(hash: Hash, secret: &[u8], label: &[u8], seed: &[u8], len: usize) -> Vec<u8> {
    fn p_hash<M: Mac + KeyInit + Clone>(secret: &[u8], seed: &[u8], len: usize) -> Vec<u8> {
        let mac = <M as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
        let mut out = Vec::with_capacity(len + 48);
        let mut a = {
            let mut m = mac.clone();
            m.update(seed);
            m.finalize().into_bytes().to_vec()
        };
        while out.len() < len {
            let mut m = mac.clone();
            m.update(&a);
            m.update(seed);
            out.extend_from_slice(&m.finalize().into_bytes());
            let mut m = mac.clone();
            m.update(&a);
            a = m.finalize().into_bytes().to_vec();
        }
        out.truncate(len);
        out
    }
    let mut full_seed = label.to_vec();
    full_seed.extend_from_slice(seed);
    match hash {
        Hash::Sha256 => p_hash::<Hmac<Sha256>>(secret, &full_seed, len),
        Hash::Sha384 => p_hash::<Hmac<Sha384>>(secret, &full_seed, len),
    }
}

enum Aead {
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

/// How the nonce is built.
#[derive(Clone, Copy)]
enum NonceKind {
    /// 12-byte IV XOR the record sequence number (TLS 1.3; TLS 1.2 ChaCha20).
    XorSeq,
    /// 4-byte salt + the record's 8-byte explicit nonce (TLS 1.2 AES-GCM).
    Explicit,
}

/// Why a record could not be decrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecryptError {
    /// Shorter than its nonce and tag.
    TooShort,
    /// The tag did not verify: a wrong secret, a tampered record, or the
    /// wrong sequence number.
    BadTag,
}

/// One direction's decryption: the key, the IV and the record sequence
/// number (records decrypted so far under this key).
pub struct Decryptor {
    aead: Aead,
    iv: [u8; 12],
    nonce: NonceKind,
    version: u16,
    pub seq: u64,
}

impl std::fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decryptor")
            .field("version", &self.version)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

fn aead(cipher: Cipher, key: &[u8]) -> Option<Aead> {
    Some(match cipher {
        Cipher::Aes128Gcm => Aead::Aes128(Box::new(Aes128Gcm::new_from_slice(key).ok()?)),
        Cipher::Aes256Gcm => Aead::Aes256(Box::new(Aes256Gcm::new_from_slice(key).ok()?)),
        Cipher::ChaCha20Poly1305 => {
            Aead::ChaCha(Box::new(ChaCha20Poly1305::new_from_slice(key).ok()?))
        }
    })
}

impl Decryptor {
    /// TLS 1.3: the keys of one traffic secret.
    pub fn tls13(suite: Suite, secret: &[u8]) -> Option<Decryptor> {
        let key = expand_label(suite.hash, secret, "key", suite.cipher.key_len())?;
        let iv = expand_label(suite.hash, secret, "iv", 12)?;
        Some(Decryptor {
            aead: aead(suite.cipher, &key)?,
            iv: iv.try_into().ok()?,
            nonce: NonceKind::XorSeq,
            version: TLS13,
            seq: 0,
        })
    }

    /// TLS 1.2: both directions' keys from the master secret, (client's,
    /// server's).
    pub fn tls12(
        suite: Suite,
        master: &[u8],
        client_random: &[u8; 32],
        server_random: &[u8; 32],
    ) -> Option<(Decryptor, Decryptor)> {
        let key_len = suite.cipher.key_len();
        let iv_len = match suite.cipher {
            Cipher::ChaCha20Poly1305 => 12,
            _ => 4,
        };
        let mut seed = server_random.to_vec();
        seed.extend_from_slice(client_random);
        let block = prf12(
            suite.hash,
            master,
            b"key expansion",
            &seed,
            2 * key_len + 2 * iv_len,
        );
        let (ck, rest) = block.split_at(key_len);
        let (sk, rest) = rest.split_at(key_len);
        let (civ, siv) = rest.split_at(iv_len);
        let make = |key: &[u8], iv: &[u8]| -> Option<Decryptor> {
            let mut full = [0u8; 12];
            full[..iv.len()].copy_from_slice(iv);
            Some(Decryptor {
                aead: aead(suite.cipher, key)?,
                iv: full,
                nonce: if iv_len == 12 {
                    NonceKind::XorSeq
                } else {
                    NonceKind::Explicit
                },
                version: TLS12,
                seq: 0,
            })
        };
        Some((make(ck, civ)?, make(sk, siv)?))
    }

    /// The next TLS 1.3 traffic secret after a KeyUpdate (RFC 8446 §7.2).
    pub fn next_secret(hash: Hash, secret: &[u8]) -> Option<Vec<u8>> {
        expand_label(hash, secret, "traffic upd", hash.output_len())
    }

    /// Decrypts one record (`header` is its 5 bytes, `body` what follows)
    /// in place; returns where in `body` the plaintext is (TLS 1.3: still
    /// with the inner content type and padding). The sequence number
    /// advances only when the record verified.
    pub fn open(
        &mut self,
        header: &[u8; 5],
        body: &mut [u8],
    ) -> Result<std::ops::Range<usize>, DecryptError> {
        const TAG: usize = 16;
        let mut nonce = self.iv;
        let skip = match self.nonce {
            NonceKind::XorSeq => {
                for (n, s) in nonce[4..].iter_mut().zip(self.seq.to_be_bytes()) {
                    *n ^= s;
                }
                0
            }
            NonceKind::Explicit => {
                if body.len() < 8 {
                    return Err(DecryptError::TooShort);
                }
                nonce[4..].copy_from_slice(&body[..8]);
                8
            }
        };
        if body.len() < skip + TAG {
            return Err(DecryptError::TooShort);
        }
        let plain_len = body.len() - skip - TAG;
        let aad: Vec<u8> = if self.version == TLS13 {
            header.to_vec()
        } else {
            let mut a = self.seq.to_be_bytes().to_vec();
            a.push(header[0]);
            a.extend_from_slice(&header[1..3]);
            a.extend_from_slice(&(plain_len as u16).to_be_bytes());
            a
        };
        let (ct, tag) = body[skip..].split_at_mut(plain_len);
        let tag = aes_gcm::aead::Tag::<Aes128Gcm>::clone_from_slice(tag);
        let nonce = aes_gcm::aead::Nonce::<Aes128Gcm>::from(nonce);
        let ok = match &self.aead {
            Aead::Aes128(c) => c.decrypt_in_place_detached(&nonce, &aad, ct, &tag),
            Aead::Aes256(c) => c.decrypt_in_place_detached(&nonce, &aad, ct, &tag),
            Aead::ChaCha(c) => c.decrypt_in_place_detached(&nonce, &aad, ct, &tag),
        };
        ok.map_err(|_| DecryptError::BadTag)?;
        self.seq += 1;
        Ok(skip..skip + plain_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 8448 §3 (simple 1-RTT handshake): the server's handshake traffic
    /// secret gives the published key and IV.
    #[test]
    fn tls13_keys_match_rfc_8448() {
        let secret = hex("b6 7b 7d 69 0c c1 6c 4e 75 e5 42 13 cb 2d 37 b4 e9 c9 12 bc de d9 10 5d 42 be fd 59 d3 91 ad 38");
        assert_eq!(
            expand_label(Hash::Sha256, &secret, "key", 16).unwrap(),
            hex("3f ce 51 60 09 c2 17 27 d0 f2 e4 e8 6e e4 03 bc")
        );
        assert_eq!(
            expand_label(Hash::Sha256, &secret, "iv", 12).unwrap(),
            hex("5d 31 3e b2 67 12 76 ee 13 00 0b 30")
        );
    }

    /// A record sealed with the same keys opens, and a flipped bit does not.
    #[test]
    fn records_round_trip_and_tampering_is_caught() {
        for (version, id) in [
            (TLS13, 0x1301),
            (TLS13, 0x1302),
            (TLS13, 0x1303),
            (TLS12, 0xC02F),
            (TLS12, 0xC030),
            (TLS12, 0xCCA8),
        ] {
            let s = suite(version, id).unwrap();
            let secret = [7u8; 48];
            let (mut dec, mut enc_twin) = if version == TLS13 {
                (
                    Decryptor::tls13(s, &secret[..s.hash.output_len()]).unwrap(),
                    Decryptor::tls13(s, &secret[..s.hash.output_len()]).unwrap(),
                )
            } else {
                let (c, _) = Decryptor::tls12(s, &secret, &[1; 32], &[2; 32]).unwrap();
                let (c2, _) = Decryptor::tls12(s, &secret, &[1; 32], &[2; 32]).unwrap();
                (c, c2)
            };
            for seq in 0..3u64 {
                let plain = format!("record {seq} of {id:#x}").into_bytes();
                let (header, body) = seal(&mut enc_twin, &plain);
                let mut b = body.clone();
                let range = dec.open(&header, &mut b).unwrap();
                assert_eq!(range.len(), plain.len());
                assert_eq!(&b[range], &plain[..]);
                let mut bad = body.clone();
                let last = bad.len() - 1;
                bad[last] ^= 1;
                let mut probe = Decryptor {
                    seq: dec.seq,
                    ..clone(&dec, s, &secret, version)
                };
                assert_eq!(probe.open(&header, &mut bad), Err(DecryptError::BadTag));
            }
        }
    }

    fn clone(d: &Decryptor, s: Suite, secret: &[u8], version: u16) -> Decryptor {
        let mut c = if version == TLS13 {
            Decryptor::tls13(s, &secret[..s.hash.output_len()]).unwrap()
        } else {
            Decryptor::tls12(s, secret, &[1; 32], &[2; 32]).unwrap().0
        };
        c.seq = d.seq;
        c
    }

    /// The test's own sealing, the inverse of `open`.
    fn seal(d: &mut Decryptor, plain: &[u8]) -> ([u8; 5], Vec<u8>) {
        let explicit = matches!(d.nonce, NonceKind::Explicit);
        let body_len = plain.len() + 16 + if explicit { 8 } else { 0 };
        let header = [23, 3, 3, (body_len >> 8) as u8, body_len as u8];
        let mut nonce = d.iv;
        let explicit_bytes = (d.seq + 1000).to_be_bytes();
        if explicit {
            nonce[4..].copy_from_slice(&explicit_bytes);
        } else {
            for (n, s) in nonce[4..].iter_mut().zip(d.seq.to_be_bytes()) {
                *n ^= s;
            }
        }
        let aad: Vec<u8> = if d.version == TLS13 {
            header.to_vec()
        } else {
            let mut a = d.seq.to_be_bytes().to_vec();
            a.extend_from_slice(&[23, 3, 3]);
            a.extend_from_slice(&(plain.len() as u16).to_be_bytes());
            a
        };
        let mut ct = plain.to_vec();
        let nonce = aes_gcm::aead::Nonce::<Aes128Gcm>::from(nonce);
        let tag = match &d.aead {
            Aead::Aes128(c) => c.encrypt_in_place_detached(&nonce, &aad, &mut ct),
            Aead::Aes256(c) => c.encrypt_in_place_detached(&nonce, &aad, &mut ct),
            Aead::ChaCha(c) => c.encrypt_in_place_detached(&nonce, &aad, &mut ct),
        }
        .unwrap();
        let mut body = Vec::new();
        if explicit {
            body.extend_from_slice(&explicit_bytes);
        }
        body.extend_from_slice(&ct);
        body.extend_from_slice(&tag);
        d.seq += 1;
        (header, body)
    }
}
