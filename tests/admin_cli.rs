//! The operator CLI against the real admin API server (in-memory directory).

mod admin_support;

use admin_support::{dial_in_numbers, FakeDirectory, TestServer};
use dialgate::admin::cli::{
    run_with, AdminCommand, ClientOptions, ConferenceIdCommand, MeetingCommand, ModeArg,
    OrganizerCommand,
};
use dialgate::admin::AdminState;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

const TOKEN: &str = "cli-t0ken";

struct Setup {
    server: TestServer,
    dir: Arc<FakeDirectory>,
}

fn setup() -> Setup {
    let dir = Arc::new(FakeDirectory::default());
    let d = Arc::clone(&dir);
    let server = TestServer::start(move || {
        AdminState::new(d)
            .with_token(Some(TOKEN.into()))
            .with_dial_in_numbers(dial_in_numbers())
    });
    Setup { server, dir }
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
        admin_url: s.server.url.clone(),
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
    assert_eq!(s.dir.organizer_count(), good + 2);
    assert_eq!(s.dir.pin_of("quoted@contoso.com").as_deref(), Some("1234"));

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
