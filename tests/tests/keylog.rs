//! Decrypting `wss://` with key logs (issue 10), with real peers: Python
//! `websockets` over TLS in a private namespace, the client writing its
//! session secrets (`SSLContext.keylog_filename`), tcpdump recording.
//! `wstap -r FILE --keylog KEYS` must decode every message the peers
//! logged, plain and permessage-deflate, for TLS 1.3 (AES-128-GCM,
//! AES-256-GCM, ChaCha20-Poly1305) and TLS 1.2 (ECDHE with AES-GCM and
//! ChaCha20-Poly1305), and agree with `tshark -o tls.keylog_file:KEYS`;
//! every way it cannot decrypt says why; and live, `wstap -i lo --keylog
//! KEYS` follows the key log as the client writes it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use tests::netns::Netns;
use tests::peers::{peer_script, python_or_skip, self_signed_cert, Reaper};
use tests::tap::{parse_summary, Wstap};

const PORT: &str = "9443";

/// One TLS set-up to test: the client's options, and the suite the
/// server must choose.
struct Variant {
    name: &'static str,
    client: &'static [&'static str],
    /// TLS 1.3 suites are chosen through OpenSSL's configuration.
    tls13_suite: Option<&'static str>,
    expect_suite: &'static str,
    expect_version: &'static str,
}

const VARIANTS: &[Variant] = &[
    Variant {
        name: "tls13-aes256",
        client: &[],
        tls13_suite: None,
        expect_suite: "TLS_AES_256_GCM_SHA384",
        expect_version: "1.3",
    },
    Variant {
        name: "tls13-aes128",
        client: &[],
        tls13_suite: Some("TLS_AES_128_GCM_SHA256"),
        expect_suite: "TLS_AES_128_GCM_SHA256",
        expect_version: "1.3",
    },
    Variant {
        name: "tls13-chacha",
        client: &[],
        tls13_suite: Some("TLS_CHACHA20_POLY1305_SHA256"),
        expect_suite: "TLS_CHACHA20_POLY1305_SHA256",
        expect_version: "1.3",
    },
    Variant {
        name: "tls12-aes128",
        client: &[
            "--tls-max",
            "1.2",
            "--ciphers",
            "ECDHE-RSA-AES128-GCM-SHA256",
        ],
        tls13_suite: None,
        expect_suite: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        expect_version: "1.2",
    },
    Variant {
        name: "tls12-aes256",
        client: &[
            "--tls-max",
            "1.2",
            "--ciphers",
            "ECDHE-RSA-AES256-GCM-SHA384",
        ],
        tls13_suite: None,
        expect_suite: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        expect_version: "1.2",
    },
    Variant {
        name: "tls12-chacha",
        client: &[
            "--tls-max",
            "1.2",
            "--ciphers",
            "ECDHE-RSA-CHACHA20-POLY1305",
        ],
        tls13_suite: None,
        expect_suite: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        expect_version: "1.2",
    },
];

/// An OpenSSL configuration that offers only `suite` for TLS 1.3.
fn openssl_conf(dir: &Path, suite: &str) -> PathBuf {
    let p = dir.join(format!("openssl-{suite}.cnf"));
    std::fs::write(
        &p,
        format!(
            "openssl_conf = default_conf\n[default_conf]\nssl_conf = ssl_sect\n[ssl_sect]\n\
             system_default = system_default_sect\n[system_default_sect]\nCiphersuites = {suite}\n"
        ),
    )
    .unwrap();
    p
}

/// A wss:// echo server in `ns`, listening when this returns.
fn start_server(ns: &Netns, py: &Path, dir: &Path) -> Reaper {
    let (cert, key) = self_signed_cert(dir);
    let ready = dir.join("server-ready");
    let server = Reaper(
        ns.command(py)
            .arg(peer_script())
            .args(["server", "--host", "127.0.0.1", "--port", PORT, "--ready"])
            .arg(&ready)
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .spawn()
            .unwrap(),
    );
    common::wait_for_file(&ready, "wss server");
    server
}

/// Runs the client's plain and deflate conversations over wss:// with its
/// secrets written to `keys`; returns its logged conversations.
fn client(ns: &Netns, py: &Path, dir: &Path, keys: &Path, v: &Variant) -> Vec<Value> {
    let log = dir.join(format!("{}.json", v.name));
    common::ws_client(ns, py, "127.0.0.1", PORT, &log, |cmd| {
        cmd.arg("--tls").arg("--keylog").arg(keys).args(v.client);
        if let Some(suite) = v.tls13_suite {
            cmd.env("OPENSSL_CONF", openssl_conf(dir, suite));
        }
    })
}

/// Records one variant's conversation: (capture, key log, conversations).
fn record(ns: &Netns, py: &Path, dir: &Path, v: &Variant) -> (PathBuf, PathBuf, Vec<Value>) {
    let cap = dir.join(format!("{}.pcap", v.name));
    let keys = dir.join(format!("{}.keys", v.name));
    let td = common::start_tcpdump(ns, &cap);
    let convs = client(ns, py, dir, &keys, v);
    common::stop_tcpdump(td);
    (cap, keys, convs)
}

fn wstap(file: &Path, args: &[&str]) -> std::process::Output {
    Command::new(tests::wstap_bin())
        .arg("-r")
        .arg(file)
        .args(["--format", "json"])
        .args(args)
        .output()
        .unwrap()
}

fn events(out: &std::process::Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The key log with every secret's last hex digit changed.
fn corrupt(keys: &Path, to: &Path) {
    let text = std::fs::read_to_string(keys).unwrap();
    let bad: String = text
        .lines()
        .map(|l| {
            if l.starts_with('#') || l.is_empty() {
                return format!("{l}\n");
            }
            let mut l = l.to_string();
            let last = l.pop().unwrap();
            l.push(if last == '0' { '1' } else { '0' });
            format!("{l}\n")
        })
        .collect();
    std::fs::write(to, bad).unwrap();
}

#[test]
fn keylogs_decrypt_tls13_and_tls12_like_the_peers_and_tshark() {
    let Some(py) = python_or_skip("keylogs_decrypt_tls13_and_tls12") else {
        return;
    };
    if !tests::require_tool("keylogs_decrypt_tls13_and_tls12", "tcpdump")
        || !tests::require_tool("keylogs_decrypt_tls13_and_tls12", "tshark")
    {
        return;
    }
    let dir = common::temp_dir("keylog");
    let ns = Netns::new("klog").unwrap();
    ns.ip(&["link", "set", "lo", "up"]).unwrap();
    let _server = start_server(&ns, &py, &dir);
    for v in VARIANTS {
        let (cap, keys, convs) = record(&ns, &py, &dir, v);
        let keys_s = keys.to_str().unwrap();
        let out = wstap(&cap, &["--keylog", keys_s]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {err}", v.name);
        let ev = events(&out);
        assert_eq!(convs.len(), 2);
        for conv in &convs {
            common::check_conversation(&ev, conv, common::Seen::Both);
        }
        for e in &ev {
            let name = e["event"].as_str().unwrap();
            if name.starts_with("ws_") || name.starts_with("http_") {
                assert_eq!(e["via"], "keylog", "{}: {e}", v.name);
            }
        }
        let hellos = common::named(&ev, "tls_server_hello");
        assert_eq!(hellos.len(), 2, "{}", v.name);
        for h in hellos {
            assert_eq!(h["cipher_suite"], v.expect_suite, "{}", v.name);
            assert_eq!(h["version"], v.expect_version, "{}", v.name);
        }
        assert_eq!(common::named(&ev, "tls_client_hello").len(), 2);
        assert!(
            err.contains("TLS sessions decrypted 2, without a key 0, not decryptable 0"),
            "{}: {err}",
            v.name
        );
        // tshark, given the same key log, sees the same messages.
        let keylog_opt = format!("tls.keylog_file:{keys_s}");
        let compared = tests::tshark::compare(
            &ev,
            &cap,
            &["-o", &keylog_opt, "-d", &format!("tcp.port=={PORT},tls")],
        );
        assert!(
            compared > 20,
            "{}: only {compared} payloads compared with tshark",
            v.name
        );

        if v.name == "tls13-aes256" || v.name == "tls12-aes128" {
            refusals(&dir, v, &cap, &keys, &convs);
            secrets_in_pcapng(&dir, v, &cap, &keys, &convs);
        }
    }
}

/// pcapng Decryption Secrets Blocks: read (what `editcap --inject-secrets`
/// writes: the file decodes without --keylog) and written (`-w` with
/// --keylog: tshark decrypts the file with no key file).
fn secrets_in_pcapng(dir: &Path, v: &Variant, cap: &Path, keys: &Path, convs: &[Value]) {
    let injected = dir.join(format!("{}-injected.pcapng", v.name));
    let st = Command::new("editcap")
        .arg("--inject-secrets")
        .arg(format!("tls,{}", keys.display()))
        .arg(cap)
        .arg(&injected)
        .status()
        .unwrap();
    assert!(st.success(), "editcap --inject-secrets");
    let out = wstap(&injected, &[]);
    let ev = events(&out);
    for conv in convs {
        common::check_conversation(&ev, conv, common::Seen::Both);
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains("TLS sessions decrypted 2"));

    let written = dir.join(format!("{}-written.pcapng", v.name));
    let out = wstap(
        cap,
        &[
            "--keylog",
            keys.to_str().unwrap(),
            "-w",
            written.to_str().unwrap(),
        ],
    );
    assert!(out.status.success());
    let compared = tests::tshark::compare(
        &events(&out),
        &written,
        &["-d", &format!("tcp.port=={PORT},tls")],
    );
    assert!(
        compared > 20,
        "{}: tshark decrypted only {compared} messages of the -w file",
        v.name
    );
    // And wstap reads its own file back without the key log.
    let again = events(&wstap(&written, &[]));
    for conv in convs {
        common::check_conversation(&again, conv, common::Seen::Both);
    }
}

/// A real browser's capture with its secrets inside (Chrome to Cloudflare,
/// from the shared corpus): decrypted, and HTTP/2 is said to be HTTP/2.
#[test]
fn a_browsers_http2_session_is_decrypted_and_reported_as_http2() {
    let Some(corpus) = tests::corpus_dir() else {
        tests::skip("a_browsers_http2_session", "no ../shared/corpus here");
        return;
    };
    let file = corpus.join("ja4/chrome-cloudflare-quic-with-secrets.pcapng");
    let out = wstap(&file, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let ev = events(&out);
    let undecoded = common::named(&ev, "undecoded");
    assert_eq!(undecoded.len(), 1, "{undecoded:?}");
    assert_eq!(undecoded[0]["protocol"], "http2");
    assert_eq!(undecoded[0]["via"], "keylog");
    let hello = common::named(&ev, "tls_client_hello");
    assert_eq!(hello[0]["sni"], "cloudflare-quic.com");
    assert_eq!(hello[0]["alpn"], serde_json::json!(["h2", "http/1.1"]));
    assert!(err.contains("TLS sessions decrypted 1"), "{err}");
    assert!(!ev
        .iter()
        .any(|e| e["event"] == "violation" || e["event"] == "resync"));
}

/// Every way the capture of `v` cannot be decrypted, and what is said.
fn refusals(dir: &Path, v: &Variant, cap: &Path, keys: &Path, convs: &[Value]) {
    let no_ws = |ev: &[Value], what: &str| {
        assert!(
            !ev.iter()
                .any(|e| e["event"].as_str().unwrap().starts_with("ws_")),
            "{}: {what}: WebSocket events printed",
            v.name
        );
    };
    let reasons = |ev: &[Value]| -> Vec<String> {
        common::named(ev, "undecoded")
            .iter()
            .map(|e| e["reason"].as_str().unwrap().to_string())
            .collect()
    };
    // No key log: the hellos, and one line per connection saying why.
    let out = wstap(cap, &[]);
    let ev = events(&out);
    no_ws(&ev, "no key log");
    let client_hello = common::named(&ev, "tls_client_hello");
    assert_eq!(client_hello.len(), 2);
    assert!(client_hello[0]["versions"]
        .as_array()
        .unwrap()
        .contains(&Value::from("1.2")));
    let r = reasons(&ev);
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(r.iter().all(|r| r.contains("give --keylog FILE")), "{r:?}");
    // Wrong secrets: undecryptable, nothing wrong printed.
    let bad = dir.join(format!("{}.bad-keys", v.name));
    corrupt(keys, &bad);
    let out = wstap(cap, &["--keylog", bad.to_str().unwrap()]);
    let ev = events(&out);
    no_ws(&ev, "wrong secrets");
    let r = reasons(&ev);
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(
        r.iter()
            .all(|r| r.contains("did not decrypt with the logged secret")),
        "{r:?}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not decryptable 2"), "{err}");
    // A key log without this session.
    let other = dir.join("other.keys");
    std::fs::write(
        &other,
        format!("CLIENT_RANDOM {} {}\n", "ab".repeat(32), "cd".repeat(48)),
    )
    .unwrap();
    let out = wstap(cap, &["--keylog", other.to_str().unwrap()]);
    let ev = events(&out);
    no_ws(&ev, "another session's key");
    assert!(reasons(&ev)
        .iter()
        .all(|r| r.contains("no secret for this TLS session")));
    assert!(String::from_utf8_lossy(&out.stderr).contains("without a key 2"));
    // Malformed lines: counted, the first quoted with their line number;
    // the rest of the file is used.
    let mixed = dir.join(format!("{}.mixed-keys", v.name));
    let mut text = String::from("garbage here\nCLIENT_RANDOM zz yy\n");
    text.push_str(&std::fs::read_to_string(keys).unwrap());
    std::fs::write(&mixed, text).unwrap();
    let out = wstap(cap, &["--keylog", mixed.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("2 malformed lines ignored, the first: ")
            && err.contains("mixed-keys:1: not LABEL RANDOM SECRET")
            && err.contains("mixed-keys:2: the client random is not 32 bytes of hex"),
        "{err}"
    );
    let ev = events(&out);
    for conv in convs {
        common::check_conversation(&ev, conv, common::Seen::Both);
    }
    // The capture began after the handshakes: not guessed.
    // Cut: everything before the first connection's HTTP request (its
    // first record after the handshake, found by tshark with the keys).
    let late = dir.join(format!("{}-late.pcap", v.name));
    let keylog_opt = format!("tls.keylog_file:{}", keys.display());
    let found = Command::new("tshark")
        .arg("-r")
        .arg(cap)
        .args(["-o", &keylog_opt, "-d", &format!("tcp.port=={PORT},tls")])
        .args([
            "-Y",
            "http.request && tcp.stream == 0",
            "-T",
            "fields",
            "-e",
            "frame.number",
        ])
        .output()
        .unwrap();
    let first: u64 = String::from_utf8_lossy(&found.stdout)
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("tshark finds the first request");
    let st = Command::new("editcap")
        .arg(cap)
        .arg(&late)
        .arg(format!("1-{}", first - 1))
        .status()
        .unwrap();
    assert!(st.success());
    let out = wstap(&late, &["--keylog", keys.to_str().unwrap()]);
    let ev = events(&out);
    let r = reasons(&ev);
    assert!(
        r.iter()
            .any(|r| r.contains("began after this connection's TLS handshake")),
        "{r:?}"
    );
    // A key log that cannot be read is an error before anything is read.
    let out = wstap(cap, &["--keylog", "/nonexistent/keys"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--keylog /nonexistent/keys: No such file")
    );
}

#[test]
fn live_capture_follows_the_key_log_as_the_client_writes_it() {
    let Some(py) = python_or_skip("live_capture_follows_the_key_log") else {
        return;
    };
    let dir = common::temp_dir("keylog-live");
    let ns = Netns::new("kliv").unwrap();
    ns.ip(&["link", "set", "lo", "up"]).unwrap();
    let _server = start_server(&ns, &py, &dir);
    // The file exists, empty, when wstap starts; the client appends.
    let keys = dir.join("live.keys");
    std::fs::write(&keys, "").unwrap();
    let w = Wstap::start(
        &ns,
        &[
            "-i",
            "lo",
            "--format",
            "json",
            "--keylog",
            keys.to_str().unwrap(),
        ],
    )
    .unwrap();
    let mut convs = client(&ns, &py, &dir, &keys, &VARIANTS[0]);
    convs.extend(client(&ns, &py, &dir, &keys, &VARIANTS[3]));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = w.stop().unwrap();
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(parse_summary(&out.stderr).unwrap().records_lost, 0);
    let ev: Vec<Value> = out
        .lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(convs.len(), 4);
    for conv in &convs {
        common::check_conversation(&ev, conv, common::Seen::Both);
    }
    assert!(
        out.stderr
            .contains("TLS sessions decrypted 4, without a key 0, not decryptable 0"),
        "{}",
        out.stderr
    );
}

/// curl over HTTPS with `SSLKEYLOGFILE`: its request and the response,
/// decrypted.
#[test]
fn curl_https_with_sslkeylogfile_shows_request_and_response() {
    let Some(py) = python_or_skip("curl_https_with_sslkeylogfile") else {
        return;
    };
    if !tests::require_tool("curl_https_with_sslkeylogfile", "curl") {
        return;
    }
    let dir = common::temp_dir("keylog-curl");
    let ns = Netns::new("kcurl").unwrap();
    ns.ip(&["link", "set", "lo", "up"]).unwrap();
    let (cert, key) = self_signed_cert(&dir);
    let ready = dir.join("https-ready");
    let _server = Reaper(
        ns.command(&py)
            .arg(tests::workspace_root().join("tests/peers/wss_peer.py"))
            .arg("https")
            .arg(&cert)
            .arg(&key)
            .args(["127.0.0.1", "8443"])
            .arg(&ready)
            .spawn()
            .unwrap(),
    );
    common::wait_for_file(&ready, "https server");
    let cap = dir.join("curl.pcap");
    let keys = dir.join("curl.keys");
    let td = common::start_tcpdump(&ns, &cap);
    let out = ns
        .command("curl")
        .args(["-sk", "--http1.1", "https://127.0.0.1:8443/some/path"])
        .env("SSLKEYLOGFILE", &keys)
        .output()
        .unwrap();
    assert!(out.status.success(), "curl failed");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello over https\n");
    common::stop_tcpdump(td);
    let ev = events(&wstap(&cap, &["--keylog", keys.to_str().unwrap()]));
    let req = common::named(&ev, "http_request");
    assert_eq!(req.len(), 1, "{ev:?}");
    assert_eq!(req[0]["method"], "GET");
    assert_eq!(req[0]["path"], "/some/path");
    assert_eq!(req[0]["via"], "keylog");
    let resp = common::named(&ev, "http_response");
    assert_eq!(resp.len(), 1, "{ev:?}");
    assert_eq!(resp[0]["status"], 200);
    assert_eq!(resp[0]["content_length"], 17);
    let hello = common::named(&ev, "tls_client_hello");
    assert_eq!(hello[0]["alpn"], serde_json::json!(["http/1.1"]));
}

/// A HelloRetryRequest (the server wants another key share group): the
/// first ServerHello is told apart, the session still decrypts.
#[test]
fn hello_retry_request_is_recognised_and_the_session_decrypts() {
    let Some(py) = python_or_skip("hello_retry_request") else {
        return;
    };
    if !tests::require_tool("hello_retry_request", "tcpdump") {
        return;
    }
    let dir = common::temp_dir("keylog-hrr");
    let ns = Netns::new("khrr").unwrap();
    ns.ip(&["link", "set", "lo", "up"]).unwrap();
    // The server accepts only P-256; Python's client sends an X25519 share
    // first, so the server asks again.
    let conf = dir.join("server.cnf");
    std::fs::write(
        &conf,
        "openssl_conf = default_conf\n[default_conf]\nssl_conf = ssl_sect\n[ssl_sect]\n\
         system_default = system_default_sect\n[system_default_sect]\nGroups = P-256\n",
    )
    .unwrap();
    let (cert, key) = self_signed_cert(&dir);
    let ready = dir.join("server-ready");
    let _server = Reaper(
        ns.command(&py)
            .arg(peer_script())
            .args(["server", "--host", "127.0.0.1", "--port", PORT, "--ready"])
            .arg(&ready)
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .env("OPENSSL_CONF", &conf)
            .spawn()
            .unwrap(),
    );
    common::wait_for_file(&ready, "wss server");
    let (cap, keys, convs) = record(&ns, &py, &dir, &VARIANTS[0]);
    let out = wstap(&cap, &["--keylog", keys.to_str().unwrap()]);
    let ev = events(&out);
    let hellos = common::named(&ev, "tls_server_hello");
    assert_eq!(
        hellos.len(),
        4,
        "a retry and a real hello per connection: {hellos:?}"
    );
    assert_eq!(
        hellos
            .iter()
            .filter(|h| h["hello_retry_request"] == true)
            .count(),
        2
    );
    for conv in &convs {
        common::check_conversation(&ev, conv, common::Seen::Both);
    }
}

/// TLS 1.3 KeyUpdate: `openssl s_client`'s `k` command renews the client's
/// traffic secret mid-connection; the request after it must decrypt with
/// the next secret (HKDF-Expand-Label "traffic upd"). Then a second
/// connection resumes the first's session.
#[test]
fn a_key_update_and_a_resumed_session_decrypt() {
    if !tests::require_root("a_key_update_renews_the_secret")
        || !tests::require_tool("a_key_update_renews_the_secret", "tcpdump")
    {
        return;
    }
    use std::io::Write as _;
    let dir = common::temp_dir("keylog-keyupdate");
    let ns = Netns::new("kupd").unwrap();
    ns.ip(&["link", "set", "lo", "up"]).unwrap();
    let (cert, key) = self_signed_cert(&dir);
    let mut server = ns.command("openssl");
    server
        .args([
            "s_server",
            "-accept",
            "127.0.0.1:9444",
            "-www",
            "-quiet",
            "-cert",
        ])
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _server = Reaper(server.spawn().unwrap());
    // Wait until it listens.
    let listening = || {
        let out = ns
            .command("ss")
            .args(["-ltn", "sport = :9444"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("9444")
    };
    let t0 = std::time::Instant::now();
    while !listening() {
        assert!(t0.elapsed().as_secs() < 10, "s_server did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let cap = dir.join("keyupdate.pcap");
    let keys = dir.join("keyupdate.keys");
    let td = common::start_tcpdump(&ns, &cap);
    let session = dir.join("session.pem");
    // One s_client connection: each chunk written after a pause (a line
    // that is only "k" is its command to send a KeyUpdate); its stdout and
    // stderr.
    let s_client = |extra: &[&std::ffi::OsStr], chunks: &[&[u8]]| -> (String, String) {
        let mut client = ns
            .command("openssl")
            .args([
                "s_client",
                "-connect",
                "127.0.0.1:9444",
                "-tls1_3",
                "-keylogfile",
            ])
            .arg(&keys)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = client.stdin.take().unwrap();
        for c in chunks {
            std::thread::sleep(std::time::Duration::from_millis(700));
            stdin.write_all(c).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(700));
        drop(stdin);
        let out = client.wait_with_output().unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (reply, said) = s_client(
        &["-sess_out".as_ref(), session.as_os_str()],
        &[b"k\n", b"GET /after-key-update HTTP/1.0\r\n\r\n"],
    );
    assert!(
        reply.contains("HTTP/1.0 200 ok"),
        "s_server did not answer: {reply}"
    );
    assert!(
        said.contains("KEYUPDATE"),
        "s_client did not send a key update: {said}"
    );
    // A resumed session (PSK from the ticket of the first): logged and
    // decrypted like a full one.
    let (reply, _) = s_client(
        &["-sess_in".as_ref(), session.as_os_str()],
        &[b"GET /resumed HTTP/1.0\r\n\r\n"],
    );
    assert!(
        reply.contains("Reused, TLSv1.3"),
        "the session was not resumed: {reply}"
    );
    common::stop_tcpdump(td);
    let ev = events(&wstap(&cap, &["--keylog", keys.to_str().unwrap()]));
    let req = common::named(&ev, "http_request");
    assert_eq!(req.len(), 2, "{ev:?}");
    assert_eq!(req[0]["path"], "/after-key-update");
    assert_eq!(req[1]["path"], "/resumed");
    assert!(req.iter().all(|r| r["via"] == "keylog"));
    assert_eq!(common::named(&ev, "http_response").len(), 2, "{ev:?}");
    assert!(common::named(&ev, "undecoded").is_empty(), "{ev:?}");
}
