//! tshark as an independent oracle: its WebSocket messages per direction,
//! read from `tshark -T json`, for comparison with wstap's.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// (kind, payload): kind is "text", "binary", "ping" or "pong".
pub type Msg = (String, Vec<u8>);

/// Messages per direction, keyed "src -> dst" (addresses as wstap prints them).
pub type ByDir = BTreeMap<String, Vec<Msg>>;

/// One JSON value or an array of them, as a list.
pub fn as_list(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Null => vec![],
        v => vec![v],
    }
}

/// tshark's "aa:bb:cc" hex bytes.
pub fn hex(s: &str) -> Vec<u8> {
    s.split(':')
        .filter(|h| !h.is_empty())
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect()
}

/// "ip:port", IPv6 in brackets, as wstap writes endpoints.
pub fn addr(ip: &str, port: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// tshark 4.0's messages in `file`: a frame with FIN and a data opcode (or
/// a final continuation) ends a message whose payload is
/// `websocket.payload.text` (text, reassembled and inflated) or the packet's
/// next `data.data` (binary); pings and pongs carry their payload. `extra`
/// goes to tshark (for example `-o tcp.reassemble_out_of_order:TRUE`).
pub fn messages(file: &Path, extra: &[&str]) -> ByDir {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(["-Y", "websocket", "-T", "json", "--no-duplicate-keys"])
        .args(extra)
        .output()
        .expect("tshark");
    assert!(out.status.success(), "tshark failed on {}", file.display());
    let packets: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Array(vec![]));
    let mut by = ByDir::new();
    // Opcode of the message being fragmented, per direction.
    let mut pending: BTreeMap<String, String> = BTreeMap::new();
    for p in as_list(&packets) {
        let l = &p["_source"]["layers"];
        let (src_ip, dst_ip) = if l["ip"].is_object() {
            (&l["ip"]["ip.src"], &l["ip"]["ip.dst"])
        } else {
            (&l["ipv6"]["ipv6.src"], &l["ipv6"]["ipv6.dst"])
        };
        let port = |f: &str| l["tcp"][f].as_str().unwrap_or("?").to_string();
        let key = format!(
            "{} -> {}",
            addr(src_ip.as_str().unwrap_or("?"), &port("tcp.srcport")),
            addr(dst_ip.as_str().unwrap_or("?"), &port("tcp.dstport"))
        );
        let mut data: Vec<Vec<u8>> = as_list(&l["data"])
            .iter()
            .map(|d| hex(d["data.data"].as_str().unwrap_or("")))
            .collect();
        data.reverse();
        for ws in as_list(&l["websocket"]) {
            let op = ws["websocket.opcode"].as_str().unwrap_or("");
            let kind = match op {
                "1" => "text".to_string(),
                "2" => "binary".to_string(),
                "0" => pending.get(&key).cloned().unwrap_or_else(|| "?".into()),
                "9" | "10" => {
                    let (k, f) = if op == "9" {
                        ("ping", "websocket.payload.ping")
                    } else {
                        ("pong", "websocket.payload.pong")
                    };
                    let p = hex(ws["websocket.payload"][f].as_str().unwrap_or(""));
                    by.entry(key.clone()).or_default().push((k.to_string(), p));
                    continue;
                }
                _ => continue,
            };
            if ws["websocket.fin"] != "1" {
                pending.insert(key.clone(), kind);
                continue;
            }
            pending.remove(&key);
            let text = ws["websocket.payload"]["websocket.payload.text"].as_str();
            let payload = match (text, kind.as_str()) {
                (Some(t), _) => t.as_bytes().to_vec(),
                (None, "binary") => data.pop().unwrap_or_default(),
                (None, _) => Vec::new(), // an empty text message
            };
            by.entry(key.clone()).or_default().push((kind, payload));
        }
    }
    by
}

/// wstap's data messages, pings and pongs from its JSON events, keyed as
/// [`messages`] keys tshark's.
pub fn wstap_messages(events: &[Value]) -> ByDir {
    let mut by = ByDir::new();
    for e in events {
        let kind = match e["event"].as_str() {
            Some("ws_message") => e["opcode"].as_str().unwrap_or("?").to_string(),
            Some("ws_ping") => "ping".into(),
            Some("ws_pong") => "pong".into(),
            _ => continue,
        };
        let payload = payload_of(e);
        let key = format!(
            "{} -> {}",
            e["src"].as_str().unwrap_or("?"),
            e["dst"].as_str().unwrap_or("?")
        );
        by.entry(key).or_default().push((kind, payload));
    }
    by
}

/// The payload bytes of a wstap event (`text` or `data_b64`).
fn payload_of(e: &Value) -> Vec<u8> {
    use base64::Engine as _;
    if let Some(t) = e["text"].as_str() {
        t.as_bytes().to_vec()
    } else if let Some(b) = e["data_b64"].as_str() {
        base64::engine::general_purpose::STANDARD
            .decode(b)
            .expect("base64")
    } else {
        Vec::new()
    }
}

/// wstap's data messages, pings and pongs per direction, each with whether
/// tshark 4.0 can show its payload right (see [`tshark_can_show`]).
fn wstap_messages_shown(events: &[Value]) -> BTreeMap<String, Vec<(Msg, Option<usize>)>> {
    let mut by: BTreeMap<String, Vec<(Msg, Option<usize>)>> = BTreeMap::new();
    for e in events {
        let kind = match e["event"].as_str() {
            Some("ws_message") => e["opcode"].as_str().unwrap().to_string(),
            Some("ws_ping") => "ping".into(),
            Some("ws_pong") => "pong".into(),
            _ => continue,
        };
        let key = format!(
            "{} -> {}",
            e["src"].as_str().unwrap(),
            e["dst"].as_str().unwrap()
        );
        let shown = tshark_can_show(e);
        by.entry(key)
            .or_default()
            .push(((kind, payload_of(e)), shown));
    }
    by
}

/// How many payload bytes tshark 4.0 shows right, if any. It leaves
/// compressed binary messages compressed, inflates fragmented compressed
/// text frame by frame (garbage), does not join binary fragments when the
/// last one is empty (as `websockets` sends them), and unmasks at most
/// 256 KiB of a message (`MAX_UNMASKED_LEN`).
fn tshark_can_show(e: &Value) -> Option<usize> {
    if e["event"] != "ws_message" {
        return Some(usize::MAX);
    }
    if e["compressed"] == true || e["fragments"].as_u64().unwrap_or(1) > 1 {
        return None;
    }
    if e["dir"] == "client_to_server" {
        return Some(256 * 1024);
    }
    Some(usize::MAX)
}

/// Compares wstap's messages with tshark's (`extra`: more tshark options,
/// such as a key log): the same number and kinds per
/// direction, and the same payload wherever tshark can show it. Returns
/// how many payloads were compared.
pub fn compare(events: &[Value], file: &Path, extra: &[&str]) -> usize {
    let ours = wstap_messages_shown(events);
    // Two CPUs can put chunks of back-to-back segments into the ring out of
    // order; tshark 4.0 drops such data from reassembly unless told to
    // reorder (wstap's flow reassembly always does).
    let mut args = vec!["-o", "tcp.reassemble_out_of_order:TRUE"];
    args.extend_from_slice(extra);
    let theirs = messages(file, &args);
    let keys: HashSet<&String> = ours.keys().chain(theirs.keys()).collect();
    let mut compared = 0;
    for k in keys {
        let (o, t) = (
            ours.get(k).map_or(&[][..], |v| v),
            theirs.get(k).map_or(&[][..], |v| v),
        );
        assert_eq!(o.len(), t.len(), "{k}: wstap and tshark message counts");
        for (i, (((kind, payload), shown), (tkind, tpayload))) in o.iter().zip(t).enumerate() {
            assert_eq!(kind, tkind, "{k} #{i}: kind");
            if let Some(max) = shown {
                let want = &payload[..payload.len().min(*max)];
                assert!(
                    want == &tpayload[..],
                    "{k} #{i} ({kind}, {} bytes): payload",
                    payload.len()
                );
                compared += 1;
            }
        }
    }
    compared
}
