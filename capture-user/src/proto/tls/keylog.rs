//! Key logs (`--keylog FILE`, NSS key log format, RFC 9850): the secrets
//! applications write when `SSLKEYLOGFILE` (or `keylog_filename`,
//! `--tls-keylog`, Go's `KeyLogWriter`) is set, one line per secret, keyed
//! by the ClientHello random. Also fed from pcapng Decryption Secrets
//! Blocks.
//!
//! Live, the application appends as it handshakes, so a session's secrets
//! may be written after wstap has seen its ClientHello: a lookup that
//! misses reads what was appended to the files since (a line not yet
//! ended waits for its newline) and looks again.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// A key log file that cannot be used at all.
#[derive(Debug, thiserror::Error)]
pub enum KeyLogError {
    #[error("--keylog {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The secrets of one session, as far as logged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    /// TLS 1.2: `CLIENT_RANDOM` (the 48-byte master secret).
    pub master: Option<Vec<u8>>,
    /// TLS 1.3 handshake and first application traffic secrets.
    pub client_handshake: Option<Vec<u8>>,
    pub server_handshake: Option<Vec<u8>>,
    pub client_traffic: Option<Vec<u8>>,
    pub server_traffic: Option<Vec<u8>>,
}

/// How many malformed lines are quoted in the summary.
const QUOTED_MAX: usize = 3;

#[derive(Debug, Default)]
struct Inner {
    secrets: HashMap<[u8; 32], Secrets>,
    /// Per file: bytes read so far, and the start of a line not yet ended.
    read: Vec<(u64, Vec<u8>, u64)>,
    lines: u64,
    malformed: u64,
    quoted: Vec<String>,
    /// Every secret line accepted, in order, as key-log text (what `-w`
    /// writes into Decryption Secrets Blocks).
    text: Vec<u8>,
}

/// Outcome tallies of the sessions the key log was asked about, for the
/// summary (updated by the TLS layers, possibly from several threads).
#[derive(Debug, Default)]
pub struct SessionTally {
    pub decrypted: AtomicU64,
    pub no_key: AtomicU64,
    pub failed: AtomicU64,
    pub unsupported: AtomicU64,
    pub late: AtomicU64,
    /// Sessions whose records waited for their secret (live: the
    /// application wrote it after wstap saw them).
    pub held: AtomicU64,
}

/// All key logs given, merged; shared by every connection's TLS layer.
#[derive(Debug)]
pub struct KeyLog {
    files: Vec<PathBuf>,
    inner: Mutex<Inner>,
    pub tally: SessionTally,
    /// Decryption Secrets Blocks read from the capture file.
    blocks: AtomicU64,
    /// Length of the accepted text, readable without the lock (the pcapng
    /// writer checks it before every packet).
    text_len: AtomicUsize,
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl KeyLog {
    /// Opens the files (each must be readable now; it may still be empty)
    /// and reads what they hold.
    pub fn open(files: &[PathBuf]) -> Result<KeyLog, KeyLogError> {
        for f in files {
            std::fs::File::open(f).map_err(|source| KeyLogError::Open {
                path: f.clone(),
                source,
            })?;
        }
        let log = KeyLog {
            files: files.to_vec(),
            inner: Mutex::new(Inner {
                read: files.iter().map(|_| (0, Vec::new(), 0)).collect(),
                ..Inner::default()
            }),
            tally: SessionTally::default(),
            blocks: AtomicU64::new(0),
            text_len: AtomicUsize::new(0),
        };
        log.refresh();
        Ok(log)
    }

    /// No files: only secrets added with [`KeyLog::add_text`] (pcapng
    /// Decryption Secrets Blocks).
    pub fn empty() -> KeyLog {
        KeyLog {
            files: Vec::new(),
            inner: Mutex::new(Inner::default()),
            tally: SessionTally::default(),
            blocks: AtomicU64::new(0),
            text_len: AtomicUsize::new(0),
        }
    }

    /// Whether any secrets can come: files given, or blocks read.
    pub fn has_sources(&self) -> bool {
        !self.files.is_empty() || self.blocks.load(Ordering::Relaxed) > 0
    }

    /// A Decryption Secrets Block of the capture file (TLS key log text).
    pub fn add_block(&self, text: &[u8]) {
        let n = self.blocks.fetch_add(1, Ordering::Relaxed) + 1;
        self.add_text(&format!("secrets block {n}"), text);
    }

    /// Bytes of key-log text accepted so far.
    pub fn text_len(&self) -> usize {
        self.text_len.load(Ordering::Acquire)
    }

    /// The accepted key-log text from byte `from` on.
    pub fn text_from(&self, from: usize) -> Vec<u8> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.text.get(from..).unwrap_or_default().to_vec()
    }

    /// Secrets of text from elsewhere (a Decryption Secrets Block); `origin`
    /// names it in the malformed-line quotes.
    pub fn add_text(&self, origin: &str, text: &[u8]) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for (i, line) in text.split(|&b| b == b'\n').enumerate() {
            inner.line(origin, i as u64 + 1, line);
        }
        self.text_len.store(inner.text.len(), Ordering::Release);
    }

    /// The secrets logged for `client_random`, reading what the files
    /// gained since the last look when they are not there yet.
    pub fn lookup(&self, client_random: &[u8; 32]) -> Option<Secrets> {
        self.lookup_for(client_random, |_| true)
    }

    /// The same, but the session's secrets count as there only once `enough`
    /// says so: an application logs a TLS 1.3 session's handshake secrets
    /// first and its traffic secrets a round trip later.
    pub fn lookup_for(
        &self,
        client_random: &[u8; 32],
        enough: impl Fn(&Secrets) -> bool,
    ) -> Option<Secrets> {
        if let Some(s) = self.cached(client_random).filter(|s| enough(s)) {
            return Some(s);
        }
        self.refresh();
        self.cached(client_random)
    }

    fn cached(&self, client_random: &[u8; 32]) -> Option<Secrets> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.secrets.get(client_random).cloned()
    }

    /// Reads the complete lines appended to each file since the last read.
    fn refresh(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for (i, path) in self.files.iter().enumerate() {
            // A stat first: a miss on a file that has not grown (every
            // record of a session the key log lacks) opens nothing.
            let Ok(len) = std::fs::metadata(path).map(|m| m.len()) else {
                continue; // rotated away for a moment: try again next time
            };
            let (pos, _, _) = inner.read[i];
            if len == pos {
                continue;
            }
            let Ok(mut f) = std::fs::File::open(path) else {
                continue;
            };
            if len < pos {
                // Truncated and rewritten: read it again from the start.
                inner.read[i] = (0, Vec::new(), 0);
            }
            let (pos, _, _) = inner.read[i];
            if f.seek(SeekFrom::Start(pos)).is_err() {
                continue;
            }
            let mut fresh = Vec::new();
            if f.read_to_end(&mut fresh).is_err() {
                continue;
            }
            let name = path.display().to_string();
            let (pos, mut pending, mut line_no) = std::mem::take(&mut inner.read[i]);
            pending.extend_from_slice(&fresh);
            let mut start = 0;
            while let Some(nl) = pending[start..].iter().position(|&b| b == b'\n') {
                line_no += 1;
                inner.line(&name, line_no, &pending[start..start + nl]);
                start += nl + 1;
            }
            pending.drain(..start);
            inner.read[i] = (pos + fresh.len() as u64, pending, line_no);
        }
        self.text_len.store(inner.text.len(), Ordering::Release);
    }

    /// The summary's key-log line: secrets loaded, malformed lines quoted.
    pub fn summary(&self) -> String {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let t = &self.tally;
        let mut s = format!(
            "wstap: key log: {} sessions' secrets ({} lines); TLS sessions decrypted {}, without a key {}, not decryptable {}, unsupported {}, seen only after their handshake {}; {} sessions' records waited for their secret",
            inner.secrets.len(),
            inner.lines,
            t.decrypted.load(Ordering::Relaxed),
            t.no_key.load(Ordering::Relaxed),
            t.failed.load(Ordering::Relaxed),
            t.unsupported.load(Ordering::Relaxed),
            t.late.load(Ordering::Relaxed),
            t.held.load(Ordering::Relaxed),
        );
        if inner.malformed > 0 {
            s.push_str(&format!(
                "\nwstap: key log: {} malformed lines ignored, the first: {}",
                inner.malformed,
                inner.quoted.join("; ")
            ));
        }
        s
    }

    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

impl Inner {
    /// One key-log line: `LABEL <client random hex> <secret hex>`.
    fn line(&mut self, origin: &str, line_no: u64, raw: &[u8]) {
        let text = String::from_utf8_lossy(raw);
        let line = text.trim();
        if line.is_empty() || line.starts_with('#') {
            return;
        }
        self.lines += 1;
        let mut parts = line.split_whitespace();
        let (Some(label), Some(random), Some(secret), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return self.malformed(origin, line_no, line, "not LABEL RANDOM SECRET");
        };
        let Some(random) = unhex(random).and_then(|r| <[u8; 32]>::try_from(r).ok()) else {
            return self.malformed(
                origin,
                line_no,
                line,
                "the client random is not 32 bytes of hex",
            );
        };
        let Some(secret) = unhex(secret).filter(|s| !s.is_empty() && s.len() <= 64) else {
            return self.malformed(origin, line_no, line, "the secret is not hex");
        };
        let entry = self.secrets.entry(random).or_default();
        let slot = match label {
            "CLIENT_RANDOM" if secret.len() == 48 => &mut entry.master,
            "CLIENT_RANDOM" => {
                return self.malformed(origin, line_no, line, "a master secret is 48 bytes")
            }
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET" => &mut entry.client_handshake,
            "SERVER_HANDSHAKE_TRAFFIC_SECRET" => &mut entry.server_handshake,
            "CLIENT_TRAFFIC_SECRET_0" => &mut entry.client_traffic,
            "SERVER_TRAFFIC_SECRET_0" => &mut entry.server_traffic,
            // Known labels wstap has no use for (0-RTT, exporters).
            "CLIENT_EARLY_TRAFFIC_SECRET"
            | "EARLY_EXPORTER_MASTER_SECRET"
            | "EXPORTER_SECRET"
            | "ECH_SECRET"
            | "ECH_CONFIG" => return,
            _ => return self.malformed(origin, line_no, line, "unknown label"),
        };
        *slot = Some(secret);
        self.text.extend_from_slice(line.as_bytes());
        self.text.push(b'\n');
    }

    fn malformed(&mut self, origin: &str, line_no: u64, line: &str, why: &str) {
        self.malformed += 1;
        if self.quoted.len() < QUOTED_MAX {
            let shown: String = line.chars().take(60).collect();
            self.quoted
                .push(format!("{origin}:{line_no}: {why}: {shown:?}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_parsed_and_malformed_ones_quoted() {
        let dir = std::env::temp_dir().join(format!("wstap-keylog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.log");
        let r = "11".repeat(32);
        let s32 = "22".repeat(32);
        let m48 = "33".repeat(48);
        std::fs::write(
            &path,
            format!(
                "# comment\nCLIENT_HANDSHAKE_TRAFFIC_SECRET {r} {s32}\nCLIENT_RANDOM {r} {m48}\nbogus line\nSERVER_TRAFFIC_SECRET_0 {r} zz\nNEW_LABEL {r} {s32}\nCLIENT_TRAFFIC_SECRET_0 {r}"
            ),
        )
        .unwrap();
        let log = KeyLog::open(std::slice::from_ref(&path)).unwrap();
        let got = log.lookup(&[0x11; 32]).unwrap();
        assert_eq!(got.client_handshake, Some(vec![0x22; 32]));
        assert_eq!(got.master, Some(vec![0x33; 48]));
        assert_eq!(got.client_traffic, None, "the last line has no newline yet");
        let sum = log.summary();
        assert!(sum.contains("3 malformed lines"), "{sum}");
        assert!(sum.contains("keys.log:4: not LABEL RANDOM SECRET"), "{sum}");
        assert!(sum.contains("keys.log:5: the secret is not hex"), "{sum}");
        assert!(sum.contains("keys.log:6: unknown label"), "{sum}");
        // The application appends: the line ends, a new session comes.
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        writeln!(f, " {s32}").unwrap();
        writeln!(f, "CLIENT_RANDOM {} {m48}", "44".repeat(32)).unwrap();
        drop(f);
        assert!(log.lookup(&[0x44; 32]).is_some());
        assert_eq!(
            log.lookup(&[0x11; 32]).unwrap().client_traffic,
            Some(vec![0x22; 32])
        );
        assert!(log.lookup(&[0x55; 32]).is_none());
        assert!(KeyLog::open(&[dir.join("missing")]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
