//! Conference-ID directory benchmark (custom harness, prints numbers).
//!
//! 1. Loads N organizers (default 10 million, 10-digit IDs) into an
//!    `EmbeddedDirectory` on disk.
//! 2. Measures single lookups (p50/p99/p99.9) from one reader thread while
//!    callers reset IDs continuously (durable resets).
//! 3. The same lookups against `DashMap` and `RwLock<HashMap>` holding the
//!    same routes, while a writer thread applies resets at the same rate
//!    (and once more at full speed), and prints the ratios. Each structure
//!    is measured cold (random IDs among all N: cache misses dominate),
//!    hot (4096 IDs) and hot from two reader threads at once.
//! 4. Durable resets per second with 1, 8 and 64 concurrent callers
//!    (group commit: transactions per fsync).
//! 5. Start-up time of the directory with N IDs.
//!
//! `DIALGATE_BENCH_IDS` and `DIALGATE_BENCH_SECS` (per phase) shrink the run.
//! Each lookup is timed on its own with `Instant` (TSC via vDSO); the
//! measured cost of an empty timing pair is printed and subtracted in the
//! "net" columns.

use dashmap::DashMap;
use dialgate::directory::service::{DirectoryService, NewOrganizer};
use dialgate::directory::{
    ConferenceId, DirectoryLookup, DirectorySettings, EmbeddedDirectory, Lookup, Refusal, Route,
};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

const ID_LEN: usize = 10;
const SPACE: u64 = 10_000_000_000;
/// Odd and not a multiple of 5: coprime to 10^10, so i -> i*K mod 10^10 is
/// a bijection and yields N distinct, scattered IDs.
const SCATTER: u64 = 7_919_477;

fn id_of(i: u64) -> ConferenceId {
    ConferenceId::from_value((i.wrapping_mul(SCATTER)) % SPACE, ID_LEN).unwrap()
}

fn env_u64(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Latency histogram with 1 ns buckets up to 100 µs.
struct Histogram {
    buckets: Vec<u64>,
    count: u64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            buckets: vec![0; 100_001],
            count: 0,
        }
    }
    fn add(&mut self, ns: u64) {
        let i = ns.min(100_000) as usize;
        self.buckets[i] += 1;
        self.count += 1;
    }
    fn percentile(&self, p: f64) -> u64 {
        let target = ((self.count as f64) * p).ceil() as u64;
        let mut seen = 0;
        for (ns, &c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= target.max(1) {
                return ns as u64;
            }
        }
        100_000
    }
}

/// Cost of an empty `Instant` pair (median), subtracted in the net columns.
fn timer_overhead() -> u64 {
    let mut h = Histogram::new();
    for _ in 0..1_000_000 {
        let t0 = Instant::now();
        let t1 = Instant::now();
        h.add((t1 - t0).as_nanos() as u64);
    }
    h.percentile(0.5)
}

/// IDs looked up in the "hot" runs: a working set that stays in cache.
const HOT: u64 = 4096;

/// Times single lookups of random known IDs for `dur`: drawn from all `n`
/// (cold: mostly cache and TLB misses) or from the first [`HOT`] (hot).
fn measure(
    n: u64,
    hot: bool,
    dur: Duration,
    mut lookup: impl FnMut(ConferenceId) -> Lookup,
) -> Histogram {
    let mut h = Histogram::new();
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let range = if hot { HOT.min(n) } else { n };
    let end = Instant::now() + dur;
    while Instant::now() < end {
        for _ in 0..1024 {
            let id = id_of(rng.next() % range);
            let t0 = Instant::now();
            let r = lookup(id);
            let t1 = Instant::now();
            black_box(r);
            h.add((t1 - t0).as_nanos() as u64);
        }
    }
    h
}

/// Hot lookups from two reader threads at once (the call path has many):
/// shows what readers that write shared memory (lock words) cost each other.
fn measure_two(
    n: u64,
    dur: Duration,
    lookup: &(impl Fn(ConferenceId) -> Lookup + Sync),
) -> Histogram {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| measure(n, true, dur, lookup));
        let b = s.spawn(|| measure(n, true, dur, lookup));
        (a.join().unwrap(), b.join().unwrap())
    });
    let mut h = a;
    for (x, y) in h.buckets.iter_mut().zip(&b.buckets) {
        *x += y;
    }
    h.count += b.count;
    h
}

/// The floor set by memory: one random read from an array as large as
/// the index's entries, timed the same way.
fn memory_floor(n: u64, dur: Duration) -> Histogram {
    let words = (n as usize) * 8;
    let v: Vec<u64> = (0..words as u64).collect();
    let mut h = Histogram::new();
    let mut rng = XorShift(0x5555_1234);
    let end = Instant::now() + dur;
    while Instant::now() < end {
        for _ in 0..1024 {
            let i = (rng.next() % words as u64) as usize;
            let t0 = Instant::now();
            let x = black_box(&v)[i];
            let t1 = Instant::now();
            black_box(x);
            h.add((t1 - t0).as_nanos() as u64);
        }
    }
    h
}

struct Row {
    name: String,
    /// p50, p99, p99.9 of cold and hot lookups.
    cold: [u64; 3],
    hot: [u64; 3],
    two: [u64; 3],
}

fn pct(h: &Histogram) -> [u64; 3] {
    if h.count == 0 {
        return [0; 3];
    }
    [h.percentile(0.5), h.percentile(0.99), h.percentile(0.999)]
}

fn row(name: impl Into<String>, cold: &Histogram, hot: &Histogram, two: &Histogram) -> Row {
    Row {
        name: name.into(),
        cold: pct(cold),
        hot: pct(hot),
        two: pct(two),
    }
}

/// The same cheap hash as the directory index, so the maps differ only in
/// their concurrency scheme.
#[derive(Clone, Copy, Default)]
struct IdHash;
struct IdHasher(u64);
impl BuildHasher for IdHash {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}
impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[derive(Clone)]
enum Value {
    Active(Route),
    Tombstone,
}

fn answer(v: Option<&Value>) -> Lookup {
    match v {
        Some(Value::Active(r)) => Lookup::Active(r.clone()),
        Some(Value::Tombstone) => Lookup::Refused(Refusal::Reset),
        None => Lookup::Refused(Refusal::Unknown),
    }
}

/// A reset in a plain map: the old ID becomes a tombstone, a fresh one routes.
fn reset_in(
    rng: &mut XorShift,
    n: u64,
    current: &mut HashMap<u64, ConferenceId>,
    mut put: impl FnMut(ConferenceId, Value),
) {
    let i = rng.next() % n;
    let old = current.get(&i).copied().unwrap_or_else(|| id_of(i));
    let new = ConferenceId::from_value(rng.next() % SPACE, ID_LEN).unwrap();
    let org: Arc<str> = Arc::from(format!("o{i:08}"));
    put(old, Value::Tombstone);
    put(
        new,
        Value::Active(Route {
            organizer: org.clone(),
            meeting: org,
        }),
    );
    current.insert(i, new);
}

/// Runs a writer (paced to `rate` resets/s, or flat out when `None`) next
/// to a measured reader: cold lookups for `dur`, then hot ones for `dur`.
fn contend(
    n: u64,
    dur: Duration,
    rate: Option<f64>,
    reset: impl FnMut(&mut XorShift, &mut HashMap<u64, ConferenceId>) + Send,
    lookup: impl Fn(ConferenceId) -> Lookup + Sync,
) -> (Histogram, Histogram, Histogram, u64) {
    let stop = AtomicBool::new(false);
    let mut reset = reset;
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut rng = XorShift(0xDEAD_BEEF);
            let mut current = HashMap::new();
            let start = Instant::now();
            let mut done = 0u64;
            while !stop.load(Ordering::Relaxed) {
                reset(&mut rng, &mut current);
                done += 1;
                if let Some(rate) = rate {
                    let due = start + Duration::from_secs_f64(done as f64 / rate);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
            }
            done
        });
        let cold = measure(n, false, dur, &lookup);
        let hot = measure(n, true, dur, &lookup);
        let two = measure_two(n, dur, &lookup);
        stop.store(true, Ordering::Relaxed);
        (cold, hot, two, writer.join().unwrap())
    })
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is understood.
    let n = env_u64("DIALGATE_BENCH_IDS", 10_000_000);
    let secs = env_u64("DIALGATE_BENCH_SECS", 3);
    // Each measured phase: cold lookups for half of it, hot for the other half.
    let phase = Duration::from_millis(secs * 500);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let base = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&base).unwrap();
    let tmp = tempfile::tempdir_in(&base).unwrap();
    let settings = DirectorySettings {
        id_length: ID_LEN,
        ..DirectorySettings::default()
    };
    println!(
        "directory bench: {n} IDs of {ID_LEN} digits, {secs} s per phase, data in {}",
        tmp.path().display()
    );
    let overhead = timer_overhead();
    println!("timer: an empty Instant pair costs {overhead} ns (median)");

    // 1. Load.
    let d = EmbeddedDirectory::open(tmp.path(), &settings).unwrap();
    let t = Instant::now();
    let orgs: Vec<NewOrganizer> = (0..n)
        .map(|i| NewOrganizer {
            id: format!("o{i:08}"),
            conference_id: Some(id_of(i)),
            ..NewOrganizer::default()
        })
        .collect();
    rt.block_on(d.import_organizers(orgs)).unwrap();
    println!(
        "load: {n} organizers imported durably in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // The import fills the journal past the compaction threshold: let that
    // snapshot finish so the next phases measure a steady state.
    let t = Instant::now();
    rt.block_on(d.reset_conference_id("o00000000".into()))
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    while std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        && t.elapsed() < Duration::from_secs(300)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "load: snapshot after the import written {:.1} s later",
        t.elapsed().as_secs_f64()
    );

    if std::env::var_os("DIALGATE_BENCH_LOAD_ONLY").is_some() {
        d.close();
        drop(d);
        let t = Instant::now();
        let d = EmbeddedDirectory::open(tmp.path(), &settings).unwrap();
        println!(
            "start-up: {:.2} s, {:?}",
            t.elapsed().as_secs_f64(),
            d.recovery_report()
        );
        return;
    }

    // 2. Lookups while durable resets run (one caller, back to back: the
    //    reader must share the 2 cores with it and the commit thread).
    let stop = Arc::new(AtomicBool::new(false));
    let before = d.commit_stats();
    let resetters: Vec<_> = (0..1u64)
        .map(|k| {
            let (d, stop) = (d.clone(), stop.clone());
            rt.spawn(async move {
                let mut rng = XorShift(0x1234_5678 + k);
                let mut done = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let org = format!("o{:08}", rng.next() % n);
                    d.reset_conference_id(org).await.unwrap();
                    done += 1;
                }
                done
            })
        })
        .collect();
    let now = SystemTime::now();
    let t = Instant::now();
    let lookup = |id| d.lookup(id, now);
    let (h_dir, h_dir_hot, h_dir_two) = std::thread::scope(|s| {
        let h = s.spawn(|| {
            let cold = measure(n, false, phase, lookup);
            let hot = measure(n, true, phase, lookup);
            (cold, hot, measure_two(n, phase, &lookup))
        });
        h.join().unwrap()
    });
    stop.store(true, Ordering::Relaxed);
    let resets: u64 = resetters.into_iter().map(|h| rt.block_on(h).unwrap()).sum();
    let reset_rate = (resets as f64 / t.elapsed().as_secs_f64()).max(100.0);
    let after = d.commit_stats();
    println!(
        "durable resets during the lookup phase: {resets} ({reset_rate:.0}/s, {:.1} per fsync)",
        (after.transactions - before.transactions) as f64
            / (after.fsyncs - before.fsyncs).max(1) as f64
    );
    let mut rows = vec![
        row(
            "directory (scc::HashIndex), durable resets",
            &h_dir,
            &h_dir_hot,
            &h_dir_two,
        ),
        row(
            "memory floor: one random read (no map)",
            &memory_floor(n, phase),
            &Histogram::new(),
            &Histogram::new(),
        ),
    ];

    // 4. Durable resets per second with concurrent callers.
    for callers in [1u64, 8, 64] {
        let before = d.commit_stats();
        let stop = Arc::new(AtomicBool::new(false));
        let t = Instant::now();
        let tasks: Vec<_> = (0..callers)
            .map(|k| {
                let (d, stop) = (d.clone(), stop.clone());
                rt.spawn(async move {
                    let mut rng = XorShift(0xABCD_0000 + k);
                    let mut done = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        d.reset_conference_id(format!("o{:08}", rng.next() % n))
                            .await
                            .unwrap();
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs(secs.min(2)));
        stop.store(true, Ordering::Relaxed);
        let done: u64 = tasks.into_iter().map(|h| rt.block_on(h).unwrap()).sum();
        let after = d.commit_stats();
        println!(
            "durable resets, {callers:>2} concurrent callers: {:>7.0}/s, {:.1} transactions per fsync",
            done as f64 / t.elapsed().as_secs_f64(),
            (after.transactions - before.transactions) as f64 / (after.fsyncs - before.fsyncs).max(1) as f64
        );
    }

    // 5. Start-up.
    d.close();
    drop(d);
    let t = Instant::now();
    let d = EmbeddedDirectory::open(tmp.path(), &settings).unwrap();
    let open_time = t.elapsed();
    let r = d.recovery_report();
    println!(
        "start-up: {:.2} s for {} index entries ({} organizers; snapshot records {}, journal transactions {})",
        open_time.as_secs_f64(),
        r.ids,
        r.organizers,
        r.snapshot_records,
        r.journal_records
    );
    drop(d);

    // 3. The same lookups against DashMap and RwLock<HashMap>.
    let route_of = |i: u64| {
        let org: Arc<str> = Arc::from(format!("o{i:08}"));
        Value::Active(Route {
            organizer: org.clone(),
            meeting: org,
        })
    };
    {
        let map: DashMap<ConferenceId, Value, IdHash> =
            DashMap::with_capacity_and_hasher(n as usize, IdHash);
        for i in 0..n {
            map.insert(id_of(i), route_of(i));
        }
        for (label, rate) in [("same rate", Some(reset_rate)), ("flat out", None)] {
            let (cold, hot, two, done) = contend(
                n,
                phase,
                rate,
                |rng, cur| {
                    reset_in(rng, n, cur, |k, v| {
                        map.insert(k, v);
                    })
                },
                |id| answer(map.get(&id).as_deref()),
            );
            rows.push(row(
                format!("DashMap, writer {label} ({done} resets)"),
                &cold,
                &hot,
                &two,
            ));
        }
    }
    {
        let mut inner = HashMap::with_capacity_and_hasher(n as usize, IdHash);
        for i in 0..n {
            inner.insert(id_of(i), route_of(i));
        }
        let map = RwLock::new(inner);
        for (label, rate) in [("same rate", Some(reset_rate)), ("flat out", None)] {
            let (cold, hot, two, done) = contend(
                n,
                phase,
                rate,
                |rng, cur| {
                    reset_in(rng, n, cur, |k, v| {
                        map.write().unwrap().insert(k, v);
                    })
                },
                |id| answer(map.read().unwrap().get(&id)),
            );
            rows.push(row(
                format!("RwLock<HashMap>, writer {label} ({done} resets)"),
                &cold,
                &hot,
                &two,
            ));
        }
    }

    println!();
    println!(
        "lookup latency in ns, each lookup timed alone (includes the ~{overhead} ns timer pair)"
    );
    println!(
        "{:<52} {:>7} {:>7} {:>7} | {:>7} {:>7} {:>7} | {:>7} {:>7} {:>7}",
        "", "cold50", "cold99", "cold999", "hot50", "hot99", "hot999", "2rd50", "2rd99", "2rd999"
    );
    for r in &rows {
        println!(
            "{:<52} {:>7} {:>7} {:>7} | {:>7} {:>7} {:>7} | {:>7} {:>7} {:>7}",
            r.name,
            r.cold[0],
            r.cold[1],
            r.cold[2],
            r.hot[0],
            r.hot[1],
            r.hot[2],
            r.two[0],
            r.two[1],
            r.two[2]
        );
    }
    println!("(2rd: hot lookups from two reader threads at once)");
    let base = &rows[0];
    println!();
    println!("p99 ratios against the directory (higher: the directory is faster)");
    for r in &rows[2..] {
        println!(
            "{:<52} cold {:>5.2}x  hot {:>5.2}x  two readers {:>5.2}x",
            r.name,
            r.cold[1] as f64 / base.cold[1].max(1) as f64,
            r.hot[1] as f64 / base.hot[1].max(1) as f64,
            r.two[1] as f64 / base.two[1].max(1) as f64
        );
    }
}
