//! The socket shells around the load engines: one OS thread per worker,
//! each with its own non-blocking UDP sockets and a tight receive / send /
//! expire loop (no async runtime, no thread per call). Workers split the
//! rate, the call count and the concurrency evenly and report at the end;
//! shared atomics feed the once-a-second progress line.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket as RawSocket, Type};

use super::calls::{CallEngine, CallSettings, CallStats, Socket};
use super::stateless::{StatelessEngine, StatelessMode, StatelessStats};
use super::tones::ToneTable;

/// Socket buffer size asked for (the kernel caps it at net.core.*mem_max).
pub const SOCKET_BUFFER: usize = 4 * 1024 * 1024;
/// Datagrams read from one socket before the loop moves on.
const RECV_BATCH: usize = 256;
/// Requests sent per loop turn before receiving again.
const SEND_BATCH: usize = 64;
/// Longest idle sleep, so new due work is never late by more than this.
const MAX_IDLE_SLEEP: Duration = Duration::from_millis(1);
/// How far behind schedule the sender may fall before it stops catching up.
const MAX_BACKLOG: Duration = Duration::from_millis(100);

/// Live counters for the progress line.
#[derive(Debug, Default)]
pub struct Progress {
    /// Requests or calls started.
    pub started: AtomicU64,
    /// Succeeded.
    pub succeeded: AtomicU64,
    /// Failed (including timeouts).
    pub failed: AtomicU64,
    /// In flight now (sum over workers, updated each loop turn).
    pub active: AtomicU64,
}

/// How much work and how fast, before splitting across workers.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    /// Target starts per second.
    pub rate: f64,
    /// Most in flight at once.
    pub concurrency: usize,
    /// Total to start.
    pub total: u64,
    /// Stop starting new work after this long.
    pub duration: Duration,
    /// After `duration` (or the last start), how long work in progress
    /// may still finish before it is counted as unfinished.
    pub drain: Duration,
}

impl Pace {
    /// Worker `i` of `n`'s share.
    fn share(&self, i: usize, n: usize) -> Pace {
        let n64 = n as u64;
        let i64_ = i as u64;
        let total = self.total / n64 + u64::from(i64_ < self.total % n64);
        let conc = self.concurrency / n + usize::from(i < self.concurrency % n);
        Pace {
            rate: self.rate / n as f64,
            concurrency: conc.max(1),
            total,
            ..*self
        }
    }
}

/// What a run took.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timing {
    /// From the first start to the last start.
    pub start_phase: Duration,
    /// From the first start to the end of the run.
    pub total: Duration,
    /// CPU seconds of this process (user + system), from /proc/self/stat.
    pub cpu_seconds: f64,
}

fn unspecified_for(target: SocketAddr) -> IpAddr {
    if target.ip().is_loopback() {
        target.ip()
    } else if target.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    }
}

/// Binds a non-blocking UDP socket with large buffers on `ip`, port 0.
pub fn bind_udp(ip: IpAddr) -> std::io::Result<UdpSocket> {
    let domain = if ip.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = RawSocket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: the kernel may cap these.
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    s.bind(&SocketAddr::new(ip, 0).into())?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// The local address the kernel picks for talking to `target` (for Via
/// and SDP when bound to the unspecified address).
fn local_addr_towards(sock: &UdpSocket, target: SocketAddr) -> std::io::Result<SocketAddr> {
    let local = sock.local_addr()?;
    if !local.ip().is_unspecified() {
        return Ok(local);
    }
    let probe = UdpSocket::bind(SocketAddr::new(local.ip(), 0))?;
    probe.connect(target)?;
    Ok(SocketAddr::new(probe.local_addr()?.ip(), local.port()))
}

/// CPU seconds (user + system) this process has used, from /proc/self/stat
/// fields 14 and 15, in USER_HZ (100 per second on Linux).
pub fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some(after) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else {
        return 0.0;
    };
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After "pid (comm) ", field 3 (state) is index 0: utime is index 11.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / 100.0
}

fn sleep_until(deadline: Option<Instant>, now: Instant) {
    let wait = deadline
        .map_or(MAX_IDLE_SLEEP, |d| d.saturating_duration_since(now))
        .min(MAX_IDLE_SLEEP);
    if !wait.is_zero() {
        std::thread::sleep(wait);
    }
}

/// Runs the stateless mode on `threads` workers with `sockets` sockets each.
#[allow(clippy::too_many_arguments)]
pub fn run_stateless(
    mode: StatelessMode,
    target: SocketAddr,
    dialed: &str,
    timeout: Duration,
    pace: Pace,
    threads: usize,
    sockets: usize,
    run_id: u64,
    progress: Arc<Progress>,
) -> std::io::Result<(StatelessStats, Timing)> {
    let threads = threads.max(1);
    let cpu0 = process_cpu_seconds();
    let t0 = Instant::now();
    let mut handles = Vec::new();
    for i in 0..threads {
        let share = pace.share(i, threads);
        let progress = progress.clone();
        let dialed = dialed.to_string();
        let worker_run = run_id.wrapping_mul(31).wrapping_add(i as u64);
        handles.push(std::thread::spawn(move || {
            stateless_worker(
                mode,
                target,
                &dialed,
                timeout,
                share,
                sockets.max(1),
                worker_run,
                &progress,
                t0,
            )
        }));
    }
    let mut stats = StatelessStats::default();
    let mut start_phase = Duration::ZERO;
    for h in handles {
        let (s, phase) = h
            .join()
            .map_err(|_| std::io::Error::other("worker thread panicked"))??;
        stats.merge(&s);
        start_phase = start_phase.max(phase);
    }
    Ok((
        stats,
        Timing {
            start_phase,
            total: t0.elapsed(),
            cpu_seconds: process_cpu_seconds() - cpu0,
        },
    ))
}

#[allow(clippy::too_many_arguments)]
fn stateless_worker(
    mode: StatelessMode,
    target: SocketAddr,
    dialed: &str,
    timeout: Duration,
    pace: Pace,
    n_sockets: usize,
    run_id: u64,
    progress: &Progress,
    t0: Instant,
) -> std::io::Result<(StatelessStats, Duration)> {
    let ip = unspecified_for(target);
    let mut socks = Vec::with_capacity(n_sockets);
    for _ in 0..n_sockets {
        let s = bind_udp(ip)?;
        s.connect(target)?;
        let local = local_addr_towards(&s, target)?;
        socks.push((s, local));
    }
    let mut engine = StatelessEngine::new(mode, target, dialed, run_id, timeout, pace.concurrency);
    let interval = Duration::from_secs_f64(1.0 / pace.rate.max(0.001));
    let mut next_due = t0;
    let mut rr = 0usize;
    let mut buf = vec![0u8; 65_536];
    let mut last_phase = Duration::ZERO;
    let stop_starting = t0 + pace.duration;
    let mut reported = (0u64, 0u64, 0u64);
    loop {
        let now = Instant::now();
        let mut busy = false;
        let starting = engine.stats().sent < pace.total && now < stop_starting;
        let mut n = 0;
        while starting && next_due <= now && n < SEND_BATCH && engine.stats().sent < pace.total {
            let Some((sock, local)) = socks.get(rr % n_sockets) else {
                break;
            };
            let Some(req) = engine.next_request(*local, now) else {
                break;
            };
            rr = rr.wrapping_add(1);
            if sock.send(&req).is_err() {
                engine.send_failed();
            }
            next_due += interval;
            n += 1;
            busy = true;
            last_phase = now.saturating_duration_since(t0);
        }
        // Falling behind by a sleep's overshoot is caught up by the next
        // turns (open loop); only a long stall (the in-flight limit, a
        // descheduled process) is forgiven instead of sent as a burst.
        if next_due + MAX_BACKLOG < now {
            next_due = now;
        }
        for (sock, local) in &socks {
            for _ in 0..RECV_BATCH {
                match sock.recv(&mut buf) {
                    Ok(len) => {
                        busy = true;
                        let data = buf.get(..len).unwrap_or_default();
                        if let Some(ack) = engine.handle_response(data, *local, Instant::now()) {
                            if sock.send(&ack).is_err() {
                                engine.send_failed();
                            }
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => break, // ICMP unreachable and the like: requests time out
                }
            }
        }
        engine.expire(now);
        let st = engine.stats();
        let done = (st.sent, st.answered, st.failed_total());
        if done != reported {
            progress
                .started
                .fetch_add(done.0 - reported.0, Ordering::Relaxed);
            progress
                .succeeded
                .fetch_add(done.1 - reported.1, Ordering::Relaxed);
            progress
                .failed
                .fetch_add(done.2 - reported.2, Ordering::Relaxed);
            reported = done;
        }
        let finished_starting = engine.stats().sent >= pace.total || now >= stop_starting;
        if finished_starting && engine.in_flight() == 0 {
            break;
        }
        if now >= stop_starting + pace.drain.max(timeout) {
            break;
        }
        if !busy {
            let next = if finished_starting {
                engine.next_expiry()
            } else {
                Some(next_due)
            };
            sleep_until(next, Instant::now());
        }
    }
    // Whatever is still in flight at the hard stop counts as timed out.
    engine.expire(Instant::now() + timeout);
    Ok((engine.into_stats(), last_phase))
}

/// Everything a full-call run needs besides the per-call settings.
#[derive(Clone, Debug)]
pub struct CallRun {
    /// Per-call settings (local addresses are filled in per worker).
    pub settings: CallSettings,
    /// How many, how fast.
    pub pace: Pace,
    /// Worker threads.
    pub threads: usize,
}

/// Runs full calls on `threads` workers, each with one SIP and one RTP socket.
pub fn run_calls(run: CallRun, progress: Arc<Progress>) -> std::io::Result<(CallStats, Timing)> {
    let threads = run.threads.max(1);
    let cpu0 = process_cpu_seconds();
    let t0 = Instant::now();
    let tones = Arc::new(ToneTable::new());
    let mut handles = Vec::new();
    for i in 0..threads {
        let pace = run.pace.share(i, threads);
        let mut settings = run.settings.clone();
        settings.run_id = settings.run_id.wrapping_mul(31).wrapping_add(i as u64);
        let progress = progress.clone();
        let tones = tones.clone();
        handles.push(std::thread::spawn(move || {
            call_worker(settings, pace, tones, &progress, t0)
        }));
    }
    let mut stats = CallStats::default();
    let mut start_phase = Duration::ZERO;
    for h in handles {
        let (s, phase) = h
            .join()
            .map_err(|_| std::io::Error::other("worker thread panicked"))??;
        stats.merge(&s);
        start_phase = start_phase.max(phase);
    }
    Ok((
        stats,
        Timing {
            start_phase,
            total: t0.elapsed(),
            cpu_seconds: process_cpu_seconds() - cpu0,
        },
    ))
}

fn call_worker(
    mut settings: CallSettings,
    pace: Pace,
    tones: Arc<ToneTable>,
    progress: &Progress,
    t0: Instant,
) -> std::io::Result<(CallStats, Duration)> {
    let target = settings.target;
    let ip = unspecified_for(target);
    let sip = bind_udp(ip)?;
    sip.connect(target)?;
    let rtp = bind_udp(ip)?;
    settings.local_sip = local_addr_towards(&sip, target)?;
    settings.local_rtp = local_addr_towards(&rtp, target)?;
    let mut engine = CallEngine::new(settings, tones);
    let interval = Duration::from_secs_f64(1.0 / pace.rate.max(0.001));
    let mut next_due = t0;
    let mut started = 0u64;
    let mut buf = vec![0u8; 65_536];
    let stop_starting = t0 + pace.duration;
    let mut last_phase = Duration::ZERO;
    let mut reported = (0u64, 0u64, 0u64, 0u64);
    let mut hard_stop: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let mut busy = false;
        while started < pace.total
            && now < stop_starting
            && next_due <= now
            && engine.active() < pace.concurrency
        {
            engine.start_call(now);
            started += 1;
            next_due += interval;
            busy = true;
            last_phase = now.saturating_duration_since(t0);
        }
        if next_due + MAX_BACKLOG < now {
            next_due = now;
        }
        for _ in 0..RECV_BATCH {
            match sip.recv(&mut buf) {
                Ok(len) => {
                    busy = true;
                    engine.handle_sip(buf.get(..len).unwrap_or_default(), Instant::now());
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => break,
            }
        }
        for _ in 0..RECV_BATCH * 4 {
            match rtp.recv_from(&mut buf) {
                Ok((len, from)) => {
                    busy = true;
                    engine.handle_rtp(buf.get(..len).unwrap_or_default(), from, Instant::now());
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => break,
            }
        }
        engine.handle_timeout(Instant::now());
        while let Some(t) = engine.poll_transmit() {
            busy = true;
            let sent = match t.socket {
                Socket::Sip => sip.send(&t.data),
                Socket::Rtp => rtp.send_to(&t.data, t.to),
            };
            let _ = sent; // loss shows up in the far end's counts and our timeouts
        }
        let st = engine.stats();
        let done = (
            st.attempted,
            st.succeeded,
            st.failed_total(),
            engine.active() as u64,
        );
        if done != reported {
            progress
                .started
                .fetch_add(done.0 - reported.0, Ordering::Relaxed);
            progress
                .succeeded
                .fetch_add(done.1 - reported.1, Ordering::Relaxed);
            progress
                .failed
                .fetch_add(done.2 - reported.2, Ordering::Relaxed);
            progress.active.fetch_add(done.3, Ordering::Relaxed);
            progress.active.fetch_sub(reported.3, Ordering::Relaxed);
            reported = done;
        }
        let finished_starting = started >= pace.total || now >= stop_starting;
        if finished_starting {
            if engine.active() == 0 {
                break;
            }
            let stop = *hard_stop.get_or_insert(now + pace.drain);
            if now >= stop {
                break;
            }
        }
        if !busy {
            let mut next = engine.poll_timeout();
            if !finished_starting {
                next = Some(next.map_or(next_due, |n| n.min(next_due)));
            }
            sleep_until(next, Instant::now());
        }
    }
    let stats = engine.finish("unfinished");
    progress.active.fetch_sub(reported.3, Ordering::Relaxed);
    Ok((stats, last_phase))
}
