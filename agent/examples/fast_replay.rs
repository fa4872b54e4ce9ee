//! Benchmark sender for `benches/live.sh`: replays the Ethernet frames of a capture file
//! on an interface as fast as the kernel takes them, in batches of `sendmmsg(2)` on an
//! `AF_PACKET` socket (packet(7)), so that one process offers well over a million frames
//! a second on a veth — tcpreplay sends one frame per system call and tops out near
//! 300,000 on this class of machine.
//!
//! ```text
//! fast_replay IFACE CAPTURE [LOOPS]
//! ```
//!
//! Prints `sent N frames in S s = R pps; F failed`. Frames larger than the interface's
//! MTU are refused by the kernel and counted as failed. Test equipment only: it sends on
//! whatever interface it is given, so run it inside a network namespace.

use setten_agent::capture::{CaptureFile, LinkType};
use std::time::Instant;

/// Frames per `sendmmsg` call.
const BATCH: usize = 256;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: fast_replay IFACE CAPTURE [LOOPS]");
        std::process::exit(2);
    }
    let iface = &args[1];
    let loops: u64 = args.get(3).and_then(|l| l.parse().ok()).unwrap_or(1);
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let mut cap = CaptureFile::open(std::path::Path::new(&args[2])).unwrap_or_else(|e| {
        eprintln!("{}: {e}", args[2]);
        std::process::exit(2);
    });
    cap.for_each_packet(|p| {
        if p.link == LinkType::ETHERNET && p.data.len() >= 14 {
            frames.push(p.data.to_vec());
        }
    })
    .unwrap_or_else(|e| {
        eprintln!("{}: {e}", args[2]);
        std::process::exit(2);
    });
    if frames.is_empty() {
        eprintln!("{}: no Ethernet frames", args[2]);
        std::process::exit(2);
    }

    let name = std::ffi::CString::new(iface.as_str()).expect("interface name");
    // SAFETY: plain libc calls with valid arguments; every pointer handed to the kernel
    // points into memory that lives until the call returns.
    let fd = unsafe {
        let ifindex = libc::if_nametoindex(name.as_ptr());
        if ifindex == 0 {
            eprintln!("{iface}: no such interface");
            std::process::exit(2);
        }
        let proto = (libc::ETH_P_ALL as u16).to_be();
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto));
        if fd < 0 {
            eprintln!("socket(AF_PACKET): {}", std::io::Error::last_os_error());
            std::process::exit(2);
        }
        // Bypass the qdisc: frames go straight to the driver (PACKET_QDISC_BYPASS).
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_QDISC_BYPASS,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex as i32;
        if libc::bind(
            fd,
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        ) < 0
        {
            eprintln!("bind({iface}): {}", std::io::Error::last_os_error());
            std::process::exit(2);
        }
        fd
    };

    let total = frames.len() as u64 * loops;
    let (mut sent, mut failed) = (0u64, 0u64);
    let start = Instant::now();
    let mut iovs: Vec<libc::iovec> = Vec::with_capacity(BATCH);
    let mut msgs: Vec<libc::mmsghdr> = Vec::with_capacity(BATCH);
    let order = (0..loops).flat_map(|_| 0..frames.len());
    let mut pending: Vec<usize> = Vec::with_capacity(BATCH);
    let mut flush = |pending: &mut Vec<usize>, sent: &mut u64, failed: &mut u64| {
        iovs.clear();
        msgs.clear();
        for &i in pending.iter() {
            iovs.push(libc::iovec {
                iov_base: frames[i].as_ptr() as *mut libc::c_void,
                iov_len: frames[i].len(),
            });
        }
        for iov in iovs.iter_mut() {
            // SAFETY: an all-zero mmsghdr is valid; the iovec it points to lives in
            // `iovs`, which is not touched until sendmmsg returns.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
            msgs.push(m);
        }
        let mut off = 0;
        while off < msgs.len() {
            // SAFETY: `msgs[off..]` are initialised headers pointing at live buffers.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    msgs.as_mut_ptr().add(off),
                    (msgs.len() - off) as libc::c_uint,
                    0,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted
                    || e.raw_os_error() == Some(libc::ENOBUFS)
                {
                    continue;
                }
                // This frame is refused (too large for the MTU): count it, go on.
                *failed += 1;
                off += 1;
                continue;
            }
            *sent += n as u64;
            off += n as usize;
        }
        pending.clear();
    };
    for i in order {
        pending.push(i);
        if pending.len() == BATCH {
            flush(&mut pending, &mut sent, &mut failed);
        }
    }
    flush(&mut pending, &mut sent, &mut failed);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "sent {sent} frames in {secs:.3} s = {:.0} pps; {failed} failed (of {total})",
        sent as f64 / secs
    );
}
