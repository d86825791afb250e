//! wstap: tap TCP traffic with eBPF, reassemble it, and decode the WebSocket
//! conversations in it.
//!
//! The modules follow the path of a packet:
//! `tap` (kernel programs, ring buffer) or `source::pcap` (capture files)
//! → [`source::Segment`] → `registry` (one entry per connection: its TCP
//! reassembly in `flow`, its protocol stack in `proto`: detect → HTTP →
//! WebSocket) → [`event::Event`] → `sink` (text, JSON Lines, pcapng).
//! `side` names the two halves of a connection and who the client is;
//! `app` runs a whole capture.

pub mod app;
pub mod cli;
pub mod event;
pub mod filter;
pub mod flow;
pub mod owners;
pub mod proto;
pub mod registry;
pub mod side;
pub mod sink;
pub mod source;
pub mod tap;
