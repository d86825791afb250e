//! wstap: tap TCP traffic with eBPF, reassemble it, and decode the WebSocket
//! conversations in it.
//!
//! The modules follow the path of a packet:
//! `tap` (kernel programs, ring buffer) or `source::pcap` (capture files)
//! → [`source::Segment`] → `flow` (TCP reassembly) → `proto` (HTTP upgrade,
//! WebSocket frames and messages) → [`event::Event`] → `sink` (text, JSON
//! Lines, pcapng). `decode` joins flow and proto; `app` runs a whole capture.

pub mod app;
pub mod cli;
pub mod decode;
pub mod event;
pub mod filter;
pub mod flow;
pub mod proto;
pub mod sink;
pub mod source;
pub mod tap;
