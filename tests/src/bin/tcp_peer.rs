//! A tiny TCP peer for the live-capture tests. Both sides send a known byte
//! pattern (see `wstap_tests::tap::pattern`) and read the other side's bytes
//! until EOF, so every payload byte on the wire is predictable.
//!
//! ```text
//! tcp_peer server ADDR:PORT SEND_BYTES   # accept one connection
//! tcp_peer client ADDR:PORT SEND_BYTES
//! ```
//! Prints `ready` (server, once listening) and at the end
//! `sent N received M secs S` on stdout.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: tcp_peer server|client ADDR:PORT SEND_BYTES");
        std::process::exit(2);
    }
    let send: u64 = args[3].parse().expect("SEND_BYTES");
    let (stream, seed) = match args[1].as_str() {
        "server" => {
            let l = TcpListener::bind(&args[2]).expect("bind");
            println!("ready");
            std::io::stdout().flush().unwrap();
            (l.accept().expect("accept").0, tests::tap::SERVER_SEED)
        }
        "client" => {
            let mut last = None;
            let mut s = None;
            for _ in 0..50 {
                match TcpStream::connect(&args[2]) {
                    Ok(c) => {
                        s = Some(c);
                        break;
                    }
                    Err(e) => {
                        last = Some(e);
                        std::thread::sleep(std::time::Duration::from_millis(100));
                    }
                }
            }
            (
                s.unwrap_or_else(|| panic!("connect: {last:?}")),
                tests::tap::CLIENT_SEED,
            )
        }
        m => panic!("unknown mode {m}"),
    };
    let start = Instant::now();
    let mut w = stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        let mut off = 0u64;
        while off < send {
            let n = ((send - off) as usize).min(buf.len());
            tests::tap::fill_pattern(seed, off, &mut buf[..n]);
            w.write_all(&buf[..n]).expect("write");
            off += n as u64;
        }
        w.shutdown(Shutdown::Write).ok();
    });
    let mut r = stream;
    let mut buf = vec![0u8; 1 << 16];
    let mut got = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n as u64,
            Err(e) => panic!("read: {e}"),
        }
    }
    writer.join().unwrap();
    println!(
        "sent {send} received {got} secs {:.3}",
        start.elapsed().as_secs_f64()
    );
}
