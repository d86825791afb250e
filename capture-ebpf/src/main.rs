//! wstap's kernel programs: a TC classifier (attached on ingress and egress,
//! as the two entry points `wstap_ingress` and `wstap_egress` around one body) and
//! an XDP program (ingress). Each packet goes the same way through the
//! modules: [`packet`] reads it, [`parse`] finds the TCP segment, [`filter`]
//! keeps it or not, and [`record`] copies it into the ring (see
//! `capture-common` for the record layout); [`maps`] holds what user space
//! shares with the programs; [`sock`] holds the ownership hooks (which
//! process a socket belongs to). They never change or drop traffic: TC returns
//! TC_ACT_UNSPEC (pass on to the next program or the stack), XDP returns
//! XDP_PASS.
#![no_std]
#![no_main]

mod filter;
mod maps;
mod packet;
mod parse;
mod record;
mod sock;
mod tls;

use aya_ebpf::{
    bindings::{xdp_action, TC_ACT_UNSPEC},
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use aya_log_ebpf::{debug, info};
use capture_common::{csum, tcp_flags, Counter, DIR_EGRESS, DIR_INGRESS};

use maps::count;
use packet::Packet;
use parse::Skip;

/// The one body of every entry point. `csum` is what the kernel knows of the
/// TCP checksum where this program runs (`capture_common::csum`); it is asked
/// for only once a segment is kept.
#[inline(always)]
fn tap<C: Packet + aya_ebpf::EbpfContext>(ctx: &C, direction: u8) {
    count(Counter::PacketsSeen, 1);
    let seg = match parse::parse(ctx) {
        Ok(s) => s,
        Err(Skip::NotTcp) => return,
        Err(Skip::Error) => {
            count(Counter::ParseErrors, 1);
            info!(ctx, "wstap: cannot parse packet (len {})", ctx.total_len());
            return;
        }
    };
    if seg.payload_len == 0 && seg.flags & (tcp_flags::SYN | tcp_flags::FIN | tcp_flags::RST) == 0 {
        return; // a pure ACK: nothing to deliver
    }
    if !filter::pass(&seg) {
        debug!(
            ctx,
            "wstap: filtered out port {} -> {}", seg.sport, seg.dport
        );
        return;
    }
    if !filter::owner_pass(&seg) {
        count(Counter::OtherProcesses, 1);
        return;
    }
    debug!(
        ctx,
        "wstap: match port {} -> {} len {}", seg.sport, seg.dport, seg.payload_len
    );
    count(Counter::SegmentsMatched, 1);
    count(Counter::BytesMatched, seg.payload_len as u64);
    let csum = if direction == DIR_EGRESS {
        csum::LOCAL
    } else {
        ctx.ingress_csum()
    };
    record::emit(ctx, &seg, direction, csum);
}

#[classifier]
pub fn wstap_ingress(ctx: TcContext) -> i32 {
    tap(&ctx, DIR_INGRESS);
    TC_ACT_UNSPEC
}

#[classifier]
pub fn wstap_egress(ctx: TcContext) -> i32 {
    tap(&ctx, DIR_EGRESS);
    TC_ACT_UNSPEC
}

/// Does nothing: the yardstick of the kernel benchmark (see
/// `capture_common::PROG_TC_NOOP`).
#[classifier]
pub fn wstap_noop(_ctx: TcContext) -> i32 {
    TC_ACT_UNSPEC
}

#[xdp(frags)]
pub fn xdp_tap(ctx: XdpContext) -> u32 {
    tap(&ctx, DIR_INGRESS);
    xdp_action::XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 4] = *b"GPL\0";
