//! The TLS layer on records made here: what it says when secrets never
//! come, and that what it holds while waiting is bounded and counted.

use std::sync::Arc;

use super::*;

fn record(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut r = vec![ty, 3, 3];
    r.extend_from_slice(&(body.len() as u16).to_be_bytes());
    r.extend_from_slice(body);
    r
}

fn handshake(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![ty];
    m.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    m.extend_from_slice(body);
    record(CT_HANDSHAKE, &m)
}

fn client_hello(random: [u8; 32]) -> Vec<u8> {
    let mut b = vec![3, 3];
    b.extend_from_slice(&random);
    b.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
    handshake(HS_CLIENT_HELLO, &b)
}

fn server_hello_13() -> Vec<u8> {
    let mut b = vec![3, 3];
    b.extend_from_slice(&[5; 32]);
    b.extend_from_slice(&[0, 0x13, 0x01, 0]);
    b.extend_from_slice(&[0, 6, 0, 43, 0, 2, 3, 4]);
    handshake(HS_SERVER_HELLO, &b)
}

/// A key log file with another session's secret only.
fn unrelated_keylog(tag: &str) -> Arc<KeyLog> {
    let dir = std::env::temp_dir().join(format!("wstap-tls-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys.log");
    std::fs::write(
        &path,
        format!("CLIENT_RANDOM {} {}\n", "ab".repeat(32), "cd".repeat(48)),
    )
    .unwrap();
    Arc::new(KeyLog::open(&[path]).unwrap())
}

#[derive(Default)]
struct Seen {
    reasons: Vec<&'static str>,
    skipped: u64,
    plain: usize,
    hellos: usize,
}

fn feed(tls: &mut Tls, side: Side, bytes: &[u8], seen: &mut Seen) {
    tls.data(side, bytes, &mut |o| collect(o, seen));
}

fn collect(o: TlsOut<'_>, seen: &mut Seen) {
    match o {
        TlsOut::Plain(_, b) => seen.plain += b.len(),
        TlsOut::Emit(Emit::Event(_, EventKind::Stack(StackEvent::Undecoded { reason, .. }))) => {
            seen.reasons.push(reason)
        }
        TlsOut::Emit(Emit::Event(_, EventKind::Tls(_))) => seen.hellos += 1,
        TlsOut::Emit(Emit::Skipped(_, n)) => seen.skipped += n,
        _ => {}
    }
}

#[test]
fn records_waiting_for_a_secret_are_capped_and_counted() {
    let keylog = unrelated_keylog("cap");
    let mut tls = Tls::new(Some(keylog.clone()));
    let mut seen = Seen::default();
    feed(&mut tls, Side::Initiator, &client_hello([1; 32]), &mut seen);
    feed(&mut tls, Side::Responder, &server_hello_13(), &mut seen);
    assert_eq!(seen.hellos, 2);
    let app = record(CT_APPDATA, &[0x42; 16384]);
    let mut sent = 0u64;
    for _ in 0..70 {
        feed(&mut tls, Side::Responder, &app, &mut seen);
        sent += app.len() as u64;
        assert!(
            tls.mem() < HELD_MAX + (1 << 17),
            "holding {} bytes",
            tls.mem()
        );
    }
    assert_eq!(seen.reasons, [why::HELD_CAP]);
    assert_eq!(seen.plain, 0);
    assert_eq!(
        seen.skipped, sent,
        "every byte held and then dropped is counted"
    );
    assert_eq!(keylog.tally.no_key.load(Ordering::Relaxed), 1);
    assert_eq!(keylog.tally.held.load(Ordering::Relaxed), 1);
}

#[test]
fn a_session_whose_secret_never_comes_says_so_at_its_end() {
    let keylog = unrelated_keylog("end");
    let mut tls = Tls::new(Some(keylog.clone()));
    let mut seen = Seen::default();
    feed(&mut tls, Side::Initiator, &client_hello([2; 32]), &mut seen);
    feed(&mut tls, Side::Responder, &server_hello_13(), &mut seen);
    let app = record(CT_APPDATA, &[7; 100]);
    feed(&mut tls, Side::Responder, &app, &mut seen);
    assert!(seen.reasons.is_empty(), "still waiting: {:?}", seen.reasons);
    tls.end(Side::Responder, &mut |o| collect(o, &mut seen));
    assert_eq!(seen.reasons, [why::NO_SECRET]);
    assert_eq!(seen.skipped, app.len() as u64);
}

#[test]
fn records_before_any_hello_mean_a_late_start() {
    let keylog = unrelated_keylog("late");
    let mut tls = Tls::new(Some(keylog.clone()));
    let mut seen = Seen::default();
    feed(
        &mut tls,
        Side::Responder,
        &record(CT_APPDATA, &[9; 64]),
        &mut seen,
    );
    assert_eq!(seen.reasons, [why::LATE]);
    assert_eq!(keylog.tally.late.load(Ordering::Relaxed), 1);
    // A record header that is no TLS at all: malformed, the rest skipped.
    let mut tls = Tls::new(Some(keylog));
    let mut seen = Seen::default();
    feed(&mut tls, Side::Initiator, &client_hello([3; 32]), &mut seen);
    feed(
        &mut tls,
        Side::Initiator,
        &[0x99, 3, 3, 0, 4, 1, 2, 3, 4],
        &mut seen,
    );
    assert_eq!(seen.reasons, [why::MALFORMED]);
    assert_eq!(seen.skipped, 9);
}
