//! Crash test of the embedded directory: a child process changes the
//! directory at random and reports every acknowledged change on stdout; it
//! is killed with SIGKILL at a random moment, the directory is reopened
//! from the same data directory and must hold every acknowledged change,
//! with no half-applied operation visible. Repeated for many rounds.
//!
//! The child is this test binary re-executed with `DIALGATE_CRASH_DIR` set,
//! running only the `crash_child` test.

use dialgate::directory::service::{DirectoryError, DirectoryService, NewOrganizer};
use dialgate::directory::{
    ConferenceId, DirectoryLookup, DirectorySettings, EmbeddedDirectory, Lookup, Refusal,
};
use rand::Rng;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const ENV_DIR: &str = "DIALGATE_CRASH_DIR";
const TASKS: usize = 4;
const ORGS_PER_TASK: usize = 12;
const ID_LEN: usize = 6;

fn settings() -> DirectorySettings {
    DirectorySettings {
        id_length: ID_LEN,
        // Small, so that kills also land during snapshots and compaction.
        compact_journal_bytes: 16 * 1024,
        ..DirectorySettings::default()
    }
}

fn org_name(task: usize, n: usize) -> String {
    format!("o{task}-{n}")
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn show(id: Option<ConferenceId>) -> String {
    id.map_or_else(|| "-".to_owned(), |id| id.to_string())
}

/// The child: random operations until killed. Each task owns its own
/// organizers, so per organizer at most one operation is in flight, while
/// the tasks together keep several changes in each group commit.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(ENV_DIR) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let d = EmbeddedDirectory::open(&dir, &settings()).unwrap();
        say("READY");
        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let d = d.clone();
            tasks.push(tokio::spawn(async move { child_task(d, t).await }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

async fn child_task(d: Arc<EmbeddedDirectory>, task: usize) {
    loop {
        let (org, roll, wanted) = {
            let mut rng = rand::rng();
            let org = org_name(task, rng.random_range(0..ORGS_PER_TASK));
            let wanted =
                ConferenceId::from_value(rng.random_range(0..10u64.pow(ID_LEN as u32)), ID_LEN)
                    .unwrap();
            (org, rng.random_range(0..10u32), wanted)
        };
        let current = match d.organizer(org.clone()).await {
            Ok(o) => Some(o.conference_id.unwrap()),
            Err(DirectoryError::NotFound { .. }) => None,
            Err(e) => panic!("{e}"),
        };
        match current {
            None => {
                say(&format!("TRY {org} create"));
                let o = d
                    .create_organizer(NewOrganizer {
                        id: org.clone(),
                        ..NewOrganizer::default()
                    })
                    .await
                    .unwrap();
                say(&format!("ACK {org} {} -", show(o.conference_id)));
            }
            Some(old) if roll < 5 => {
                say(&format!("TRY {org} reset"));
                let r = d.reset_conference_id(org.clone()).await.unwrap();
                assert_eq!(r.previous, old);
                say(&format!("ACK {org} {} {old}", r.current));
            }
            Some(old) if roll < 8 => {
                say(&format!("TRY {org} set {wanted}"));
                match d.set_conference_id(org.clone(), wanted).await {
                    Ok(_) => say(&format!("ACK {org} {wanted} {old}")),
                    Err(DirectoryError::InUse(_) | DirectoryError::Quarantined(_)) => {
                        say(&format!("ACK {org} {old} -"))
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            Some(old) => {
                say(&format!("TRY {org} delete"));
                d.delete_organizer(org.clone()).await.unwrap();
                say(&format!("ACK {org} - {old}"));
            }
        }
    }
}

/// What the parent knows from acknowledgements.
#[derive(Default)]
struct Expected {
    /// Organizer -> its static ID (absent: not existing).
    orgs: HashMap<String, ConferenceId>,
    /// IDs retired by acknowledged (or observed) changes.
    retired: HashSet<ConferenceId>,
}

fn parse_id(s: &str) -> Option<ConferenceId> {
    (s != "-").then(|| ConferenceId::parse(s, ID_LEN).unwrap())
}

/// Kills the child if the parent panics before it does.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One round: run the child, kill it, return its complete stdout lines.
fn run_child(dir: &Path, kill_after: Duration) -> Vec<String> {
    let exe = std::env::current_exe().unwrap();
    let child = Command::new(exe)
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(ENV_DIR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        let mut reader = BufReader::new(stdout);
        let mut buf = String::new();
        // A line cut by the kill has no newline: it is not counted.
        while reader.read_line(&mut buf).map(|n| n > 0).unwrap_or(false) {
            if let Some(line) = buf.strip_suffix('\n') {
                if line.ends_with("READY") {
                    let _ = ready_tx.send(());
                }
                lines.push(line.to_owned());
            }
            buf.clear();
        }
        lines
    });
    ready_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("child did not start");
    std::thread::sleep(kill_after);
    child.0.kill().unwrap(); // SIGKILL
    child.0.wait().unwrap();
    reader.join().unwrap()
}

/// Reopens the directory and checks it against what was acknowledged.
fn verify(dir: &Path, expected: &mut Expected, lines: &[String], round: usize) -> (usize, usize) {
    let mut landed = 0;
    // Fold the acknowledgements in; remember what was still in flight.
    let mut in_flight: HashMap<String, Vec<String>> = HashMap::new();
    for line in lines {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["TRY", org, op @ ..] => {
                in_flight.insert(org.to_string(), op.iter().map(|s| s.to_string()).collect());
            }
            ["ACK", org, now, retired] => {
                in_flight.remove(*org);
                match parse_id(now) {
                    Some(id) => expected.orgs.insert(org.to_string(), id),
                    None => expected.orgs.remove(*org),
                };
                if let Some(r) = parse_id(retired) {
                    expected.retired.insert(r);
                }
            }
            _ => {}
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let d = EmbeddedDirectory::open(dir, &settings()).unwrap();
    let now = SystemTime::now();
    let mut names: HashSet<String> = expected.orgs.keys().cloned().collect();
    names.extend(in_flight.keys().cloned());
    let listed = rt.block_on(d.list_organizers(None, 100_000)).unwrap().items;
    names.extend(listed.iter().map(|o| o.id.clone()));
    for name in names {
        let actual = rt
            .block_on(d.organizer(name.clone()))
            .ok()
            .map(|o| o.conference_id.unwrap());
        let acked = expected.orgs.get(&name).copied();
        if actual != acked {
            // Only the one operation in flight may have taken effect.
            let op = in_flight.get(&name).unwrap_or_else(|| {
                panic!("round {round}: {name} is {actual:?}, acknowledged {acked:?}, nothing in flight")
            });
            let ok = match (op[0].as_str(), acked, actual) {
                ("create", None, Some(_)) => true,
                ("reset", Some(a), Some(b)) => a != b,
                ("set", Some(_), Some(b)) => op.get(1).and_then(|s| parse_id(s)) == Some(b),
                ("delete", Some(_), None) => true,
                _ => false,
            };
            assert!(
                ok,
                "round {round}: {name} is {actual:?} after {op:?} from {acked:?}"
            );
            landed += 1;
            if let Some(old) = acked {
                expected.retired.insert(old);
            }
            match actual {
                Some(id) => expected.orgs.insert(name.clone(), id),
                None => expected.orgs.remove(&name),
            };
        }
    }
    assert_eq!(
        listed.len(),
        expected.orgs.len(),
        "round {round}: organizer count"
    );
    let mut seen = HashSet::new();
    for (name, &id) in &expected.orgs {
        assert!(seen.insert(id), "round {round}: {id} held twice");
        assert!(
            !expected.retired.contains(&id),
            "round {round}: retired {id} reissued"
        );
        match d.lookup(id, now) {
            Lookup::Active(route) => assert_eq!(&*route.organizer, name.as_str()),
            other => panic!("round {round}: {name}'s {id} answers {other:?}"),
        }
    }
    for &id in &expected.retired {
        assert_eq!(
            d.lookup(id, now),
            Lookup::Refused(Refusal::Reset),
            "round {round}: retired {id}"
        );
    }
    let truncated = d.recovery_report().truncated.len();
    d.close();
    (landed, truncated)
}

#[test]
fn kill_9_loses_nothing_acknowledged() {
    if std::env::var(ENV_DIR).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut expected = Expected::default();
    let mut rng = rand::rng();
    let mut acks = 0;
    let (mut landed, mut truncated) = (0, 0);
    let rounds = 24;
    for round in 0..rounds {
        let kill_after = Duration::from_millis(rng.random_range(20..400));
        let lines = run_child(dir.path(), kill_after);
        acks += lines.iter().filter(|l| l.starts_with("ACK")).count();
        let (l, t) = verify(dir.path(), &mut expected, &lines, round);
        landed += l;
        truncated += t;
    }
    assert!(acks > rounds, "the child acknowledged only {acks} changes");
    eprintln!(
        "{rounds} kills, {acks} acknowledged changes, {landed} unacknowledged changes found \
         durable, {truncated} torn tails cut, {} organizers, {} retired IDs",
        expected.orgs.len(),
        expected.retired.len()
    );
}
