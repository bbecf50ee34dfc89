//! `dialgate-load`: a SIP load generator for capacity tests of dialgate.
//!
//! Full calls with RTP and conference-ID digits (`--mode calls`), or single
//! transactions for the signalling ceiling (`--mode options`,
//! `--mode invite-404`). Every run is bounded by `--calls` and
//! `--duration`. Prints a progress line on stderr each second, a summary
//! (or `--json`) at the end, and exits 1 when anything failed.
//!
//! ```text
//! dialgate-load --target 127.0.0.1:5060 --calls 100 --rate 10 --concurrency 50 \
//!     --hold 2s --expect answered
//! dialgate-load --target 127.0.0.1:5060 --mode options --rate 30000 --calls 300000 --threads 2
//! ```

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use serde_json::json;

use dialgate::config::parse_duration;
use dialgate::loadgen::calls::{parse_digits, CallSettings, CallStats, DtmfMode, Expect};
use dialgate::loadgen::histogram::Histogram;
use dialgate::loadgen::run::{self, CallRun, Pace, Progress, Timing};
use dialgate::loadgen::stateless::{StatelessMode, StatelessStats};
use dialgate::sip::transaction::TimerSettings;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Full calls: INVITE, RTP, digits, outcome, hold, BYE.
    Calls,
    /// OPTIONS requests (expect 200).
    Options,
    /// INVITE to an unknown number (expect 404, then ACK).
    #[value(name = "invite-404")]
    Invite404,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum DtmfArg {
    Rfc4733,
    Inband,
    Info,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ExpectArg {
    Answered,
    Joined,
    Refused,
    Transferred,
}

/// SIP load generator for dialgate.
#[derive(Parser, Debug)]
#[command(name = "dialgate-load", version)]
struct Args {
    /// The gateway's SIP address (UDP).
    #[arg(long, default_value = "127.0.0.1:5060")]
    target: String,
    /// What to send.
    #[arg(long, value_enum, default_value = "calls")]
    mode: Mode,
    /// Calls (or requests) started per second.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Most calls (or requests) in progress at once.
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    /// Total calls (or requests) to start.
    #[arg(long, default_value_t = 10)]
    calls: u64,
    /// Stop starting new work after this long (e.g. 30s).
    #[arg(long, default_value = "60s", value_parser = duration)]
    duration: Duration,
    /// After the last start, how long work in progress may take to finish
    /// (make it longer than --hold); what is still running then fails as
    /// "unfinished".
    #[arg(long, default_value = "15s", value_parser = duration)]
    drain: Duration,
    /// How long a call stays up after its outcome, sending and receiving RTP.
    #[arg(long, default_value = "5s", value_parser = duration)]
    hold: Duration,
    /// The dial-in number (Request-URI user part) for calls.
    #[arg(long, default_value = "15550100")]
    number: String,
    /// A number the gateway does not serve, for `--mode invite-404`.
    #[arg(long, default_value = "19995550000")]
    unknown_number: String,
    /// The caller's number (From user part).
    #[arg(long, default_value = "15557000")]
    caller: String,
    /// The conference ID to send.
    #[arg(long, default_value = "1234567")]
    conference_id: String,
    /// Key sent after the conference ID ("" for none).
    #[arg(long, default_value = "#")]
    terminator: String,
    /// How the digits are sent.
    #[arg(long, value_enum, default_value = "rfc4733")]
    dtmf: DtmfArg,
    /// The outcome a call must reach (`answered`: answer and hold, no digits).
    #[arg(long, value_enum, default_value = "answered")]
    expect: ExpectArg,
    /// Longest wait for the first prompt RTP packet before the digits.
    #[arg(long, default_value = "3s", value_parser = duration)]
    prompt_wait: Duration,
    /// Pause after the first prompt packet before the first digit.
    #[arg(long, default_value = "500ms", value_parser = duration)]
    digit_delay: Duration,
    /// After the digits: how long the call must stay up to count as joined,
    /// and the longest wait for the gateway's BYE or REFER.
    #[arg(long, default_value = "5s", value_parser = duration)]
    outcome_wait: Duration,
    /// Stateless modes: a request without a final response this long is a timeout.
    #[arg(long, default_value = "2s", value_parser = duration)]
    timeout: Duration,
    /// SIP T1 for our client transactions (calls mode).
    #[arg(long, default_value = "500ms", value_parser = duration)]
    t1: Duration,
    /// Worker threads (each with its own sockets).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Stateless modes: UDP sockets per worker.
    #[arg(long, default_value_t = 4)]
    sockets: usize,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// No progress line.
    #[arg(long, short)]
    quiet: bool,
    /// Allow a target that is not a loopback address.
    #[arg(long)]
    allow_non_loopback: bool,
}

fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s)
}

fn resolve(target: &str) -> Result<SocketAddr, String> {
    target
        .to_socket_addrs()
        .map_err(|e| format!("--target {target}: {e}"))?
        .next()
        .ok_or_else(|| format!("--target {target}: no address"))
}

fn check(args: &Args) -> Vec<String> {
    let mut p = Vec::new();
    if !(args.rate.is_finite() && args.rate > 0.0) {
        p.push("--rate: must be a positive number".into());
    }
    if args.concurrency == 0 {
        p.push("--concurrency: must be at least 1".into());
    }
    if args.calls == 0 {
        p.push("--calls: must be at least 1".into());
    }
    if args.duration.is_zero() {
        p.push("--duration: must be positive".into());
    }
    if args.threads == 0 || args.threads > 64 {
        p.push("--threads: must be 1..=64".into());
    }
    if args.sockets == 0 || args.sockets > 256 {
        p.push("--sockets: must be 1..=256".into());
    }
    if parse_digits(&args.conference_id).is_none() || parse_digits(&args.terminator).is_none() {
        p.push("--conference-id/--terminator: only 0-9 * # A-D".into());
    }
    if args.t1.is_zero() {
        p.push("--t1: must be positive".into());
    }
    p
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut problems = check(&args);
    let target = match resolve(&args.target) {
        Ok(t) => Some(t),
        Err(e) => {
            problems.push(e);
            None
        }
    };
    if let Some(t) = target {
        if !t.ip().is_loopback() && !args.allow_non_loopback {
            problems.push(format!(
                "--target {t} is not a loopback address; load tests against other hosts need --allow-non-loopback"
            ));
        }
    }
    let Some(target) = target.filter(|_| problems.is_empty()) else {
        for p in problems {
            eprintln!("dialgate-load: {p}");
        }
        return ExitCode::from(2);
    };
    let pace = Pace {
        rate: args.rate,
        concurrency: args.concurrency,
        total: args.calls,
        duration: args.duration,
        drain: args.drain,
    };
    let run_id = rand::random::<u32>() as u64;
    let progress = Arc::new(Progress::default());
    let stop_progress = Arc::new(AtomicBool::new(false));
    let printer = (!args.quiet).then(|| {
        let progress = progress.clone();
        let stop = stop_progress.clone();
        std::thread::spawn(move || progress_line(&progress, &stop))
    });
    let result = match args.mode {
        Mode::Calls => {
            let mut digits = parse_digits(&args.conference_id).unwrap_or_default();
            digits.extend(parse_digits(&args.terminator).unwrap_or_default());
            let settings = CallSettings {
                target,
                local_sip: target,
                local_rtp: target,
                dialed: args.number.clone(),
                caller: args.caller.clone(),
                expect: match args.expect {
                    ExpectArg::Answered => Expect::Answered,
                    ExpectArg::Joined => Expect::Joined,
                    ExpectArg::Refused => Expect::Refused,
                    ExpectArg::Transferred => Expect::Transferred,
                },
                dtmf: match args.dtmf {
                    DtmfArg::Rfc4733 => DtmfMode::Rfc4733,
                    DtmfArg::Inband => DtmfMode::Inband,
                    DtmfArg::Info => DtmfMode::Info,
                },
                digits,
                hold: args.hold,
                prompt_wait: args.prompt_wait,
                digit_delay: args.digit_delay,
                outcome_wait: args.outcome_wait,
                timers: TimerSettings {
                    t1: args.t1,
                    ..TimerSettings::default()
                },
                run_id,
            };
            let run = CallRun {
                settings,
                pace,
                threads: args.threads,
            };
            run::run_calls(run, progress.clone())
                .map(|(stats, timing)| report_calls(&args, target, &stats, &timing))
        }
        Mode::Options | Mode::Invite404 => {
            let mode = if args.mode == Mode::Options {
                StatelessMode::Options
            } else {
                StatelessMode::Invite404
            };
            run::run_stateless(
                mode,
                target,
                &args.unknown_number,
                args.timeout,
                pace,
                args.threads,
                args.sockets,
                run_id,
                progress.clone(),
            )
            .map(|(stats, timing)| report_stateless(&args, target, &stats, &timing))
        }
    };
    stop_progress.store(true, Ordering::Relaxed);
    if let Some(p) = printer {
        let _ = p.join();
    }
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("dialgate-load: {e}");
            ExitCode::from(3)
        }
    }
}

fn progress_line(progress: &Progress, stop: &AtomicBool) {
    let t0 = Instant::now();
    let mut last_started = 0;
    let mut next = t0 + Duration::from_secs(1);
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        let now = Instant::now();
        if now < next {
            continue;
        }
        next += Duration::from_secs(1);
        let started = progress.started.load(Ordering::Relaxed);
        eprintln!(
            "[{:>4.0}s] started {started} ({}/s)  ok {}  failed {}  active {}",
            now.duration_since(t0).as_secs_f64(),
            started.saturating_sub(last_started),
            progress.succeeded.load(Ordering::Relaxed),
            progress.failed.load(Ordering::Relaxed),
            progress.active.load(Ordering::Relaxed),
        );
        last_started = started;
    }
}

fn per_second(n: u64, d: Duration) -> f64 {
    if d.is_zero() {
        0.0
    } else {
        n as f64 / d.as_secs_f64()
    }
}

fn lat_json(h: &Histogram) -> serde_json::Value {
    let s = h.summary();
    json!({"samples": s.samples, "p50_ms": s.p50_ms, "p99_ms": s.p99_ms, "max_ms": s.max_ms})
}

fn lat_text(h: &Histogram) -> String {
    let s = h.summary();
    if s.samples == 0 {
        return "n/a".into();
    }
    format!(
        "p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({} samples)",
        s.p50_ms, s.p99_ms, s.max_ms, s.samples
    )
}

fn cpu_pct(t: &Timing) -> f64 {
    if t.total.is_zero() {
        0.0
    } else {
        100.0 * t.cpu_seconds / t.total.as_secs_f64()
    }
}

fn report_stateless(args: &Args, target: SocketAddr, s: &StatelessStats, t: &Timing) -> bool {
    let ok = s.failed_total() == 0 && s.answered == s.sent && s.sent > 0;
    let mode = match args.mode {
        Mode::Options => "options",
        Mode::Invite404 => "invite-404",
        Mode::Calls => "calls",
    };
    let failed: serde_json::Map<String, serde_json::Value> = s
        .failed
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    if args.json {
        let v = json!({
            "mode": mode,
            "target": target.to_string(),
            "target_rate": args.rate,
            "threads": args.threads,
            "sockets_per_thread": args.sockets,
            "sent": s.sent,
            "answered": s.answered,
            "failed_by_status": failed,
            "timeouts": s.timeouts,
            "stray": s.stray,
            "send_errors": s.send_errors,
            "achieved_rate": per_second(s.sent.saturating_sub(1), t.start_phase),
            "answered_rate": per_second(s.answered, t.start_phase),
            "latency": lat_json(&s.latency),
            "elapsed_s": t.total.as_secs_f64(),
            "generator_cpu_s": t.cpu_seconds,
            "generator_cpu_pct": cpu_pct(t),
            "zero_failures": ok,
        });
        println!("{v}");
    } else {
        println!("dialgate-load {mode} → {target}");
        println!(
            "  sent {}  answered {}  failed {:?}  timeouts {}  stray {}  send errors {}",
            s.sent, s.answered, s.failed, s.timeouts, s.stray, s.send_errors
        );
        println!(
            "  rate: target {:.0}/s  achieved {:.0}/s  answered {:.0}/s",
            args.rate,
            per_second(s.sent.saturating_sub(1), t.start_phase),
            per_second(s.answered, t.start_phase)
        );
        println!("  latency: {}", lat_text(&s.latency));
        println!(
            "  elapsed {:.1} s  generator CPU {:.2} s ({:.0} % of one core)",
            t.total.as_secs_f64(),
            t.cpu_seconds,
            cpu_pct(t)
        );
        println!(
            "  result: {}",
            if ok { "PASS (zero failures)" } else { "FAIL" }
        );
    }
    ok
}

fn report_calls(args: &Args, target: SocketAddr, s: &CallStats, t: &Timing) -> bool {
    let ok = s.failed_total() == 0 && s.succeeded == s.attempted && s.attempted > 0;
    let expect = format!("{:?}", args.expect).to_lowercase();
    let dtmf = format!("{:?}", args.dtmf).to_lowercase();
    if args.json {
        let v = json!({
            "mode": "calls",
            "target": target.to_string(),
            "expect": expect,
            "dtmf": dtmf,
            "target_rate": args.rate,
            "concurrency": args.concurrency,
            "threads": args.threads,
            "attempted": s.attempted,
            "answered": s.answered,
            "succeeded": s.succeeded,
            "failed": s.failed,
            "peak_concurrent": s.peak_concurrent,
            "achieved_cps": per_second(s.attempted.saturating_sub(1), t.start_phase),
            "setup_latency": lat_json(&s.setup),
            "digits_to_outcome_latency": lat_json(&s.digits_to_outcome),
            "rtp": {
                "sent": s.rtp_sent,
                "received": s.rtp_received,
                "lost": s.rtp_lost,
                "send_ticks_skipped": s.rtp_ticks_skipped,
                "calls_with_media": s.calls_with_media,
            },
            "prompt_jitter": lat_json(&s.jitter),
            "stray": s.stray,
            "elapsed_s": t.total.as_secs_f64(),
            "generator_cpu_s": t.cpu_seconds,
            "generator_cpu_pct": cpu_pct(t),
            "zero_failures": ok,
        });
        println!("{v}");
    } else {
        println!("dialgate-load calls → {target} (expect {expect}, dtmf {dtmf})");
        println!(
            "  attempted {}  answered {}  succeeded {}  failed {}  peak concurrent {}",
            s.attempted,
            s.answered,
            s.succeeded,
            s.failed_total(),
            s.peak_concurrent
        );
        for (reason, n) in &s.failed {
            println!("    failed: {reason}: {n}");
        }
        println!(
            "  calls/s: target {:.1}  achieved {:.1}",
            args.rate,
            per_second(s.attempted.saturating_sub(1), t.start_phase)
        );
        println!("  setup (INVITE→200): {}", lat_text(&s.setup));
        println!("  digits→outcome:     {}", lat_text(&s.digits_to_outcome));
        println!(
            "  RTP: sent {}  received {}  lost {}  calls with media {}  send ticks skipped (generator late) {}",
            s.rtp_sent, s.rtp_received, s.rtp_lost, s.calls_with_media, s.rtp_ticks_skipped
        );
        println!("  prompt jitter (|Δ−20 ms|): {}", lat_text(&s.jitter));
        println!(
            "  elapsed {:.1} s  generator CPU {:.2} s ({:.0} % of one core)  stray {}",
            t.total.as_secs_f64(),
            t.cpu_seconds,
            cpu_pct(t),
            s.stray
        );
        println!(
            "  result: {}",
            if ok { "PASS (zero failures)" } else { "FAIL" }
        );
    }
    ok
}
