//! `-w FILE` with tcpdump's rotation: `-C MB` starts a new file once the
//! current one is over MB million bytes, `-G SECONDS` once SECONDS have
//! passed since it was opened, `-W N` keeps N files (a ring with `-C`; with
//! `-G` alone, the capture ends after N files). Every file is a complete
//! pcapng (its own section header and interface blocks), readable alone.
//!
//! Names follow tcpdump's `MakeFilename`: with `-G`, FILE is a strftime(3)
//! format expanded with the local time the file's period began; with `-C`,
//! a counter is appended: FILE, FILE1, FILE2… without `-W`, and FILE0 …
//! FILE{N-1}, zero-padded to the digits of N-1, with `-W N`. Time is the
//! packets' own (live: now; `-r`: when they were captured), checked when a
//! packet is written, as tcpdump does.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use super::pcapng::{PcapNgError, PcapNgSink};
use crate::source::Segment;

/// What the options `-C`, `-G` and `-W` asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotation {
    /// `-C MB`, in bytes (MB × 1,000,000).
    pub size: Option<u64>,
    /// `-G SECONDS`, in nanoseconds.
    pub period_ns: Option<u64>,
    /// `-W N`.
    pub files: Option<u32>,
}

impl Rotation {
    /// From the command line's values; `-W` needs `-C` or `-G`, and none of
    /// them can be zero.
    pub fn new(
        size_mb: Option<u64>,
        seconds: Option<u64>,
        files: Option<u32>,
    ) -> Result<Self, String> {
        if size_mb == Some(0) || seconds == Some(0) || files == Some(0) {
            return Err("-C, -G and -W take a number above 0".into());
        }
        if files.is_some() && size_mb.is_none() && seconds.is_none() {
            return Err("-W N needs -C MB or -G SECONDS: it limits the files they start".into());
        }
        Ok(Rotation {
            size: size_mb.map(|m| m.saturating_mul(1_000_000)),
            period_ns: seconds.map(|s| s.saturating_mul(1_000_000_000)),
            files,
        })
    }

    /// True when any rotation was asked for.
    pub fn any(&self) -> bool {
        self.size.is_some() || self.period_ns.is_some()
    }

    /// Digits of the counter appended with `-C` (tcpdump's `WflagChars`:
    /// those of N-1 with `-W N`, none without).
    fn counter_digits(&self) -> usize {
        match (self.size, self.files) {
            (Some(_), Some(n)) => {
                let mut x = n - 1;
                let mut digits = 0;
                while x > 0 {
                    digits += 1;
                    x /= 10;
                }
                digits
            }
            _ => 0,
        }
    }
}

/// The name of a file: `template` expanded by strftime(3) at `period_start`
/// (seconds since the epoch, local time) with `-G`, then the counter `count`
/// appended as tcpdump does.
pub fn file_name(template: &Path, rotation: &Rotation, period_start_s: i64, count: u32) -> PathBuf {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let mut name: Vec<u8> = match rotation.period_ns {
        Some(_) => strftime(template.as_os_str().as_bytes(), period_start_s),
        None => template.as_os_str().as_bytes().to_vec(),
    };
    let digits = rotation.counter_digits();
    if count != 0 || digits != 0 {
        name.extend_from_slice(format!("{count:0digits$}").as_bytes());
    }
    PathBuf::from(std::ffi::OsString::from_vec(name))
}

/// strftime(3) of `format` at `t` in local time; the format itself when it
/// cannot be expanded (a NUL byte in it, or longer than PATH_MAX).
fn strftime(format: &[u8], t: i64) -> Vec<u8> {
    let Ok(fmt) = std::ffi::CString::new(format) else {
        return format.to_vec();
    };
    // SAFETY: zeroed tm is a valid value; localtime_r fills it from t.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let t: libc::time_t = t as libc::time_t;
    // SAFETY: valid pointers to a time_t and a tm.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return format.to_vec();
    }
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: buf has buf.len() bytes; fmt is NUL-terminated; tm is filled.
    let n = unsafe { libc::strftime(buf.as_mut_ptr().cast(), buf.len(), fmt.as_ptr(), &tm) };
    if n == 0 && !format.is_empty() {
        return format.to_vec();
    }
    buf.truncate(n);
    buf
}

/// The pcapng output of `-w`, one file or rotated ones.
pub struct PcapNgFiles {
    template: PathBuf,
    rotation: Rotation,
    current: Option<PcapNgSink<BufWriter<File>>>,
    /// When the current file's period began (ns since the epoch).
    period_start_ns: u64,
    /// The `-C` counter (wraps at `-W N`).
    count: u32,
    /// Files opened for `-G` periods (for `-W N` with `-G` alone).
    periods: u64,
    /// Every name opened, in order (a ring's names repeat).
    opened: Vec<PathBuf>,
    /// Packets written to earlier files.
    packets_before: u64,
    /// `-G` with `-W N` (no `-C`): N periods are done.
    done: bool,
    /// Key-log secrets every file gets as Decryption Secrets Blocks.
    secrets: Option<std::sync::Arc<crate::proto::tls::KeyLog>>,
}

impl PcapNgFiles {
    /// Opens `-w path`. `start_ns` (now, live) opens the first file at once;
    /// `None` (`-r`) waits for the first packet's time when names depend
    /// on it (`-G`), so a file read is split by its own clock.
    pub fn create(
        path: &Path,
        rotation: Rotation,
        start_ns: Option<u64>,
        secrets: Option<std::sync::Arc<crate::proto::tls::KeyLog>>,
    ) -> Result<Self, PcapNgError> {
        let mut files = PcapNgFiles {
            template: path.to_path_buf(),
            rotation,
            current: None,
            period_start_ns: 0,
            count: 0,
            periods: 0,
            opened: Vec::new(),
            packets_before: 0,
            done: false,
            secrets,
        };
        match start_ns {
            Some(ns) => files.open(ns)?,
            None if rotation.period_ns.is_none() => files.open(now_ns())?,
            None => {}
        }
        Ok(files)
    }

    fn open(&mut self, period_start_ns: u64) -> Result<(), PcapNgError> {
        if let Some(mut old) = self.current.take() {
            old.flush()
                .map_err(|e| PcapNgError::Write(pcap_file::PcapError::IoError(e)))?;
            self.packets_before += old.packets();
        }
        self.period_start_ns = period_start_ns;
        let path = file_name(
            &self.template,
            &self.rotation,
            (period_start_ns / 1_000_000_000) as i64,
            self.count,
        );
        let mut sink = PcapNgSink::create(&path)?;
        if let Some(k) = &self.secrets {
            sink.set_secrets(k.clone());
        }
        self.current = Some(sink);
        self.opened.push(path);
        Ok(())
    }

    /// Starts the next file when the one open is full or its period is
    /// over, before a packet stamped `ts_ns` is written.
    fn rotate_for(&mut self, ts_ns: u64) -> Result<(), PcapNgError> {
        let Some(cur) = &self.current else {
            return self.open(ts_ns);
        };
        if let Some(period) = self.rotation.period_ns {
            if ts_ns >= self.period_start_ns.saturating_add(period) {
                self.periods += 1;
                if self.rotation.size.is_none()
                    && self
                        .rotation
                        .files
                        .is_some_and(|n| self.periods >= u64::from(n))
                {
                    self.done = true;
                    return Ok(());
                }
                self.count = 0;
                return self.open(ts_ns);
            }
        }
        if let Some(size) = self.rotation.size {
            if cur.bytes() > size {
                self.count += 1;
                if self.rotation.files.is_some_and(|n| self.count >= n) {
                    self.count = 0;
                }
                let start = self.period_start_ns;
                return self.open(start);
            }
        }
        Ok(())
    }

    /// Writes a segment as [`PcapNgSink::write_segment_with_comment`] does,
    /// into the file whose turn it is. Nothing is written once [`Self::done`].
    pub fn write_segment(
        &mut self,
        iface: &str,
        seg: &Segment<'_>,
        comment: Option<&str>,
    ) -> Result<(), PcapNgError> {
        if self.done {
            return Ok(());
        }
        if self.rotation.any() || self.current.is_none() {
            self.rotate_for(seg.ts_ns)?;
            if self.done {
                return Ok(());
            }
        }
        let cur = self
            .current
            .as_mut()
            .expect("a file is open after rotate_for");
        cur.write_segment_with_comment(iface, seg, comment)
    }

    /// Flushes the open file; opens the first one if no packet came (so
    /// that `-w` always leaves a file).
    pub fn flush(&mut self) -> Result<(), PcapNgError> {
        if self.current.is_none() && !self.done {
            self.open(now_ns())?;
        }
        match &mut self.current {
            Some(c) => c
                .flush()
                .map_err(|e| PcapNgError::Write(pcap_file::PcapError::IoError(e))),
            None => Ok(()),
        }
    }

    /// `-G SECONDS` with `-W N` alone: N files are complete, the capture
    /// should end.
    pub fn done(&self) -> bool {
        self.done
    }

    /// Packets written, all files together.
    pub fn packets(&self) -> u64 {
        self.packets_before + self.current.as_ref().map_or(0, |c| c.packets())
    }

    /// The file being written (for messages): the last opened, or the
    /// template before any.
    pub fn current_path(&self) -> &Path {
        self.opened.last().unwrap_or(&self.template)
    }

    /// Where the packets went, for the summary: the file, or "N files
    /// (FIRST … LAST)".
    pub fn describe(&self) -> String {
        let shown = |p: &Path| {
            if super::pcapng::is_stdout(p) {
                "standard output".to_string()
            } else {
                p.display().to_string()
            }
        };
        match self.opened.as_slice() {
            [] => shown(&self.template),
            [one] => shown(one),
            [first, .., last] => {
                let mut distinct = self.opened.clone();
                distinct.sort();
                distinct.dedup();
                format!(
                    "{} files opened ({} distinct: {} … {})",
                    self.opened.len(),
                    distinct.len(),
                    shown(first),
                    shown(last)
                )
            }
        }
    }
}

/// Now, in nanoseconds since the epoch.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rot(c: Option<u64>, g: Option<u64>, w: Option<u32>) -> Rotation {
        Rotation::new(c, g, w).unwrap()
    }

    /// tcpdump's names: -C counts from FILE, FILE1; -W N pads to the
    /// digits of N-1 and starts at FILE0 (FILE with -W 1).
    #[test]
    fn names_follow_tcpdump() {
        let t = Path::new("/tmp/cap.pcapng");
        let c = rot(Some(1), None, None);
        assert_eq!(file_name(t, &c, 0, 0), Path::new("/tmp/cap.pcapng"));
        assert_eq!(file_name(t, &c, 0, 1), Path::new("/tmp/cap.pcapng1"));
        assert_eq!(file_name(t, &c, 0, 12), Path::new("/tmp/cap.pcapng12"));
        let ring = rot(Some(1), None, Some(10));
        assert_eq!(file_name(t, &ring, 0, 0), Path::new("/tmp/cap.pcapng0"));
        assert_eq!(file_name(t, &ring, 0, 9), Path::new("/tmp/cap.pcapng9"));
        let ring = rot(Some(1), None, Some(11));
        assert_eq!(file_name(t, &ring, 0, 3), Path::new("/tmp/cap.pcapng03"));
        let ring = rot(Some(1), None, Some(1));
        assert_eq!(file_name(t, &ring, 0, 0), Path::new("/tmp/cap.pcapng"));
        // -G: strftime; no counter unless -C rotated within the period.
        let timed = rot(None, Some(60), Some(3));
        let s = file_name(Path::new("cap-%Y%%.pcapng"), &timed, 1_700_000_000, 0);
        let year = s.to_str().unwrap();
        assert!(year.starts_with("cap-2023%.pcapng"), "{year}");
        let both = rot(Some(1), Some(60), None);
        let s = file_name(Path::new("c-%s-"), &both, 1_700_000_000, 2);
        assert_eq!(s, Path::new("c-1700000000-2"));
    }

    #[test]
    fn bad_combinations_are_refused() {
        assert!(Rotation::new(None, None, Some(3))
            .unwrap_err()
            .contains("needs -C"));
        assert!(Rotation::new(Some(0), None, None).is_err());
        assert!(Rotation::new(None, Some(0), None).is_err());
        assert!(!Rotation::new(None, None, None).unwrap().any());
    }
}
