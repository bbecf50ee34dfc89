//! The operator CLI against the running daemon: in-process (`run_with`)
//! against `Daemon::start`, and end to end with the built binary, both as
//! `dialgate serve` and as the CLI.

mod admin_support;

use admin_support::{Env, TOKEN};
use dialgate::admin::cli::{
    run_with, AdminCommand, ClientOptions, ConferenceIdCommand, MeetingCommand, ModeArg,
    OrganizerCommand,
};
use std::io::Write;
use std::process::{Command, ExitCode, Stdio};

type Setup = Env;

fn setup() -> Setup {
    Env::start()
}

struct Run {
    code: ExitCode,
    out: String,
    err: String,
}

impl Run {
    fn ok(&self) -> bool {
        format!("{:?}", self.code) == format!("{:?}", ExitCode::SUCCESS)
    }
    fn failed(&self) -> bool {
        format!("{:?}", self.code) == format!("{:?}", ExitCode::from(1))
    }
}

fn opts(s: &Setup, json: bool) -> ClientOptions {
    ClientOptions {
        admin_url: s.url().to_owned(),
        token: Some(TOKEN.into()),
        json,
    }
}

fn run_opts(cmd: AdminCommand, o: &ClientOptions) -> Run {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_with(cmd, o, &mut out, &mut err).unwrap();
    Run {
        code,
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
    }
}

fn run(s: &Setup, cmd: AdminCommand) -> Run {
    run_opts(cmd, &opts(s, false))
}

fn org(c: OrganizerCommand) -> AdminCommand {
    AdminCommand::Organizer(c)
}

fn add(id: &str, pin: Option<&str>, cid: Option<&str>) -> AdminCommand {
    org(OrganizerCommand::Add {
        id: id.into(),
        name: "Amos Marble".into(),
        email: id.into(),
        pin: pin.map(Into::into),
        mode: None,
        conference_id: cid.map(Into::into),
    })
}

#[test]
fn add_show_reset_remove() {
    let s = setup();
    let r = run(
        &s,
        add("amos.marble@contoso.com", Some("908172"), Some("8271964")),
    );
    assert!(r.ok(), "{}", r.err);
    assert!(r.out.contains("conference ID:   8271964\n"), "{}", r.out);
    assert!(r.out.contains("leader PIN:      set\n"), "{}", r.out);
    assert!(
        r.out
            .contains("dial-in numbers: +44 20 7946 0000  London (en-GB)\n"),
        "{}",
        r.out
    );
    assert!(
        r.out
            .contains("                 +1 425 555 0100   Redmond (en-US)\n"),
        "{}",
        r.out
    );
    assert!(!r.out.contains("908172"));

    let r = run(
        &s,
        org(OrganizerCommand::Show {
            id: "amos.marble@contoso.com".into(),
        }),
    );
    assert!(r.ok());
    assert!(
        r.out
            .starts_with("id:              amos.marble@contoso.com\n"),
        "{}",
        r.out
    );

    let r = run(
        &s,
        org(OrganizerCommand::ResetConferenceId {
            id: "amos.marble@contoso.com".into(),
        }),
    );
    assert!(r.ok(), "{}", r.err);
    assert!(
        r.out.contains("previous conference ID: 8271964\n"),
        "{}",
        r.out
    );
    assert!(r.out.contains("new conference ID:"));

    let r = run(
        &s,
        AdminCommand::ConferenceId(ConferenceIdCommand::Show {
            conference_id: "8271964".into(),
        }),
    );
    assert!(r.ok());
    assert!(
        r.out.contains("state:") && r.out.contains("reset"),
        "{}",
        r.out
    );

    let r = run(
        &s,
        org(OrganizerCommand::SetConferenceId {
            id: "amos.marble@contoso.com".into(),
            conference_id: "8271964".into(),
        }),
    );
    assert!(r.failed());
    assert!(
        r.err
            .starts_with("error: conference ID 8271964 is quarantined"),
        "{}",
        r.err
    );
    assert!(r.err.trim_end().ends_with("(quarantined)"), "{}", r.err);

    let r = run(
        &s,
        org(OrganizerCommand::Remove {
            id: "amos.marble@contoso.com".into(),
        }),
    );
    assert!(r.ok());
    assert_eq!(r.out, "removed organizer amos.marble@contoso.com\n");

    let r = run(
        &s,
        org(OrganizerCommand::Show {
            id: "amos.marble@contoso.com".into(),
        }),
    );
    assert!(r.failed());
    assert_eq!(
        r.err,
        "error: organizer \"amos.marble@contoso.com\" not found (not_found)\n"
    );
}

#[test]
fn json_output_is_the_api_json() {
    let s = setup();
    let r = run_opts(add("a@contoso.com", None, Some("1234567")), &opts(&s, true));
    assert!(r.ok());
    let v: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(v["conference_id"], "1234567");
    let r = run_opts(
        AdminCommand::ConferenceId(ConferenceIdCommand::Show {
            conference_id: "1234567".into(),
        }),
        &opts(&s, true),
    );
    let v: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(v["state"], "active");
}

#[test]
fn meetings() {
    let s = setup();
    let r = run(
        &s,
        org(OrganizerCommand::Add {
            id: "dyn@contoso.com".into(),
            name: "Dyn".into(),
            email: "dyn@contoso.com".into(),
            pin: None,
            mode: Some(ModeArg::Dynamic),
            conference_id: None,
        }),
    );
    assert!(r.ok(), "{}", r.err);
    assert!(r.out.contains("mode:            dynamic"));
    let r = run(
        &s,
        AdminCommand::Meeting(MeetingCommand::Create {
            organizer: "dyn@contoso.com".into(),
            expires_at: Some("2099-01-01T10:00:00Z".into()),
        }),
    );
    assert!(r.ok(), "{}", r.err);
    assert!(
        r.out.contains("expires:         2099-01-01T10:00:00Z"),
        "{}",
        r.out
    );
    let id = r
        .out
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    let r = run(
        &s,
        AdminCommand::Meeting(MeetingCommand::Show { id: id.clone() }),
    );
    assert!(r.ok());
    assert!(r.out.contains("organizer:       dyn@contoso.com"));
    let r = run(
        &s,
        AdminCommand::Meeting(MeetingCommand::Remove { id: id.clone() }),
    );
    assert!(r.ok());
    let r = run(&s, AdminCommand::Meeting(MeetingCommand::Show { id }));
    assert!(r.failed());
    let r = run(
        &s,
        AdminCommand::Meeting(MeetingCommand::Create {
            organizer: "dyn@contoso.com".into(),
            expires_at: Some("next week".into()),
        }),
    );
    assert!(r.failed());
    assert!(r.err.contains("(invalid_timestamp)"), "{}", r.err);
}

#[test]
fn auth_and_connection_failures_exit_1() {
    let s = setup();
    let mut bad = opts(&s, false);
    bad.token = Some("wrong".into());
    let r = run_opts(org(OrganizerCommand::Show { id: "x".into() }), &bad);
    assert!(r.failed());
    assert_eq!(r.err, "error: invalid bearer token (unauthorized)\n");

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let gone = ClientOptions {
        admin_url: format!("http://127.0.0.1:{port}"),
        token: None,
        json: false,
    };
    let r = run_opts(org(OrganizerCommand::Show { id: "x".into() }), &gone);
    assert!(r.failed());
    assert!(
        r.err.contains("cannot connect to the admin API"),
        "{}",
        r.err
    );
    assert!(r.err.contains("connection refused"), "{}", r.err);
}

#[test]
fn import_reports_bad_rows_and_lists_everything() {
    let s = setup();
    // One organizer exists already, so its row conflicts.
    assert!(run(&s, add("taken@contoso.com", None, Some("5555555"))).ok());

    let mut csv = String::from("id,display_name,email,leader_pin,mode,conference_id\n");
    for i in 0..1200 {
        csv.push_str(&format!(
            "user{i:04}@contoso.com,\"User {i}, Jr.\",user{i:04}@contoso.com,,,\n"
        ));
    }
    let good = 1200;
    // Line numbers: header is 1, generated rows 2..=1201.
    csv.push_str("taken@contoso.com,Dup,taken@contoso.com,,,\n"); // 1202: exists
    csv.push_str("bad-email@contoso.com,Bad,not-an-address,,,\n"); // 1203: 422
    csv.push_str("clash@contoso.com,Clash,clash@contoso.com,,,5555555\n"); // 1204: in use
    csv.push_str("short@contoso.com,Short\n"); // 1205: too few fields
    csv.push_str("badcid@contoso.com,B,badcid@contoso.com,,,12x\n"); // 1206: 422
    csv.push_str(
        "\"quoted@contoso.com\",\"Q \"\"the\"\" Name\",quoted@contoso.com,1234,static,7777777\n",
    ); // 1207 ok
    let file = tempfile::NamedTempFile::new().unwrap();
    file.as_file().write_all(csv.as_bytes()).unwrap();

    let r = run(
        &s,
        org(OrganizerCommand::Import {
            file: file.path().to_owned(),
        }),
    );
    assert!(r.failed(), "{}", r.err);
    let errs: Vec<&str> = r.err.lines().collect();
    assert_eq!(errs.len(), 5, "{}", r.err);
    assert!(errs[0].starts_with("line 1202: taken@contoso.com: error: organizer \"taken@contoso.com\" already exists (already_exists)"), "{}", errs[0]);
    assert!(
        errs[1].starts_with("line 1203: bad-email@contoso.com: error:")
            && errs[1].ends_with("(invalid_field)"),
        "{}",
        errs[1]
    );
    assert!(
        errs[2].starts_with(
            "line 1204: clash@contoso.com: error: conference ID 5555555 is in use (in_use)"
        ),
        "{}",
        errs[2]
    );
    assert!(
        errs[3].starts_with("line 1205: error: expected at least 3 fields"),
        "{}",
        errs[3]
    );
    assert!(
        errs[4].starts_with("line 1206: badcid@contoso.com:")
            && errs[4].ends_with("(invalid_conference_id)"),
        "{}",
        errs[4]
    );
    assert_eq!(
        r.out,
        format!(
            "imported {} of {} organizers, 5 failed\n",
            good + 1,
            good + 6
        )
    );
    let r = run_opts(
        org(OrganizerCommand::List {
            after: None,
            limit: None,
            all: true,
        }),
        &opts(&s, true),
    );
    let v: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), good + 2);

    let r = run(
        &s,
        org(OrganizerCommand::Show {
            id: "quoted@contoso.com".into(),
        }),
    );
    assert!(
        r.out.contains("display name:    Q \"the\" Name\n"),
        "{}",
        r.out
    );
    assert!(r.out.contains("leader PIN:      set\n"), "{}", r.out);
    assert!(r.out.contains("conference ID:   7777777\n"), "{}", r.out);
    let r = run(
        &s,
        org(OrganizerCommand::Show {
            id: "user0007@contoso.com".into(),
        }),
    );
    assert!(
        r.out.contains("display name:    User 7, Jr.\n"),
        "{}",
        r.out
    );

    // A clean file exits 0.
    let clean = tempfile::NamedTempFile::new().unwrap();
    clean
        .as_file()
        .write_all(b"id,display_name,email\r\nz@contoso.com,Z,z@contoso.com\r\n")
        .unwrap();
    let r = run(
        &s,
        org(OrganizerCommand::Import {
            file: clean.path().to_owned(),
        }),
    );
    assert!(r.ok(), "{}", r.err);
    assert_eq!(r.out, "imported 1 of 1 organizers, 0 failed\n");

    // Listing: one page by default with a hint, everything with --all.
    let r = run(
        &s,
        org(OrganizerCommand::List {
            after: None,
            limit: Some(5),
            all: false,
        }),
    );
    assert!(r.ok());
    let lines: Vec<&str> = r.out.lines().collect();
    assert_eq!(lines.len(), 7, "{}", r.out);
    assert!(lines[0].starts_with("ID ") && lines[0].contains("CONFERENCE ID"));
    assert!(lines[6].starts_with("(more: organizer list --after "));
    let r = run_opts(
        org(OrganizerCommand::List {
            after: None,
            limit: None,
            all: true,
        }),
        &opts(&s, true),
    );
    let v: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), good + 3);
    assert!(v["next"].is_null());

    // A file that is not CSV at all is a local error.
    let broken = tempfile::NamedTempFile::new().unwrap();
    broken
        .as_file()
        .write_all(b"id,display_name,email\na,\"unterminated\n")
        .unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let e = run_with(
        org(OrganizerCommand::Import {
            file: broken.path().to_owned(),
        }),
        &opts(&s, false),
        &mut out,
        &mut err,
    )
    .unwrap_err();
    assert!(
        format!("{e:#}").contains("line 2: unterminated quoted field"),
        "{e:#}"
    );
    let missing = org(OrganizerCommand::Import {
        file: "/nonexistent/x.csv".into(),
    });
    assert!(run_with(missing, &opts(&s, false), &mut out, &mut err).is_err());
}

#[test]
fn odd_organizer_ids_work_through_the_cli() {
    let s = setup();
    let odd = "o'brien/a+b%c?d#e&f=g@contoso.com";
    let r = run(&s, add(odd, None, Some("2468024")));
    assert!(r.ok(), "{}", r.err);
    assert!(run(&s, add("a@contoso.com", None, None)).ok());
    assert!(run(&s, add("z@contoso.com", None, None)).ok());
    let r = run(&s, org(OrganizerCommand::Show { id: odd.into() }));
    assert!(r.ok(), "{}", r.err);
    assert!(
        r.out.starts_with(&format!("id:              {odd}\n")),
        "{}",
        r.out
    );
    let r = run_opts(
        org(OrganizerCommand::List {
            after: Some(odd.into()),
            limit: Some(10),
            all: false,
        }),
        &opts(&s, true),
    );
    assert!(r.ok(), "{}", r.err);
    let v: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(v["items"][0]["id"], "z@contoso.com");
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    let r = run(
        &s,
        org(OrganizerCommand::ResetConferenceId { id: odd.into() }),
    );
    assert!(r.ok(), "{}", r.err);
    assert!(
        r.out.contains("previous conference ID: 2468024\n"),
        "{}",
        r.out
    );
    let r = run(&s, org(OrganizerCommand::Remove { id: odd.into() }));
    assert!(r.ok(), "{}", r.err);
    let r = run(&s, org(OrganizerCommand::Show { id: odd.into() }));
    assert!(r.failed());
    assert!(r.err.ends_with("(not_found)\n"), "{}", r.err);
}

// ------------------------------------------------ the built binary, end to end

/// A loopback TCP port free right now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `dialgate` without any `DIALGATE*` variables from the test's environment.
fn dialgate() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dialgate"));
    for (k, _) in std::env::vars() {
        if k.starts_with("DIALGATE") {
            cmd.env_remove(k);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

fn write_config(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

/// `dialgate serve` as a child process; killed on drop if still running.
struct Served {
    child: std::process::Child,
    url: String,
    _config: tempfile::NamedTempFile,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `dialgate serve` with its directory in `data_dir` and waits
/// until the admin API answers.
fn serve_binary(data_dir: &std::path::Path) -> Served {
    let port = free_port();
    let config = write_config(&format!(
        r#"
[sip]
listen = ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]
shutdown_grace = "1s"

[rtp]
bind_address = "127.0.0.1"
port_min = 48200
port_max = 48399

[directory]
data_dir = "{}"

[admin]
listen = "127.0.0.1:{port}"
token = "{TOKEN}"

[log]
level = "warn"

[[dial_in_numbers]]
number = "+44 20 7946 0000"
language = "en-GB"
label = "London"

[[trunks]]
name = "loopback"
sources = ["127.0.0.0/8"]
"#,
        data_dir.display()
    ));
    let child = dialgate()
        .arg("serve")
        .arg("--config")
        .arg(config.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut served = Served {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _config: config,
    };
    let agent = admin_support::agent();
    for _ in 0..200 {
        if let Some(status) = served.child.try_wait().unwrap() {
            panic!("dialgate serve exited early: {status:?}");
        }
        if let Ok(r) = agent.get(format!("{}/healthz", served.url)).call() {
            if r.status().as_u16() == 200 {
                return served;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = served.child.kill();
    panic!("dialgate serve did not answer /healthz");
}

struct Out {
    code: Option<i32>,
    out: String,
    err: String,
}

/// Runs the CLI binary against `url` with the token in the environment.
fn cli(url: &str, args: &[&str]) -> Out {
    cli_with(url, Some(TOKEN), args)
}

fn cli_with(url: &str, token: Option<&str>, args: &[&str]) -> Out {
    let mut cmd = dialgate();
    cmd.arg("--admin-url").arg(url).args(args);
    if let Some(t) = token {
        cmd.env("DIALGATE_ADMIN_TOKEN", t);
    }
    let o = cmd.output().unwrap();
    Out {
        code: o.status.code(),
        out: String::from_utf8(o.stdout).unwrap(),
        err: String::from_utf8(o.stderr).unwrap(),
    }
}

fn json(o: &Out) -> serde_json::Value {
    serde_json::from_str(&o.out).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", o.out))
}

#[test]
fn binary_serve_and_cli_end_to_end() {
    let data = tempfile::tempdir().unwrap();
    let served = serve_binary(data.path());
    let url = served.url.as_str();

    // add: human, then --json.
    let r = cli(
        url,
        &[
            "organizer",
            "add",
            "amos.marble@contoso.com",
            "--name",
            "Amos Marble",
            "--email",
            "amos.marble@contoso.com",
            "--pin",
            "908172",
            "--conference-id",
            "8271964",
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert!(r.out.contains("conference ID:   8271964\n"), "{}", r.out);
    assert!(
        r.out
            .contains("dial-in numbers: +44 20 7946 0000  London (en-GB)\n"),
        "{}",
        r.out
    );
    assert!(!r.out.contains("908172"));
    let r = cli(
        url,
        &[
            "--json",
            "organizer",
            "add",
            "b@contoso.com",
            "--name",
            "B",
            "--email",
            "b@contoso.com",
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.err);
    let b = json(&r);
    assert_eq!(b["id"], "b@contoso.com");
    assert_eq!(b["mode"], "static");
    assert_eq!(b["conference_id"].as_str().unwrap().len(), 7);
    // A conflict: exit 1, the API's message and code on stderr.
    let r = cli(
        url,
        &[
            "organizer",
            "add",
            "c@contoso.com",
            "--name",
            "C",
            "--email",
            "c@contoso.com",
            "--conference-id",
            "8271964",
        ],
    );
    assert_eq!(r.code, Some(1));
    assert_eq!(r.out, "");
    assert_eq!(r.err, "error: conference ID 8271964 is in use (in_use)\n");

    // show.
    let r = cli(url, &["organizer", "show", "amos.marble@contoso.com"]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert!(
        r.out
            .starts_with("id:              amos.marble@contoso.com\n"),
        "{}",
        r.out
    );
    assert!(r.out.contains("leader PIN:      set\n"), "{}", r.out);
    let r = cli(
        url,
        &["organizer", "show", "amos.marble@contoso.com", "--json"],
    );
    assert_eq!(json(&r)["has_leader_pin"], true);

    // reset: human, then --json.
    let r = cli(
        url,
        &[
            "organizer",
            "reset-conference-id",
            "amos.marble@contoso.com",
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert!(
        r.out.contains("previous conference ID: 8271964\n"),
        "{}",
        r.out
    );
    let r = cli(
        url,
        &[
            "organizer",
            "reset-conference-id",
            "amos.marble@contoso.com",
            "--json",
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.err);
    let reset = json(&r);
    let second = reset["previous"].as_str().unwrap().to_owned();
    let current = reset["conference_id"].as_str().unwrap().to_owned();
    assert_ne!(second, "8271964");
    assert_eq!(reset["organizer"]["conference_id"], current.as_str());

    // set: a quarantined ID is refused, a free one taken.
    let r = cli(
        url,
        &[
            "organizer",
            "set-conference-id",
            "amos.marble@contoso.com",
            "8271964",
        ],
    );
    assert_eq!(r.code, Some(1));
    assert!(
        r.err
            .starts_with("error: conference ID 8271964 is quarantined")
            && r.err.trim_end().ends_with("(quarantined)"),
        "{}",
        r.err
    );
    let r = cli(
        url,
        &[
            "organizer",
            "set-conference-id",
            "amos.marble@contoso.com",
            "1234567",
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert!(r.out.contains("conference ID:   1234567\n"), "{}", r.out);
    let r = cli(
        url,
        &[
            "organizer",
            "set-conference-id",
            "amos.marble@contoso.com",
            "12x",
        ],
    );
    assert_eq!(r.code, Some(1));
    assert!(r.err.ends_with("(invalid_conference_id)\n"), "{}", r.err);

    // import with bad rows: the good ones go in, exit 1, one line per bad row.
    let csv = write_config(
        "id,display_name,email,leader_pin,mode,conference_id\n\
         d@contoso.com,D,d@contoso.com,1234,static,7777777\n\
         b@contoso.com,Dup,b@contoso.com,,,\n\
         e@contoso.com,E,not-an-address,,,\n\
         f@contoso.com,F,f@contoso.com,12,,\n\
         g@contoso.com,G,g@contoso.com,,,1234567\n\
         h@contoso.com,H,h@contoso.com,,dynamic,\n",
    );
    let path = csv.path().to_str().unwrap();
    let r = cli(url, &["organizer", "import", path]);
    assert_eq!(r.code, Some(1), "{}", r.err);
    assert_eq!(r.out, "imported 2 of 6 organizers, 4 failed\n");
    let errs: Vec<&str> = r.err.lines().collect();
    assert_eq!(errs.len(), 4, "{}", r.err);
    assert!(
        errs[0].starts_with("line 3: b@contoso.com: error:")
            && errs[0].ends_with("(already_exists)"),
        "{}",
        errs[0]
    );
    assert!(errs[1].starts_with("line 4: e@contoso.com:") && errs[1].ends_with("(invalid_field)"));
    assert!(
        errs[2].starts_with("line 5: f@contoso.com:")
            && errs[2].contains("4 to 12 digits")
            && errs[2].ends_with("(invalid_field)"),
        "{}",
        errs[2]
    );
    assert!(errs[3].starts_with("line 6: g@contoso.com:") && errs[3].ends_with("(in_use)"));
    let r = cli(url, &["--json", "organizer", "list", "--all"]);
    assert_eq!(r.code, Some(0));
    let ids: Vec<String> = json(&r)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids,
        [
            "amos.marble@contoso.com",
            "b@contoso.com",
            "d@contoso.com",
            "h@contoso.com"
        ]
    );

    // With --json: one JSON line per organizer created, problems and the
    // summary on stderr.
    let csv = write_config(
        "id,display_name,email\n\
         i@contoso.com,I,i@contoso.com\n\
         d@contoso.com,D again,d@contoso.com\n",
    );
    let r = cli(
        url,
        &[
            "--json",
            "organizer",
            "import",
            csv.path().to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, Some(1), "{}", r.err);
    assert_eq!(json(&r)["id"], "i@contoso.com");
    assert!(
        r.err.starts_with("line 3: d@contoso.com: error:"),
        "{}",
        r.err
    );
    assert!(
        r.err.ends_with("imported 1 of 2 organizers, 1 failed\n"),
        "{}",
        r.err
    );
    assert_eq!(
        cli(url, &["organizer", "remove", "i@contoso.com"]).code,
        Some(0)
    );

    // conference-id show: human and --json.
    let r = cli(url, &["conference-id", "show", "8271964"]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert!(r.out.contains("reset"), "{}", r.out);
    assert!(r.out.contains("amos.marble@contoso.com"), "{}", r.out);
    let r = cli(url, &["conference-id", "show", "1234567", "--json"]);
    let st = json(&r);
    assert_eq!(st["state"], "active");
    assert_eq!(st["organizer"], "amos.marble@contoso.com");
    let r = cli(url, &["conference-id", "show", "0000001", "--json"]);
    assert_eq!(json(&r)["state"], "unknown");
    let r = cli(url, &["conference-id", "show", "123"]);
    assert_eq!(r.code, Some(1));
    assert!(r.err.ends_with("(invalid_conference_id)\n"), "{}", r.err);

    // remove, then it is gone.
    let r = cli(url, &["organizer", "remove", "amos.marble@contoso.com"]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert_eq!(r.out, "removed organizer amos.marble@contoso.com\n");
    let r = cli(url, &["organizer", "show", "amos.marble@contoso.com"]);
    assert_eq!(r.code, Some(1));
    assert_eq!(
        r.err,
        "error: organizer \"amos.marble@contoso.com\" not found (not_found)\n"
    );
    let r = cli(url, &["organizer", "remove", "amos.marble@contoso.com"]);
    assert_eq!(r.code, Some(1));
    assert!(r.err.ends_with("(not_found)\n"), "{}", r.err);
    let r = cli(url, &["--json", "conference-id", "show", "1234567"]);
    assert_eq!(json(&r)["state"], "reset");

    // Auth, usage and connection failures.
    let r = cli_with(url, Some("wrong"), &["organizer", "show", "b@contoso.com"]);
    assert_eq!(r.code, Some(1));
    assert_eq!(r.err, "error: invalid bearer token (unauthorized)\n");
    let r = cli_with(url, None, &["organizer", "show", "b@contoso.com"]);
    assert_eq!(r.code, Some(1));
    assert!(r.err.ends_with("(unauthorized)\n"), "{}", r.err);
    let r = cli(url, &["organizer", "add", "x@contoso.com"]);
    assert_eq!(r.code, Some(2), "usage error: {}", r.err);
    let gone = format!("http://127.0.0.1:{}", free_port());
    let r = cli(&gone, &["organizer", "show", "b@contoso.com"]);
    assert_eq!(r.code, Some(1));
    assert!(
        r.err.contains("cannot connect to the admin API"),
        "{}",
        r.err
    );

    // SIGTERM: a clean exit.
    let mut served = served;
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(served.child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let mut exit = None;
    for _ in 0..400 {
        if let Some(s) = served.child.try_wait().unwrap() {
            exit = Some(s);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let exit = exit.expect("dialgate serve exits after SIGTERM");
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn check_config_refuses_a_public_admin_api_without_a_token() {
    let data = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[directory]
data_dir = "{}"

[admin]
listen = "0.0.0.0:18080"

[[dial_in_numbers]]
number = "+44 20 7946 0000"

[[trunks]]
name = "loopback"
sources = ["127.0.0.0/8"]
"#,
        data.path().join("directory").display()
    );
    let config = write_config(&text);
    for command in ["check-config", "serve"] {
        let o = dialgate()
            .arg(command)
            .arg("--config")
            .arg(config.path())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(78), "{command}: {o:?}");
        let err = String::from_utf8(o.stderr).unwrap();
        assert!(
            err.contains("admin.listen: 0.0.0.0:18080 is not a loopback address")
                && err.contains("admin.token"),
            "{command}: {err}"
        );
        // Refused before anything was opened.
        assert!(!data.path().join("directory").exists(), "{command}");
    }

    // The same file with a token (here from the environment) is fine.
    let o = dialgate()
        .arg("check-config")
        .arg("--quiet")
        .arg("--config")
        .arg(config.path())
        .env("DIALGATE__ADMIN__TOKEN", "s3cret")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    // And the embedded defaults (loopback, no token) are valid too.
    let empty = tempfile::tempdir().unwrap();
    let o = dialgate()
        .arg("check-config")
        .arg("--quiet")
        .current_dir(empty.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
}

/// What the CLI was told is done survives `kill -9` of the daemon.
#[test]
fn acknowledged_changes_survive_kill_9() {
    let data = tempfile::tempdir().unwrap();
    let mut served = serve_binary(data.path());
    let url = served.url.clone();
    let r = cli(
        &url,
        &[
            "organizer",
            "add",
            "amos.marble@contoso.com",
            "--name",
            "Amos Marble",
            "--email",
            "amos.marble@contoso.com",
            "--conference-id",
            "8271964",
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.err);
    let r = cli(
        &url,
        &[
            "--json",
            "organizer",
            "reset-conference-id",
            "amos.marble@contoso.com",
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.err);
    let new_cid = json(&r)["conference_id"].as_str().unwrap().to_owned();
    served.child.kill().unwrap();
    served.child.wait().unwrap();
    drop(served);

    let served = serve_binary(data.path());
    let url = served.url.as_str();
    let r = cli(
        url,
        &["--json", "organizer", "show", "amos.marble@contoso.com"],
    );
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert_eq!(json(&r)["conference_id"], new_cid.as_str());
    let r = cli(url, &["--json", "conference-id", "show", "8271964"]);
    assert_eq!(json(&r)["state"], "reset");
    let r = cli(url, &["--json", "conference-id", "show", &new_cid]);
    assert_eq!(json(&r)["state"], "active");
}
