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

pub fn run(wstap: &Path, json: bool) -> Result<()> {
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
    drop(net);
    let _ = std::fs::remove_dir_all(&work);
    if !client.success() {
        bail!("the WebSocket client failed ({client})");
    }
    if !st.success() {
        bail!("wstap failed ({st})");
    }
    eprintln!("demo: done; namespaces removed");
    Ok(())
}

/// Sends SIGINT (Ctrl-C) to a process.
fn sigint(pid: u32) {
    let _ = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
}
