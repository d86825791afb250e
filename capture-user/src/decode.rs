//! Joins `flow` and `proto`: segments in, [`Event`]s out.
//!
//! The [`Decoder`] owns the flow table and one [`Session`] per connection.
//! Reassembled bytes go to the session as they become in-order (borrowed from
//! the segment when possible); the session's [`ProtoEvent`]s get time,
//! connection id and addresses here. Flow-level facts (gaps, overlaps,
//! evictions, close) become events too, so nothing is lost silently.

use foldhash::HashMap;

use crate::event::{ConnId, Direction, Event, EventKind, EventSink};
use crate::flow::{FlowConfig, FlowEvent, FlowEventKind, FlowStats, FlowTable, Release};
use crate::proto::{ProtoConfig, ProtoEvent, Session, Side};
use crate::source::Segment;

/// Limits of the whole decoder.
#[derive(Debug, Clone, Default)]
pub struct DecodeConfig {
    pub flow: FlowConfig,
    pub proto: ProtoConfig,
}

/// Counters for the exit summary. Protocol counts are taken from the events
/// emitted, so they match the output exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeStats {
    pub flow: FlowStats,
    /// `ws_message` events.
    pub messages: u64,
    /// Payload bytes of those messages (after inflation).
    pub message_bytes: u64,
    /// Ping, pong and close frames.
    pub control_frames: u64,
    pub ws_opens: u64,
    pub upgrade_failures: u64,
    pub violations: u64,
    /// Messages cut at `max_message` / `max_inflated`.
    pub truncated_messages: u64,
    pub undecompressable: u64,
    pub resyncs: u64,
    pub resync_skipped_bytes: u64,
    /// Connections evicted (idle or table full).
    pub evictions: u64,
}

/// Segments in, events out, for any number of connections.
pub struct Decoder {
    cfg: DecodeConfig,
    flows: FlowTable,
    sessions: HashMap<ConnId, Conn>,
    stats: DecodeStats,
    last_ts_ns: u64,
}

/// Per-connection state kept beside the session.
struct Conn {
    session: Session,
    initiator_known: bool,
}

impl Decoder {
    pub fn new(cfg: DecodeConfig) -> Self {
        Decoder {
            flows: FlowTable::new(cfg.flow.clone()),
            cfg,
            sessions: HashMap::default(),
            stats: DecodeStats::default(),
            last_ts_ns: 0,
        }
    }

    /// Feeds one segment; every event it completes goes to `sink` now.
    pub fn push(&mut self, seg: &Segment<'_>, sink: &mut dyn EventSink) {
        self.push_cut(seg, 0, sink)
    }

    /// Feeds a segment whose payload was cut short by the capture (snap
    /// length): `lost` more payload bytes were on the wire. They are reported
    /// as a gap when the stream reaches them, not held for ever.
    pub fn push_cut(&mut self, seg: &Segment<'_>, lost: u32, sink: &mut dyn EventSink) {
        self.last_ts_ns = self.last_ts_ns.max(seg.ts_ns);
        let Decoder {
            cfg,
            flows,
            sessions,
            stats,
            ..
        } = self;
        let ts = seg.ts_ns;
        flows.push_cut(seg, lost, &mut |fe| {
            on_flow_event(cfg, sessions, stats, ts, fe, sink)
        });
    }

    /// End of input: flushes every connection (holes become gaps, sessions
    /// see `on_end`) and drops them. Events carry the last capture time.
    pub fn finish(&mut self, sink: &mut dyn EventSink) {
        let Decoder {
            cfg,
            flows,
            sessions,
            stats,
            last_ts_ns,
        } = self;
        let ts = *last_ts_ns;
        flows.finish(&mut |fe| on_flow_event(cfg, sessions, stats, ts, fe, sink));
    }

    /// Counters so far (flow counters included).
    pub fn stats(&self) -> DecodeStats {
        let mut s = self.stats.clone();
        s.flow = self.flows.stats().clone();
        s
    }
}

/// The direction of `side` when only the TCP handshake is known.
fn tcp_dir(initiator_known: bool, side: Side) -> Direction {
    match (initiator_known, side) {
        (true, Side::Initiator) => Direction::ClientToServer,
        (true, Side::Responder) => Direction::ServerToClient,
        (false, _) => Direction::Unknown,
    }
}

fn on_flow_event(
    cfg: &DecodeConfig,
    sessions: &mut HashMap<ConnId, Conn>,
    stats: &mut DecodeStats,
    ts_ns: u64,
    fe: FlowEvent<'_>,
    sink: &mut dyn EventSink,
) {
    let conn = fe.conn;
    let mut emit_flow = |side: Side, known: bool, kind: EventKind<'_>, stats: &mut DecodeStats| {
        let (src, dst) = fe.addrs(side);
        let ev = Event {
            ts_ns,
            conn,
            src,
            dst,
            dir: tcp_dir(known, side),
            kind,
        };
        count(stats, &ev.kind);
        sink.event(&ev);
    };
    match fe.kind {
        FlowEventKind::Open { initiator_known } => {
            sessions.insert(
                conn,
                Conn {
                    session: Session::new(&cfg.proto, initiator_known),
                    initiator_known,
                },
            );
        }
        FlowEventKind::Data(data) => {
            if let Some(c) = sessions.get_mut(&conn) {
                let (ini, resp) = (fe.initiator, fe.responder);
                c.session.on_data(fe.side, data, &mut |pe| {
                    emit_proto(ts_ns, conn, ini, resp, pe, stats, sink)
                });
            }
        }
        FlowEventKind::Gap(bytes) => {
            let c = sessions.get_mut(&conn);
            let known = c.as_ref().is_some_and(|c| c.initiator_known);
            emit_flow(fe.side, known, EventKind::Gap { bytes }, stats);
            if let Some(c) = c {
                let (ini, resp) = (fe.initiator, fe.responder);
                c.session.on_gap(fe.side, bytes, &mut |pe| {
                    emit_proto(ts_ns, conn, ini, resp, pe, stats, sink)
                });
            }
        }
        FlowEventKind::OverlapMismatch { offset, len } => {
            let known = sessions.get(&conn).is_some_and(|c| c.initiator_known);
            emit_flow(
                fe.side,
                known,
                EventKind::OverlapMismatch { offset, len },
                stats,
            );
        }
        FlowEventKind::End => {
            if let Some(c) = sessions.get_mut(&conn) {
                let (ini, resp) = (fe.initiator, fe.responder);
                c.session.on_end(fe.side, &mut |pe| {
                    emit_proto(ts_ns, conn, ini, resp, pe, stats, sink)
                });
            }
        }
        FlowEventKind::Released(why) => {
            let known = sessions.remove(&conn).is_some_and(|c| c.initiator_known);
            match why {
                Release::Closed { reset } => emit_flow(
                    Side::Initiator,
                    known,
                    EventKind::ConnClose { reset },
                    stats,
                ),
                Release::Evicted(reason) => emit_flow(
                    Side::Initiator,
                    known,
                    EventKind::FlowEvicted {
                        reason: reason.to_string(),
                    },
                    stats,
                ),
                Release::Finished => {}
            }
        }
    }
}

fn emit_proto(
    ts_ns: u64,
    conn: ConnId,
    initiator: std::net::SocketAddr,
    responder: std::net::SocketAddr,
    pe: ProtoEvent<'_>,
    stats: &mut DecodeStats,
    sink: &mut dyn EventSink,
) {
    let (src, dst) = match pe.side {
        Side::Initiator => (initiator, responder),
        Side::Responder => (responder, initiator),
    };
    let ev = Event {
        ts_ns,
        conn,
        src,
        dst,
        dir: pe.dir,
        kind: pe.kind,
    };
    count(stats, &ev.kind);
    sink.event(&ev);
}

fn count(stats: &mut DecodeStats, kind: &EventKind<'_>) {
    match kind {
        EventKind::WsMessage {
            payload, truncated, ..
        } => {
            stats.messages += 1;
            stats.message_bytes += payload.len() as u64;
            stats.truncated_messages += u64::from(*truncated);
        }
        EventKind::WsPing { .. } | EventKind::WsPong { .. } | EventKind::WsClose { .. } => {
            stats.control_frames += 1
        }
        EventKind::WsOpen { .. } => stats.ws_opens += 1,
        EventKind::WsUpgradeFailed { .. } => stats.upgrade_failures += 1,
        EventKind::Violation { .. } => stats.violations += 1,
        EventKind::WsUndecompressable { .. } => stats.undecompressable += 1,
        EventKind::Resync { skipped } => {
            stats.resyncs += 1;
            stats.resync_skipped_bytes += skipped;
        }
        EventKind::FlowEvicted { .. } => stats.evictions += 1,
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::tcp_flags::{ACK, RST, SYN};

    fn seg<'a>(from: &str, to: &str, ts: u64, seq: u32, flags: u8, p: &'a [u8]) -> Segment<'a> {
        Segment {
            iface: 0,
            ts_ns: ts,
            src: from.parse().unwrap(),
            dst: to.parse().unwrap(),
            seq,
            ack: 0,
            flags,
            window: 0,
            payload: p,
        }
    }

    /// (name, src, dir, ts) of every event.
    fn collect(dec: &mut Decoder, segs: &[Segment<'_>]) -> Vec<(String, String, Direction, u64)> {
        let mut v = Vec::new();
        let mut sink =
            |e: &Event<'_>| v.push((e.kind.name().to_string(), e.src.to_string(), e.dir, e.ts_ns));
        for s in segs {
            dec.push(s, &mut sink);
        }
        dec.finish(&mut sink);
        v
    }

    #[test]
    fn flow_facts_become_events_with_addresses_and_time() {
        let (c, s) = ("10.0.0.1:1000", "10.0.0.2:80");
        let mut dec = Decoder::new(DecodeConfig::default());
        let evs = collect(
            &mut dec,
            &[
                seg(c, s, 10, 0, SYN, b""),
                seg(s, c, 11, 0, SYN | ACK, b""),
                seg(c, s, 12, 5, ACK, b"xy"), // ahead of a 4-byte hole
                seg(c, s, 13, 5, ACK, b"zz"), // differs from the held copy
                seg(s, c, 14, 1, RST, b""),   // hole flushed as a gap
            ],
        );
        // The session may add its own view of the garbage (violations); only
        // the flow-level events are checked here.
        let evs: Vec<_> = evs
            .into_iter()
            .filter(|e| e.0 != "violation" && e.0 != "resync")
            .collect();
        let names: Vec<&str> = evs.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, ["overlap_mismatch", "gap", "conn_close"]);
        assert_eq!(evs[0].1, c);
        assert_eq!(evs[0].2, Direction::ClientToServer);
        assert_eq!(evs[1].3, 14, "time of the segment that caused it");
        let st = dec.stats();
        assert_eq!(st.flow.gaps, 1);
        assert_eq!(st.flow.gap_bytes, 4);
        assert_eq!(st.flow.overlap_mismatches, 1);
        assert_eq!(st.flow.resets, 1);
    }

    #[test]
    fn eviction_is_reported_and_midstream_direction_is_unknown() {
        let cfg = DecodeConfig {
            flow: FlowConfig {
                idle_timeout_ns: 100,
                ..FlowConfig::default()
            },
            ..DecodeConfig::default()
        };
        let mut dec = Decoder::new(cfg);
        let evs = collect(
            &mut dec,
            &[
                seg("1.1.1.1:1", "2.2.2.2:2", 0, 7, ACK, b"\x00"),
                seg("3.3.3.3:3", "2.2.2.2:2", 1000, 7, ACK, b"\x00"),
            ],
        );
        let ev = evs.iter().find(|e| e.0 == "flow_evicted").expect("evicted");
        assert_eq!(ev.2, Direction::Unknown);
        assert_eq!(dec.stats().evictions, 1);
    }
}
