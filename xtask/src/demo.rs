//! `cargo xtask demo`: the whole product on a built-in default. Creates a
//! private pair of network namespaces joined by a veth pair, starts a real
//! WebSocket echo server and client (Python `websockets`) that talk for a few
//! seconds (text, binary, fragmented, compressed, ping, close), runs `wstap`
//! on the server's interface, shows the decoded conversation, and removes
//! everything it made. Addresses live only inside the namespaces.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::{root, status};

const SERVER_IP: &str = "10.203.0.1";
const CLIENT_IP: &str = "10.203.0.2";
const PORT: &str = "8765";

/// Namespaces and interfaces the demo made; deleted on drop, even on error.
struct DemoNet {
    server_ns: String,
    client_ns: String,
    server_if: String,
}

impl DemoNet {
    fn create() -> Result<Self> {
        let pid = std::process::id();
        let net = DemoNet {
            server_ns: format!("wsdemo-s{pid}"),
            client_ns: format!("wsdemo-c{pid}"),
            server_if: "wsdemo0".into(),
        };
        let client_if = "wsdemo1";
        for ns in [&net.server_ns, &net.client_ns] {
            status(Command::new("ip").args(["netns", "add", ns]))?;
            status(Command::new("ip").args(["-n", ns, "link", "set", "lo", "up"]))?;
        }
        status(Command::new("ip").args([
            "link",
            "add",
            &net.server_if,
            "netns",
            &net.server_ns,
            "type",
            "veth",
            "peer",
            "name",
            client_if,
            "netns",
            &net.client_ns,
        ]))?;
        for (ns, ifname, addr) in [
            (&net.server_ns, net.server_if.as_str(), SERVER_IP),
            (&net.client_ns, client_if, CLIENT_IP),
        ] {
            status(Command::new("ip").args([
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                ifname,
            ]))?;
            status(Command::new("ip").args(["-n", ns, "link", "set", ifname, "up"]))?;
        }
        Ok(net)
    }

    fn exec(&self, ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program);
        c
    }
}

impl Drop for DemoNet {
    fn drop(&mut self) {
        for ns in [&self.server_ns, &self.client_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Kills a child process on drop.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python() -> Result<&'static str> {
    let ok = Command::new("/usr/bin/python3")
        .args(["-c", "import websockets"])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        bail!("/usr/bin/python3 cannot import websockets: `cargo xtask setup` installs python3-websockets");
    }
    Ok("/usr/bin/python3")
}

fn wait_for_file(path: &Path, what: &str) -> Result<()> {
    let start = Instant::now();
    while !path.exists() {
        if start.elapsed() > Duration::from_secs(20) {
            bail!("{what} did not start within 20 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Runs the demo; returns wstap's decoded output (also shown as it comes)
/// after checking it against what the client logged.
pub fn run(wstap: &Path, json: bool) -> Result<()> {
    let (output, log) = run_capture(wstap, json)?;
    check(&output, &log, json)
}

/// Every message the client sent and received must have been decoded: the
/// number of `ws_message` lines equals the client's log, and a few known
/// payloads are there.
fn check(output: &str, log: &str, json: bool) -> Result<()> {
    let log: serde_json::Value = serde_json::from_str(log).context("reading the client's log")?;
    let expected: usize = log["conversations"]
        .as_array()
        .context("client log without conversations")?
        .iter()
        .map(|c| {
            c["sent"].as_array().map_or(0, |a| a.len())
                + c["received"].as_array().map_or(0, |a| a.len())
        })
        .sum();
    let marker = if json {
        "\"event\":\"ws_message\""
    } else {
        " ws_message "
    };
    let decoded = output.lines().filter(|l| l.contains(marker)).count();
    if decoded != expected {
        bail!("demo: wstap decoded {decoded} messages, the peers exchanged {expected}");
    }
    for needle in ["frag-one frag-two frag-three", "are you there", "bye"] {
        if !output.contains(needle) {
            bail!("demo: {needle:?} missing from wstap's output");
        }
    }
    eprintln!("demo: checked: all {expected} messages the peers exchanged were decoded");
    Ok(())
}

fn run_capture(wstap: &Path, json: bool) -> Result<(String, String)> {
    if !crate::is_root() {
        bail!("the demo makes network namespaces and loads eBPF: run it as root (sudo -E cargo xtask demo)");
    }
    let py = python()?;
    let peer = root().join("tests/peers/ws_peer.py");
    let work = std::env::temp_dir().join(format!("wstap-demo-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let net = DemoNet::create().context("creating the demo's network namespaces")?;

    let ready = work.join("server.ready");
    let _server = Reaper(
        net.exec(&net.server_ns, py)
            .arg(&peer)
            .args(["server", "--host", SERVER_IP, "--port", PORT, "--ready"])
            .arg(&ready)
            .stdout(Stdio::null())
            .spawn()
            .context("starting the WebSocket server")?,
    );
    wait_for_file(&ready, "the WebSocket server")?;

    eprintln!(
        "demo: wstap -i {} --port {PORT} (in the server's namespace)",
        net.server_if
    );
    let mut wstap_cmd = net.exec(&net.server_ns, wstap);
    wstap_cmd.args(["-i", &net.server_if, "--port", PORT]);
    if json {
        wstap_cmd.args(["--format", "json"]);
    }
    let mut wstap_child = wstap_cmd
        .arg("--payload-max")
        .arg("120")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting wstap")?;
    // Wait until wstap says it is attached; echo its stderr meanwhile.
    let stderr = wstap_child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) => {
                eprintln!("{l}");
                if l.starts_with("listening on") {
                    break;
                }
            }
            _ => {
                let st = wstap_child.wait()?;
                bail!("wstap exited before attaching ({st})");
            }
        }
    }
    // Show the decoded lines as they come, and keep them for the check.
    let stdout = wstap_child.stdout.take().unwrap();
    let collect = std::thread::spawn(move || {
        let mut all = String::new();
        for l in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            println!("{l}");
            all.push_str(&l);
            all.push('\n');
        }
        all
    });
    let wstap_child = Reaper(wstap_child);
    let echo_stderr = std::thread::spawn(move || {
        for l in lines.map_while(|l| l.ok()) {
            eprintln!("{l}");
        }
    });

    let log = work.join("client.json");
    let client = net
        .exec(&net.client_ns, py)
        .arg(&peer)
        .args(["client", "--host", SERVER_IP, "--port", PORT, "--log"])
        .arg(&log)
        .args(["--conversation", "plain", "--conversation", "deflate"])
        .status()
        .context("running the WebSocket client")?;
    // Let the last segments reach wstap, then stop it like Ctrl-C would.
    std::thread::sleep(Duration::from_millis(500));
    sigint(wstap_child.0.id());
    let mut wstap_child = wstap_child;
    let st = wstap_child.0.wait()?;
    let _ = echo_stderr.join();
    let output = collect.join().unwrap_or_default();
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    drop(net);
    let _ = std::fs::remove_dir_all(&work);
    if !client.success() {
        bail!("the WebSocket client failed ({client})");
    }
    if !st.success() {
        bail!("wstap failed ({st})");
    }
    eprintln!("demo: done; namespaces removed");
    Ok((output, log))
}

/// Sends SIGINT (Ctrl-C) to a process.
fn sigint(pid: u32) {
    let _ = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
}
