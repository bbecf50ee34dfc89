//! Media hot paths: RTP receive and send cost per packet, pacer tick cost,
//! and the pacer's send jitter over loopback at 1,000 and 5,000 streams.
//!
//! `cargo bench --bench media -- --warm-up-time 1 --measurement-time 3`
//! The jitter measurement runs after the criterion groups (only under
//! `cargo bench`, and only when no filter excludes "jitter"); its seconds per
//! run can be set with `DIALGATE_JITTER_SECS` (default 4), the pacer
//! thread's nice value with `DIALGATE_PACER_NICE` (default 0).

use std::collections::HashMap;
use std::hint::black_box;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use dialgate::media::g711::Law;
use dialgate::media::pacer::{BatchSender, Pacer, PacerShell, PacketBatch, TICK};
use dialgate::media::prompts::PromptLibrary;
use dialgate::media::rtp::{
    ReceiverConfig, RtpReceiver, RtpSender, Ssrc, FRAME_BYTES, MAX_PACKET_LEN,
};
use dialgate::media::PromptId;

fn loopback() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
    s.set_nonblocking(true).expect("nonblocking");
    s
}

fn rtp_receive(c: &mut Criterion) {
    let now = Instant::now();
    let from: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let mut rx = RtpReceiver::new(ReceiverConfig::default(), Some(from), now);
    let mut tx = RtpSender::with_initial(0, 101, Ssrc(1), 0, 0).unwrap();
    let mut pkt = [0u8; MAX_PACKET_LEN];
    let n = tx.build_audio(&[0xff; FRAME_BYTES], &mut pkt).unwrap();
    let mut seq = 0u16;
    let mut g = c.benchmark_group("rtp");
    g.throughput(Throughput::Elements(1));
    g.bench_function("receive_parse_and_classify", |b| {
        b.iter(|| {
            // A fresh sequence number each time so the in-order path is measured.
            seq = seq.wrapping_add(1);
            pkt[2..4].copy_from_slice(&seq.to_be_bytes());
            black_box(rx.handle_datagram(black_box(&pkt[..n]), from, now));
        })
    });

    let sink = loopback();
    let dest = sink.local_addr().unwrap();
    let sock = loopback();
    let mut s = RtpSender::new(0, 101).unwrap();
    let frame = [0xffu8; FRAME_BYTES];
    let mut buf = [0u8; MAX_PACKET_LEN];
    let dest2 = socket2::SockAddr::from(dest);
    let mut drain = [0u8; 2048];
    g.bench_function("send_build_and_send_to_loopback", |b| {
        // Timed: build + send_to only. The sink is drained between rounds,
        // outside the timing, so its buffer never fills.
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let round = left.min(256);
                let t = Instant::now();
                for _ in 0..round {
                    let n = s.build_audio(black_box(&frame), &mut buf).unwrap();
                    let _ = socket2::SockRef::from(&sock).send_to(&buf[..n], &dest2);
                }
                total += t.elapsed();
                left -= round;
                while sink.recv(&mut drain).is_ok() {}
            }
            total
        })
    });
    let conn = loopback();
    conn.connect(dest).unwrap();
    g.bench_function("send_build_and_send_connected_loopback", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let round = left.min(256);
                let t = Instant::now();
                for _ in 0..round {
                    let n = s.build_audio(black_box(&frame), &mut buf).unwrap();
                    let _ = conn.send(&buf[..n]);
                }
                total += t.elapsed();
                left -= round;
                while sink.recv(&mut drain).is_ok() {}
            }
            total
        })
    });
    g.bench_function("build_only", |b| {
        b.iter(|| black_box(s.build_audio(black_box(&frame), &mut buf).unwrap()))
    });
    g.finish();
}

fn pacer_tick(c: &mut Criterion) {
    let mut g = c.benchmark_group("pacer_tick");
    let prompt =
        PromptLibrary::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts"), "en")
            .expect("committed prompts")
            .prompt(None, PromptId::BridgeUnavailable)
            .clone();
    for streams in [1000usize, 5000] {
        let start = Instant::now();
        let mut p: Pacer<()> = Pacer::new(start);
        let dest: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        for _ in 0..streams {
            let id = p.add_stream(RtpSender::new(0, 101).unwrap(), Law::Mu, dest, ());
            p.play_prompt(id, &prompt).unwrap();
        }
        let mut batch = PacketBatch::with_capacity(streams);
        let mut k = 0u32;
        g.throughput(Throughput::Elements(streams as u64));
        g.bench_with_input(BenchmarkId::from_parameter(streams), &streams, |b, _| {
            b.iter(|| {
                k += 1;
                let out = p.tick(start + TICK * k, &mut batch);
                while p.poll_event().is_some() {}
                black_box(out)
            })
        });
    }
    g.finish();
}

/// One tick's batch sent two ways: one socket per stream (per-packet
/// `send_to`, the production layout) and all streams on one socket
/// (`sendmmsg`).
fn batch_send(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch_send_1000");
    g.throughput(Throughput::Elements(1000));
    let sink = loopback();
    let dest = sink.local_addr().unwrap();
    let mut drain = [0u8; 2048];
    for shared_socket in [false, true] {
        let start = Instant::now();
        let mut p: Pacer<Arc<UdpSocket>> = Pacer::new(start);
        let one = Arc::new(loopback());
        for _ in 0..1000 {
            let sock = if shared_socket {
                one.clone()
            } else {
                Arc::new(loopback())
            };
            p.add_stream(RtpSender::new(0, 101).unwrap(), Law::Mu, dest, sock);
        }
        let mut batch = PacketBatch::with_capacity(1000);
        p.tick(start, &mut batch);
        let mut sender = BatchSender::default();
        let name = if shared_socket {
            "sendmmsg_one_socket"
        } else {
            "send_to_socket_per_call"
        };
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    black_box(sender.send(&batch));
                    total += t.elapsed();
                    while sink.recv(&mut drain).is_ok() {}
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, rtp_receive, pacer_tick, batch_send);

/// Raises a socket's receive buffer past `rmem_max` when running as root
/// (SO_RCVBUFFORCE), so a 5,000-packet tick is not dropped by the receiver.
#[allow(unsafe_code)]
fn force_rcvbuf(sock: &UdpSocket, bytes: i32) {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt reads `size_of::<i32>()` bytes from a live i32 on
    // this stack frame; the fd is open for the duration of the call.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&bytes as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        let _ = socket2::SockRef::from(sock).set_recv_buffer_size(bytes as usize);
    }
}

/// Asks the kernel to timestamp each datagram as it is queued (SO_TIMESTAMPNS).
/// On loopback that happens inside the sender's `send_to`, so the stamps
/// measure the pacer's send times, not the receiving thread's scheduling.
#[allow(unsafe_code)]
fn enable_timestamps(sock: &UdpSocket) -> bool {
    use std::os::fd::AsRawFd;
    let on: i32 = 1;
    // SAFETY: setsockopt reads one live i32; the fd is open.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    rc == 0
}

/// Receives one datagram with its kernel timestamp (nanoseconds, CLOCK_REALTIME).
#[allow(unsafe_code)]
fn recv_stamped(sock: &UdpSocket, buf: &mut [u8]) -> Option<(usize, i128)> {
    use std::os::fd::AsRawFd;
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; 16];
    // SAFETY: an all-zero msghdr is a valid "no name, no control" header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: msg points at a live iovec over `buf` and a live control
    // buffer, both outliving the call.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return None;
    }
    // SAFETY: the CMSG_* macros walk the control buffer the kernel filled,
    // within msg_controllen; the timespec is read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                return Some((
                    n as usize,
                    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec),
                ));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    None
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs the real `PacerShell` with `streams` prompt streams, each from its
/// own socket, to one receiver socket; a receiver thread timestamps each
/// packet and the deviation of each stream's inter-arrival time from 20 ms
/// is reported.
fn jitter(streams: usize, secs: u64, nice: i32) {
    let rx = UdpSocket::bind("127.0.0.1:0").expect("bind receiver");
    force_rcvbuf(&rx, 64 << 20);
    // Non-blocking, drained every millisecond: a receiver blocked in recv
    // would be woken per packet, and on loopback that wake-up is charged to
    // the sending pacer thread (on a real NIC it is not).
    rx.set_nonblocking(true).unwrap();
    let dest = rx.local_addr().unwrap();
    let lib = PromptLibrary::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts"), "en")
        .expect("prompts");
    let prompt = lib.prompt(None, PromptId::BridgeUnavailable).clone();

    let shell: PacerShell<UdpSocket> = PacerShell::spawn_with_nice(nice).expect("pacer thread");
    let h = shell.handle();
    let mut ids = Vec::with_capacity(streams);
    for i in 0..streams {
        let sender = RtpSender::with_initial(0, 101, Ssrc(i as u32), 0, 0).unwrap();
        let (id, events) = h.add_stream(sender, Law::Mu, dest, Arc::new(loopback()));
        // Enough prompts for the run; events are not needed here.
        drop(events);
        for _ in 0..(secs / 7 + 1) {
            h.play(id, &prompt).unwrap();
        }
        ids.push(id);
    }

    let stamped = enable_timestamps(&rx);
    let receiver = std::thread::spawn(move || {
        // Per SSRC: previous arrival (ns) and sequence number.
        let mut last: HashMap<u32, (i128, u16)> = HashMap::with_capacity(streams);
        let mut dev_us: Vec<f64> = Vec::with_capacity(streams * 50 * secs as usize);
        let mut gaps = 0u64;
        let mut packets = 0u64;
        let mut buf = [0u8; 2048];
        let origin = Instant::now();
        let warmup = Duration::from_millis(500);
        let end = origin + Duration::from_secs(secs);
        while Instant::now() < end {
            let got = if stamped {
                recv_stamped(&rx, &mut buf)
            } else {
                rx.recv(&mut buf)
                    .ok()
                    .map(|n| (n, origin.elapsed().as_nanos() as i128))
            };
            let Some((n, t)) = got else {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            };
            if n < 12 {
                continue;
            }
            packets += 1;
            let seq = u16::from_be_bytes([buf[2], buf[3]]);
            let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
            if let Some((prev, pseq)) = last.insert(ssrc, (t, seq)) {
                if seq == pseq.wrapping_add(1) {
                    if origin.elapsed() > warmup {
                        let d = (t - prev) as f64 / 1e3 - 20_000.0;
                        dev_us.push(d.abs());
                    }
                } else {
                    gaps += 1;
                }
            }
        }
        (dev_us, gaps, packets)
    });
    let (mut dev, gaps, packets) = receiver.join().expect("receiver thread");
    let stats = h.stats();
    for id in ids {
        h.remove_stream(id);
    }
    shell.shutdown();
    dev.sort_by(|a, b| a.total_cmp(b));
    println!(
        "pacer jitter ({} timestamps), {streams} streams, pacer nice {nice}, {secs}s: |inter-arrival - 20ms| p50 {:.0} us, p99 {:.0} us, max {:.0} us \
         ({} intervals, {packets} packets received, {gaps} seq gaps at the receiver); \
         pacer: {} ticks, {} missed, {} late wake-ups, {} sent, {} dropped, {:.2} us per send",
        if stamped { "kernel" } else { "user-space" },
        percentile(&dev, 0.5),
        percentile(&dev, 0.99),
        dev.last().copied().unwrap_or(f64::NAN),
        dev.len(),
        stats.pacer.ticks,
        stats.pacer.missed_ticks,
        stats.late_wakeups,
        stats.sent,
        stats.dropped,
        stats.send_time.as_secs_f64() * 1e6 / stats.sent.max(1) as f64,
    );
}

fn main() {
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench_mode = args.iter().any(|a| a == "--bench");
    let filter = args
        .iter()
        .find(|a| !a.starts_with('-') && a.parse::<f64>().is_err());
    if bench_mode && filter.is_none_or(|f| "jitter".contains(f.as_str())) {
        let secs = std::env::var("DIALGATE_JITTER_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(4);
        let nice = std::env::var("DIALGATE_PACER_NICE")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        for streams in [1000, 5000] {
            jitter(streams, secs, nice);
        }
    }
}
