//! Arbitrary bytes as a capture file: the reader must return an error or
//! segments, never panic; every segment goes through the whole decoder.
#![no_main]

use std::io::Cursor;
use std::ops::ControlFlow;

use libfuzzer_sys::fuzz_target;
use wstap::event::Event;
use wstap::registry::{DecodeConfig, Decoder};
use wstap::source::pcap::PcapSource;

fuzz_target!(|data: &[u8]| {
    let Ok(mut src) = PcapSource::from_reader(Cursor::new(data)) else {
        return;
    };
    let mut dec = Decoder::new(DecodeConfig::default());
    let mut sink = |_e: &Event<'_>| {};
    let _ = src.for_each_segment(|seg, lost| {
        dec.push_cut(seg, lost, &mut sink);
        ControlFlow::Continue(())
    });
    dec.finish(&mut sink);
});
