//! Black-box tests of the admin API: the real server on loopback, an
//! in-memory directory behind it, plain HTTP requests in front.

mod admin_support;

use admin_support::{agent, dial_in_numbers, FakeDirectory, TestServer};
use dialgate::admin::AdminState;
use dialgate::notify::{Notifier, NotifySettings};
use serde_json::{json, Value};
use std::sync::Arc;

const TOKEN: &str = "t0ken-for-tests";

struct Api {
    server: TestServer,
    agent: ureq::Agent,
    dir: Arc<FakeDirectory>,
    _outbox: Option<tempfile::TempDir>,
}

/// A response: status and JSON body (`Null` when empty).
#[derive(Debug)]
struct Resp {
    status: u16,
    body: Value,
    text: String,
}

impl Resp {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl Api {
    fn start(with_notifier: bool) -> Api {
        let dir = Arc::new(FakeDirectory::default());
        let outbox = with_notifier.then(|| tempfile::tempdir().unwrap());
        let settings = outbox.as_ref().map(|d| NotifySettings {
            smtp_host: Some("127.0.0.1".into()),
            smtp_port: 1,
            from: Some("conferencing@contoso.com".into()),
            outbox_dir: d.path().to_owned(),
            ..Default::default()
        });
        let d = Arc::clone(&dir);
        let server = TestServer::start(move || {
            let mut state = AdminState::new(d)
                .with_token(Some(TOKEN.into()))
                .with_dial_in_numbers(dial_in_numbers());
            if let Some(s) = settings {
                state = state.with_notifier(Notifier::open(&s).unwrap());
            }
            state
        });
        Api {
            server,
            agent: agent(),
            dir,
            _outbox: outbox,
        }
    }

    fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, &str)>,
    ) -> Resp {
        let url = format!("{}{path}", self.server.url);
        let auth = token.map(|t| format!("Bearer {t}"));
        let result = match (method, body) {
            ("GET" | "DELETE", _) => {
                let mut r = if method == "GET" {
                    self.agent.get(&url)
                } else {
                    self.agent.delete(&url)
                };
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            (_, body) => {
                let mut r = match method {
                    "POST" => self.agent.post(&url),
                    "PUT" => self.agent.put(&url),
                    "PATCH" => self.agent.patch(&url),
                    other => panic!("{other}"),
                };
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                match body {
                    Some((ctype, text)) => r.header("Content-Type", ctype).send(text),
                    None => r.send_empty(),
                }
            }
        };
        let mut resp = result.unwrap();
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{status} non-JSON {text:?}: {e}"))
        };
        Resp { status, body, text }
    }

    fn get(&self, path: &str) -> Resp {
        self.raw("GET", path, Some(TOKEN), None)
    }

    fn delete(&self, path: &str) -> Resp {
        self.raw("DELETE", path, Some(TOKEN), None)
    }

    fn send(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        let text = body.map(|b| b.to_string());
        self.raw(
            method,
            path,
            Some(TOKEN),
            text.as_deref().map(|t| ("application/json", t)),
        )
    }

    fn add(&self, id: &str, extra: Value) -> Resp {
        let mut body = json!({"id": id, "display_name": format!("Name of {id}"), "email": id});
        if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
            b.extend(e);
        }
        self.send("POST", "/v1/organizers", Some(body))
    }
}

fn assert_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.code(), code, "{r:?}");
    assert!(
        !r.body["error"]["message"].as_str().unwrap_or("").is_empty(),
        "{r:?}"
    );
}

#[test]
fn health_needs_no_token_everything_else_does() {
    let api = Api::start(false);
    let h = api.raw("GET", "/healthz", None, None);
    assert_eq!(h.status, 200);
    assert_eq!(h.body["status"], "ok");

    let r = api.raw("GET", "/v1/organizers", None, None);
    assert_error(&r, 401, "unauthorized");
    let r = api.raw("GET", "/v1/organizers", Some("wrong"), None);
    assert_error(&r, 401, "unauthorized");
    let r = api.raw("GET", "/v1/organizers", Some(&format!("{TOKEN}x")), None);
    assert_error(&r, 401, "unauthorized");
    // Unknown routes are not revealed without a token either.
    let r = api.raw("GET", "/v1/nothing-here", None, None);
    assert_error(&r, 401, "unauthorized");
    assert_eq!(api.get("/v1/organizers").status, 200);
}

#[test]
fn create_show_and_remove_an_organizer() {
    let api = Api::start(false);
    let r = api.add(
        "amos.marble@contoso.com",
        json!({"leader_pin": "908172", "conference_id": "8271964"}),
    );
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["conference_id"], "8271964");
    assert_eq!(r.body["mode"], "static");
    assert_eq!(r.body["has_leader_pin"], true);
    assert_eq!(r.body["dial_in_numbers"][0]["number"], "+44 20 7946 0000");
    assert_eq!(r.body["dial_in_numbers"][1]["label"], "Redmond");
    assert!(r.body["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(!r.text.contains("908172"), "PIN echoed: {}", r.text);
    assert_eq!(
        api.dir.pin_of("amos.marble@contoso.com").as_deref(),
        Some("908172")
    );

    let r = api.get("/v1/organizers/amos.marble@contoso.com");
    assert_eq!(r.status, 200);
    assert_eq!(r.body["display_name"], "Name of amos.marble@contoso.com");
    assert!(!r.text.contains("908172"));

    // Assigned ID when none is given.
    let r = api.add("b@contoso.com", json!({}));
    assert_eq!(r.status, 201);
    assert_eq!(r.body["conference_id"].as_str().unwrap().len(), 7);
    assert_eq!(r.body["has_leader_pin"], false);

    let r = api.delete("/v1/organizers/amos.marble@contoso.com");
    assert_eq!(r.status, 204);
    assert_eq!(r.text, "");
    assert_error(
        &api.get("/v1/organizers/amos.marble@contoso.com"),
        404,
        "not_found",
    );
    assert_error(
        &api.delete("/v1/organizers/amos.marble@contoso.com"),
        404,
        "not_found",
    );
    // The removed organizer's ID is tombstoned, not free.
    let r = api.get("/v1/conference-ids/8271964");
    assert_eq!(r.body["state"], "reset");
}

#[test]
fn conflicts_are_409() {
    let api = Api::start(false);
    assert_eq!(
        api.add("a@contoso.com", json!({"conference_id": "1111111"}))
            .status,
        201
    );
    assert_error(&api.add("a@contoso.com", json!({})), 409, "already_exists");
    assert_error(
        &api.add("b@contoso.com", json!({"conference_id": "1111111"})),
        409,
        "in_use",
    );
    assert_eq!(
        api.add("b@contoso.com", json!({"conference_id": "2222222"}))
            .status,
        201
    );
    let r = api.send(
        "PUT",
        "/v1/organizers/b@contoso.com/conference-id",
        Some(json!({"conference_id": "1111111"})),
    );
    assert_error(&r, 409, "in_use");

    // Reset a's ID: the old one is quarantined.
    let r = api.send(
        "POST",
        "/v1/organizers/a@contoso.com/conference-id/reset",
        None,
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["previous"], "1111111");
    assert_ne!(r.body["conference_id"], "1111111");
    assert_eq!(
        r.body["organizer"]["conference_id"],
        r.body["conference_id"]
    );
    assert!(r.body.get("notice_id").is_none(), "no notifier configured");
    let r = api.send(
        "PUT",
        "/v1/organizers/b@contoso.com/conference-id",
        Some(json!({"conference_id": "1111111"})),
    );
    assert_error(&r, 409, "quarantined");
    assert_error(
        &api.add("c@contoso.com", json!({"conference_id": "1111111"})),
        409,
        "quarantined",
    );

    // Setting a free ID works.
    let r = api.send(
        "PUT",
        "/v1/organizers/b@contoso.com/conference-id",
        Some(json!({"conference_id": "3333333"})),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body["conference_id"], "3333333");
    assert_eq!(api.get("/v1/conference-ids/2222222").body["state"], "reset");
}

#[test]
fn malformed_requests_are_400_or_415() {
    let api = Api::start(false);
    let post = |body: &str, ctype: &str| {
        api.raw("POST", "/v1/organizers", Some(TOKEN), Some((ctype, body)))
    };
    assert_error(
        &post("{\"id\": ", "application/json"),
        400,
        "malformed_json",
    );
    assert_error(&post("not json", "application/json"), 400, "malformed_json");
    assert_error(
        &post(
            r#"{"id": "a@x.com", "email": "a@x.com"}"#,
            "application/json",
        ),
        400,
        "bad_request",
    );
    assert_error(
        &post(
            r#"{"id": "a@x.com", "display_name": "A", "email": "a@x.com", "pin": "1"}"#,
            "application/json",
        ),
        400,
        "bad_request",
    );
    assert_error(
        &post(
            r#"{"id": 5, "display_name": "A", "email": "a@x.com"}"#,
            "application/json",
        ),
        400,
        "bad_request",
    );
    assert_error(
        &post(
            r#"{"id": "a@x.com", "display_name": "A", "email": "a@x.com", "mode": "sometimes"}"#,
            "application/json",
        ),
        400,
        "bad_request",
    );
    assert_error(
        &post(
            r#"{"id": "a@x.com", "display_name": "A", "email": "a@x.com"}"#,
            "text/plain",
        ),
        415,
        "unsupported_media_type",
    );
    let r = api.raw("POST", "/v1/organizers", Some(TOKEN), None);
    assert_error(&r, 415, "unsupported_media_type");
    assert_eq!(api.dir.organizer_count(), 0);
}

#[test]
fn unknown_things_are_404_and_wrong_methods_405() {
    let api = Api::start(false);
    assert_error(
        &api.get("/v1/organizers/nobody@contoso.com"),
        404,
        "not_found",
    );
    assert_error(&api.get("/v1/meetings/m404"), 404, "not_found");
    assert_error(&api.get("/v1/nothing-here"), 404, "not_found");
    assert_error(&api.get("/"), 404, "not_found");
    assert_error(
        &api.send(
            "POST",
            "/v1/organizers/nobody@contoso.com/conference-id/reset",
            None,
        ),
        404,
        "not_found",
    );
    assert_error(
        &api.send(
            "PUT",
            "/v1/organizers/nobody@contoso.com/conference-id",
            Some(json!({"conference_id": "1234567"})),
        ),
        404,
        "not_found",
    );
    assert_error(
        &api.send("PATCH", "/v1/organizers", None),
        405,
        "method_not_allowed",
    );
    assert_error(&api.delete("/v1/organizers"), 405, "method_not_allowed");
    assert_error(
        &api.send("POST", "/v1/conference-ids/1234567", None),
        405,
        "method_not_allowed",
    );
    assert_eq!(
        api.get("/v1/conference-ids/1234567").body["state"],
        "unknown"
    );
}

#[test]
fn invalid_values_are_422() {
    let api = Api::start(false);
    for bad in ["12a4567", "123456", "12345678", "", " 1234567"] {
        let r = api.add("a@contoso.com", json!({"conference_id": bad}));
        assert_error(&r, 422, "invalid_conference_id");
    }
    assert_error(
        &api.get("/v1/conference-ids/12a4567"),
        422,
        "invalid_conference_id",
    );
    assert_error(
        &api.get("/v1/conference-ids/123"),
        422,
        "invalid_conference_id",
    );
    assert_error(
        &api.add("a@contoso.com", json!({"email": "not an address"})),
        422,
        "invalid_field",
    );
    assert_error(
        &api.add("a@contoso.com", json!({"leader_pin": "12ab"})),
        422,
        "invalid_field",
    );
    assert_error(&api.add("", json!({})), 422, "invalid_field");
    assert_eq!(api.add("a@contoso.com", json!({})).status, 201);
    let r = api.send(
        "PUT",
        "/v1/organizers/a@contoso.com/conference-id",
        Some(json!({"conference_id": "98765"})),
    );
    assert_error(&r, 422, "invalid_conference_id");
}

#[test]
fn organizers_page_in_id_order() {
    let api = Api::start(false);
    for i in (0..25).rev() {
        assert_eq!(
            api.add(&format!("user{i:02}@contoso.com"), json!({}))
                .status,
            201
        );
    }
    let first = api.get("/v1/organizers?limit=10");
    assert_eq!(first.status, 200);
    let items = first.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 10);
    assert_eq!(items[0]["id"], "user00@contoso.com");
    assert_eq!(first.body["next"], "user09@contoso.com");

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/organizers?limit=7&after={a}"),
            None => "/v1/organizers?limit=7".to_owned(),
        };
        let page = api.get(&path);
        for o in page.body["items"].as_array().unwrap() {
            seen.push(o["id"].as_str().unwrap().to_owned());
        }
        match page.body["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25).map(|i| format!("user{i:02}@contoso.com")).collect();
    assert_eq!(seen, expected);

    let all = api.get("/v1/organizers");
    assert_eq!(all.body["items"].as_array().unwrap().len(), 25);
    assert!(all.body["next"].is_null());
    assert_error(&api.get("/v1/organizers?limit=0"), 400, "bad_query");
    assert_error(&api.get("/v1/organizers?limit=1001"), 400, "bad_query");
    assert_error(&api.get("/v1/organizers?limit=ten"), 400, "bad_query");
    assert_eq!(api.get("/v1/organizers?limit=1000").status, 200);
}

#[test]
fn meetings_and_conference_id_status() {
    let api = Api::start(false);
    assert_eq!(
        api.add("dyn@contoso.com", json!({"mode": "dynamic"}))
            .status,
        201
    );
    assert_eq!(api.add("static@contoso.com", json!({})).status, 201);

    let r = api.send(
        "POST",
        "/v1/meetings",
        Some(json!({"organizer": "dyn@contoso.com", "expires_at": "2099-12-01T15:00:00+01:00"})),
    );
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["expires_at"], "2099-12-01T14:00:00Z");
    assert_eq!(r.body["organizer"], "dyn@contoso.com");
    let id = r.body["id"].as_str().unwrap().to_owned();
    let cid = r.body["conference_id"].as_str().unwrap().to_owned();

    let shown = api.get(&format!("/v1/meetings/{id}"));
    assert_eq!(shown.status, 200);
    assert_eq!(shown.body["conference_id"], cid.as_str());

    let st = api.get(&format!("/v1/conference-ids/{cid}"));
    assert_eq!(st.status, 200);
    assert_eq!(st.body["state"], "active");
    assert_eq!(st.body["organizer"], "dyn@contoso.com");
    assert_eq!(st.body["meeting"], id.as_str());
    assert!(st.body["since"].as_str().unwrap().ends_with('Z'));

    // An already-ended meeting's ID shows as expired.
    let past = api.send(
        "POST",
        "/v1/meetings",
        Some(json!({"organizer": "dyn@contoso.com", "expires_at": "2001-01-01T00:00:00Z"})),
    );
    let past_cid = past.body["conference_id"].as_str().unwrap();
    let st = api.get(&format!("/v1/conference-ids/{past_cid}"));
    assert_eq!(st.body["state"], "expired");
    assert_eq!(st.body["at"], "2001-01-01T00:00:00Z");

    assert_error(
        &api.send(
            "POST",
            "/v1/meetings",
            Some(json!({"organizer": "dyn@contoso.com", "expires_at": "tomorrow"})),
        ),
        422,
        "invalid_timestamp",
    );
    assert_error(
        &api.send(
            "POST",
            "/v1/meetings",
            Some(json!({"organizer": "static@contoso.com"})),
        ),
        409,
        "wrong_mode",
    );
    assert_error(
        &api.send(
            "POST",
            "/v1/meetings",
            Some(json!({"organizer": "ghost@contoso.com"})),
        ),
        404,
        "not_found",
    );
    assert_error(
        &api.send(
            "POST",
            "/v1/organizers/dyn@contoso.com/conference-id/reset",
            None,
        ),
        409,
        "wrong_mode",
    );

    assert_eq!(api.delete(&format!("/v1/meetings/{id}")).status, 204);
    assert_error(&api.get(&format!("/v1/meetings/{id}")), 404, "not_found");
    let st = api.get(&format!("/v1/conference-ids/{cid}"));
    assert_eq!(st.body["state"], "reset");
    assert!(st.body["at"].is_string());
}

#[test]
fn reset_queues_conference_info_without_the_pin() {
    let api = Api::start(true);
    let r = api.add(
        "amos.marble@contoso.com",
        json!({"leader_pin": "908172", "conference_id": "8271964"}),
    );
    assert_eq!(r.status, 201);
    let r = api.send(
        "POST",
        "/v1/organizers/amos.marble@contoso.com/conference-id/reset",
        None,
    );
    assert_eq!(r.status, 200, "{r:?}");
    let new_cid = r.body["conference_id"].as_str().unwrap().to_owned();
    let notice_id = r.body["notice_id"]
        .as_str()
        .expect("notice queued")
        .to_owned();

    let outbox = api.get("/v1/outbox");
    assert_eq!(outbox.status, 200);
    assert_eq!(outbox.body["enabled"], true);
    let entry = &outbox.body["items"][0];
    assert_eq!(entry["id"], notice_id.as_str());
    assert_eq!(entry["to"], "amos.marble@contoso.com");
    assert_eq!(entry["status"], "pending");
    assert_eq!(entry["attempts"], 0);
    assert!(entry["next_attempt"].is_string());

    // The stored notice carries the new ID and the numbers, never the PIN.
    let dir = api._outbox.as_ref().unwrap().path();
    let stored = std::fs::read_to_string(dir.join(format!("{notice_id}.json"))).unwrap();
    assert!(stored.contains(&new_cid));
    assert!(stored.contains("+44 20 7946 0000"));
    assert!(!stored.contains("908172"));

    let r = api.send(
        "POST",
        "/v1/organizers/amos.marble@contoso.com/send-conference-info",
        None,
    );
    assert_eq!(r.status, 202, "{r:?}");
    assert!(r.body["notice_id"].is_string());
    assert_eq!(
        api.get("/v1/outbox").body["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_error(
        &api.send(
            "POST",
            "/v1/organizers/ghost@contoso.com/send-conference-info",
            None,
        ),
        404,
        "not_found",
    );
    // Dynamic organizers have no single ID to send.
    assert_eq!(
        api.add("dyn@contoso.com", json!({"mode": "dynamic"}))
            .status,
        201
    );
    assert_error(
        &api.send(
            "POST",
            "/v1/organizers/dyn@contoso.com/send-conference-info",
            None,
        ),
        409,
        "no_conference_id",
    );
}

#[test]
fn send_conference_info_without_notices_is_503() {
    let api = Api::start(false);
    assert_eq!(api.add("a@contoso.com", json!({})).status, 201);
    assert_error(
        &api.send(
            "POST",
            "/v1/organizers/a@contoso.com/send-conference-info",
            None,
        ),
        503,
        "notices_disabled",
    );
    let outbox = api.get("/v1/outbox");
    assert_eq!(outbox.body["enabled"], false);
    assert_eq!(outbox.body["items"], json!([]));
}

#[test]
fn open_api_on_loopback_without_token() {
    let dir = Arc::new(FakeDirectory::default());
    let server = TestServer::start(move || AdminState::new(dir));
    let r = agent()
        .get(format!("{}/v1/organizers", server.url))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

/// A one-connection SMTP server on a std thread: accepts one message and
/// hands back the DATA text.
fn smtp_sink_once() -> (u16, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut w = stream.try_clone().unwrap();
        let mut lines = BufReader::new(stream).lines();
        w.write_all(b"220 sink\r\n").unwrap();
        while let Some(Ok(line)) = lines.next() {
            let reply: &[u8] = match line.to_ascii_uppercase().as_str() {
                l if l.starts_with("EHLO") || l.starts_with("MAIL") || l.starts_with("RCPT") => {
                    b"250 ok\r\n"
                }
                "DATA" => {
                    w.write_all(b"354 go\r\n").unwrap();
                    let mut data = String::new();
                    for l in lines.by_ref() {
                        let l = l.unwrap();
                        if l == "." {
                            break;
                        }
                        data.push_str(&l);
                        data.push('\n');
                    }
                    tx.send(data).unwrap();
                    b"250 queued\r\n"
                }
                "QUIT" => {
                    w.write_all(b"221 bye\r\n").unwrap();
                    break;
                }
                _ => b"500 ?\r\n",
            };
            w.write_all(reply).unwrap();
        }
    });
    (port, rx)
}

#[test]
fn reset_emails_the_new_id_through_smtp() {
    let (port, received) = smtp_sink_once();
    let outbox = tempfile::tempdir().unwrap();
    let settings = NotifySettings {
        smtp_host: Some("127.0.0.1".into()),
        smtp_port: port,
        from: Some("conferencing@contoso.com".into()),
        outbox_dir: outbox.path().to_owned(),
        ..Default::default()
    };
    let dir = Arc::new(FakeDirectory::default());
    let server = TestServer::start(move || {
        let notifier = Notifier::open(&settings).unwrap();
        tokio::spawn(notifier.clone().run(std::future::pending()));
        AdminState::new(dir)
            .with_dial_in_numbers(dial_in_numbers())
            .with_notifier(notifier)
    });
    let agent = agent();
    let created = agent
        .post(format!("{}/v1/organizers", server.url))
        .send_json(json!({
            "id": "amos.marble@contoso.com",
            "display_name": "Amos Marble",
            "email": "amos.marble@contoso.com",
            "leader_pin": "908172",
            "conference_id": "8271964",
        }))
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let mut reset = agent
        .post(format!(
            "{}/v1/organizers/amos.marble@contoso.com/conference-id/reset",
            server.url
        ))
        .send_empty()
        .unwrap();
    let body: Value = reset.body_mut().read_json().unwrap();
    let new_cid = body["conference_id"].as_str().unwrap().to_owned();

    let data = received.recv().unwrap();
    assert!(data.contains("To: amos.marble@contoso.com"), "{data}");
    assert!(data.contains("Subject: Your conference ID"), "{data}");
    assert!(data.contains("Hello Amos Marble"), "{data}");
    assert!(
        data.contains(&format!("Your new conference ID is {new_cid}")),
        "{data}"
    );
    assert!(data.contains("+44 20 7946 0000  London"), "{data}");
    assert!(data.contains("+1 425 555 0100   Redmond"), "{data}");
    assert!(!data.contains("908172"), "PIN leaked: {data}");
}
