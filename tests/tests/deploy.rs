//! The deployment examples in `deploy/` (issue 13), checked for real: the
//! systemd unit passes `systemd-analyze verify`, and its command line, run
//! as written in a namespace whose interface is `eth0`, captures a real
//! WebSocket conversation headless into JSON Lines and a pcapng ring. The
//! DaemonSet manifest parses, asks for the unit's capabilities, and its
//! command line, run as an unprivileged user holding exactly those
//! capabilities, does the same; one capability less is refused with a
//! message naming it.

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;
use tests::netns::VethPair;
use tests::peers::{peer_script, python_or_skip};
use tests::tap::Wstap;

fn deploy(file: &str) -> PathBuf {
    tests::workspace_root().join("deploy").join(file)
}

/// The unit's `KEY=` value.
fn unit_value(unit: &str, key: &str) -> String {
    unit.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in the unit"))
        .to_string()
}

/// The unit's ExecStart as arguments (systemd's `%%` is a `%`).
fn unit_command(unit: &str) -> Vec<String> {
    unit_value(unit, "ExecStart")
        .split_whitespace()
        .map(|a| a.replace("%%", "%"))
        .collect()
}

/// `CAP_BPF CAP_NET_ADMIN` → `["bpf", "net_admin"]`, sorted.
fn unit_caps(unit: &str) -> Vec<String> {
    let mut caps: Vec<String> = unit_value(unit, "CapabilityBoundingSet")
        .split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_lowercase())
        .collect();
    caps.sort();
    caps
}

/// The DaemonSet manifest as JSON (PyYAML reads it).
fn daemonset() -> Value {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, json, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(deploy("daemonset.yaml"))
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "daemonset.yaml does not parse: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `args` with the `-w` file moved into `dir`.
fn into_dir(args: &[String], dir: &Path) -> (Vec<String>, PathBuf) {
    let mut out = args.to_vec();
    let at = out
        .iter()
        .position(|a| a == "-w")
        .expect("-w in the command")
        + 1;
    let name = Path::new(&out[at]).file_name().unwrap().to_owned();
    let file = dir.join(name);
    out[at] = file.to_str().unwrap().to_string();
    (out, file)
}

/// Runs `wstap ARGS` (through `prefix`, e.g. setpriv) on `eth0` of a
/// namespace while a real client talks to a WebSocket server on port 8080
/// through it; checks the JSON Lines against what the client logged and
/// the first pcapng of the ring against them.
fn captures_headless(test: &str, args: &[String], prefix: &[String]) {
    let Some(py) = python_or_skip(test) else {
        return;
    };
    let dir = common::temp_dir(test);
    // An unprivileged wstap writes its files here.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (args, pcap) = into_dir(args, &dir);
    let v = VethPair::new().unwrap();
    v.b.ip(&["link", "set", &v.b_if, "down"]).unwrap();
    v.b.ip(&["link", "set", &v.b_if, "name", "eth0"]).unwrap();
    v.b.ip(&["link", "set", "eth0", "up"]).unwrap();
    let _server = common::start_ws_server(&v.b, &py, VethPair::B4, "8080", &dir);
    let bin = tests::wstap_bin();
    let mut full: Vec<&str> = prefix.iter().map(String::as_str).collect();
    full.push(bin.to_str().unwrap());
    full.extend(args.iter().skip(1).map(String::as_str));
    let w = Wstap::start_with_prefix(&v.b, &full).unwrap();
    assert!(
        !w.stderr_so_far().contains("warning"),
        "{}",
        w.stderr_so_far()
    );
    let log = dir.join("client.json");
    let st =
        v.a.command(&py)
            .arg(peer_script())
            .args(["client", "--host", VethPair::B4, "--port", "8080", "--log"])
            .arg(&log)
            .args(["--conversation", "plain"])
            .status()
            .unwrap();
    assert!(st.success());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = w.signal_and_wait(libc::SIGTERM).unwrap();
    assert!(out.status.success(), "{}", out.stderr);
    let events: Vec<Value> = out
        .lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON Lines"))
        .collect();
    let logged: Value = serde_json::from_slice(&std::fs::read(&log).unwrap()).unwrap();
    let conv = &logged["conversations"][0];
    common::check_conversation(&events, conv, common::Seen::Both);
    // -C 100 -W 10: the ring's first file, cap.pcapng0.
    let first = PathBuf::from(format!("{}0", pcap.display()));
    let again = common::wstap_json(&first, &[]);
    assert_eq!(
        common::named(&again.events, "ws_message").len(),
        common::named(&events, "ws_message").len(),
        "{}",
        first.display()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn systemd_unit_verifies_and_its_command_captures_headless() {
    let unit = std::fs::read_to_string(deploy("wstap.service")).unwrap();
    let args = unit_command(&unit);
    assert_eq!(
        args[0], "/usr/local/bin/wstap",
        "cargo xtask install's path"
    );
    if tests::require_tool("systemd_unit_verify", "systemd-analyze") {
        let dir = common::temp_dir("unit-verify");
        let copy = dir.join("wstap.service");
        std::fs::write(
            &copy,
            unit.replace("/usr/local/bin/wstap", tests::wstap_bin().to_str().unwrap()),
        )
        .unwrap();
        let out = std::process::Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&copy)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && said.trim().is_empty(), "{said}");
    }
    captures_headless("systemd_unit_command", &args, &[]);
}

#[test]
fn daemonset_asks_for_exactly_the_capabilities_its_command_needs() {
    let ds = daemonset();
    assert_eq!(ds["kind"], "DaemonSet");
    let spec = &ds["spec"]["template"]["spec"];
    assert_eq!(spec["hostNetwork"], true);
    assert_eq!(spec["hostPID"], true);
    let c = &spec["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    let mut caps: Vec<String> = sc["capabilities"]["add"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_lowercase())
        .collect();
    caps.sort();
    let unit = std::fs::read_to_string(deploy("wstap.service")).unwrap();
    assert_eq!(caps, unit_caps(&unit), "the unit and the manifest agree");
    let mounts: Vec<&str> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert!(mounts.contains(&"/sys/kernel/tracing"), "{mounts:?}");
    let mut args = vec!["wstap".to_string()];
    args.extend(
        c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string()),
    );
    if !tests::require_root("daemonset_capabilities") || !tests::require_tool("ds", "setpriv") {
        return;
    }
    // As nobody, with exactly these capabilities, and nothing else.
    let as_nobody = |caps: &[String]| -> Vec<String> {
        let list: Vec<String> = caps.iter().map(|c| format!("+{c}")).collect();
        let list = list.join(",");
        vec![
            "setpriv".into(),
            "--reuid=65534".into(),
            "--regid=65534".into(),
            "--clear-groups".into(),
            format!("--inh-caps=-all,{list}"),
            format!("--ambient-caps=-all,{list}"),
        ]
    };
    captures_headless("daemonset_command", &args, &as_nobody(&caps));
    // One less: CAP_NET_ADMIN (attaching), and wstap says so.
    let fewer: Vec<String> = caps.iter().filter(|c| *c != "net_admin").cloned().collect();
    let v = VethPair::new().unwrap();
    let mut cmd = v.b.command(&as_nobody(&fewer)[0]);
    cmd.args(&as_nobody(&fewer)[1..])
        .arg(tests::wstap_bin())
        .args(["-i", &v.b_if, "--port", "8080"]);
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("needs CAP_NET_ADMIN"), "{e}");
}
