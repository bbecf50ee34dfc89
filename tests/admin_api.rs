//! Black-box tests of the admin API against the running daemon: the real
//! `Daemon` (embedded directory on a temporary data dir, admin API and SIP
//! on loopback ephemeral ports), plain HTTP requests in front.

mod admin_support;

use admin_support::{agent, smtp_sink, with_smtp, Env, TestDaemon, TOKEN};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime};

struct Api {
    env: Env,
    agent: ureq::Agent,
    _outbox: Option<tempfile::TempDir>,
}

/// A response: status, the `Allow` header and the JSON body (`Null` when empty).
#[derive(Debug)]
struct Resp {
    status: u16,
    allow: Option<String>,
    headers: ureq::http::HeaderMap,
    body: Value,
    text: String,
}

impl Resp {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl Api {
    fn start() -> Api {
        Api {
            env: Env::start(),
            agent: agent(),
            _outbox: None,
        }
    }

    fn on(env: Env) -> Api {
        Api {
            env,
            agent: agent(),
            _outbox: None,
        }
    }

    fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, &str)>,
    ) -> Resp {
        let url = format!("{}{path}", self.env.url());
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
        let allow = resp
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let headers = resp.headers().clone();
        let text = resp.body_mut().read_to_string().unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{status} non-JSON {text:?}: {e}"))
        };
        Resp {
            status,
            allow,
            headers,
            body,
            text,
        }
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
    assert_eq!(
        r.headers.get("content-type").map(|v| v.to_str().unwrap()),
        Some("application/json"),
        "{r:?}"
    );
    assert!(
        !r.body["error"]["message"].as_str().unwrap_or("").is_empty(),
        "{r:?}"
    );
}

/// Every organizer id, following pages.
fn all_organizers(api: &Api) -> Vec<String> {
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/organizers?limit=7&after={a}"),
            None => "/v1/organizers?limit=7".to_owned(),
        };
        let page = api.get(&path);
        assert_eq!(page.status, 200, "{page:?}");
        for o in page.body["items"].as_array().unwrap() {
            seen.push(o["id"].as_str().unwrap().to_owned());
        }
        match page.body["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => return seen,
        }
    }
}

fn reset(api: &Api, organizer: &str) -> Resp {
    api.send(
        "POST",
        &format!("/v1/organizers/{organizer}/conference-id/reset"),
        None,
    )
}

fn set_cid(api: &Api, organizer: &str, cid: &str) -> Resp {
    api.send(
        "PUT",
        &format!("/v1/organizers/{organizer}/conference-id"),
        Some(json!({ "conference_id": cid })),
    )
}

#[test]
fn health_needs_no_token_everything_else_does() {
    let api = Api::start();
    let h = api.raw("GET", "/healthz", None, None);
    assert_eq!(h.status, 200);
    assert_eq!(h.body["status"], "ok");

    let r = api.raw("GET", "/v1/organizers", None, None);
    assert_error(&r, 401, "unauthorized");
    // RFC 6750 §3: the challenge names the scheme.
    assert_eq!(
        r.headers
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap()),
        Some("Bearer")
    );
    let r = api.raw("GET", "/v1/organizers", Some("wrong"), None);
    assert_error(&r, 401, "unauthorized");
    let r = api.raw("GET", "/v1/organizers", Some(&format!("{TOKEN}x")), None);
    assert_error(&r, 401, "unauthorized");
    let r = api.raw("GET", "/v1/organizers", Some(""), None);
    assert_error(&r, 401, "unauthorized");
    // Unknown routes and wrong methods are not revealed without a token either.
    let r = api.raw("GET", "/v1/nothing-here", None, None);
    assert_error(&r, 401, "unauthorized");
    let r = api.raw("DELETE", "/v1/organizers", None, None);
    assert_error(&r, 401, "unauthorized");
    // Nothing changes without the token.
    let r = api.raw(
        "POST",
        "/v1/organizers",
        None,
        Some((
            "application/json",
            r#"{"id": "a@contoso.com", "display_name": "A", "email": "a@contoso.com"}"#,
        )),
    );
    assert_error(&r, 401, "unauthorized");
    assert_eq!(api.get("/v1/organizers").status, 200);
    assert!(all_organizers(&api).is_empty());
}

#[test]
fn create_show_and_remove_an_organizer() {
    let api = Api::start();
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

    let r = api.get("/v1/organizers/amos.marble@contoso.com");
    assert_eq!(r.status, 200);
    assert_eq!(r.body["display_name"], "Name of amos.marble@contoso.com");
    assert_eq!(r.body["has_leader_pin"], true);
    assert!(!r.text.contains("908172"));
    let st = api.get("/v1/conference-ids/8271964");
    assert_eq!(st.body["state"], "active", "{st:?}");
    assert_eq!(st.body["organizer"], "amos.marble@contoso.com");

    // Assigned ID when none is given.
    let r = api.add("b@contoso.com", json!({}));
    assert_eq!(r.status, 201);
    let assigned = r.body["conference_id"].as_str().unwrap();
    assert_eq!(assigned.len(), 7);
    assert!(assigned.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(r.body["has_leader_pin"], false);
    assert_eq!(
        api.get(&format!("/v1/conference-ids/{assigned}")).body["state"],
        "active"
    );

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
    // The removed organizer's ID is tombstoned (quarantined forever by
    // default), not free.
    let r = api.get("/v1/conference-ids/8271964");
    assert_eq!(r.body["state"], "reset", "{r:?}");
    assert_eq!(r.body["organizer"], "amos.marble@contoso.com");
    assert!(r.body["at"].as_str().unwrap().ends_with('Z'));
    assert!(r.body.get("quarantined_until").is_none(), "{r:?}");
    assert_error(
        &api.add("c@contoso.com", json!({"conference_id": "8271964"})),
        409,
        "quarantined",
    );
    // The id itself is free again.
    assert_eq!(api.add("amos.marble@contoso.com", json!({})).status, 201);
}

#[test]
fn conflicts_are_409() {
    let api = Api::start();
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
    assert_error(&set_cid(&api, "b@contoso.com", "1111111"), 409, "in_use");
    // PUT is idempotent: setting an organizer's own current ID again
    // changes nothing and succeeds.
    let before = api.get("/v1/organizers/a@contoso.com");
    let r = set_cid(&api, "a@contoso.com", "1111111");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["conference_id"], "1111111");
    assert_eq!(r.body["updated_at"], before.body["updated_at"]);
    assert_eq!(
        api.get("/v1/conference-ids/1111111").body["state"],
        "active"
    );

    // Reset a's ID: the old one is quarantined.
    let r = reset(&api, "a@contoso.com");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["previous"], "1111111");
    assert_ne!(r.body["conference_id"], "1111111");
    assert_eq!(
        r.body["organizer"]["conference_id"],
        r.body["conference_id"]
    );
    assert!(r.body.get("notice_id").is_none(), "no notices configured");
    assert!(r.body.get("notice_error").is_none());
    assert_error(
        &set_cid(&api, "b@contoso.com", "1111111"),
        409,
        "quarantined",
    );
    assert_error(
        &api.add("c@contoso.com", json!({"conference_id": "1111111"})),
        409,
        "quarantined",
    );
    // A's own old ID cannot come back either.
    assert_error(
        &set_cid(&api, "a@contoso.com", "1111111"),
        409,
        "quarantined",
    );

    // Setting a free ID works; the replaced one is tombstoned.
    let r = set_cid(&api, "b@contoso.com", "3333333");
    assert_eq!(r.status, 200);
    assert_eq!(r.body["conference_id"], "3333333");
    assert_eq!(api.get("/v1/conference-ids/2222222").body["state"], "reset");
    assert_eq!(
        api.get("/v1/conference-ids/3333333").body["state"],
        "active"
    );
    // Leading zeros are part of the ID.
    let r = set_cid(&api, "b@contoso.com", "0000042");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["conference_id"], "0000042");
    assert_eq!(
        api.get("/v1/conference-ids/0000042").body["organizer"],
        "b@contoso.com"
    );
}

#[test]
fn malformed_requests_are_400_or_415() {
    let api = Api::start();
    let post = |body: &str, ctype: &str| {
        api.raw("POST", "/v1/organizers", Some(TOKEN), Some((ctype, body)))
    };
    assert_error(
        &post("{\"id\": ", "application/json"),
        400,
        "malformed_json",
    );
    assert_error(&post("not json", "application/json"), 400, "malformed_json");
    // Missing field, unknown field, wrong type, unknown mode.
    for body in [
        r#"{"id": "a@x.com", "email": "a@x.com"}"#,
        r#"{"id": "a@x.com", "display_name": "A", "email": "a@x.com", "pin": "1234"}"#,
        r#"{"id": 5, "display_name": "A", "email": "a@x.com"}"#,
        r#"{"id": "a@x.com", "display_name": "A", "email": "a@x.com", "mode": "sometimes"}"#,
        r#"[]"#,
    ] {
        assert_error(&post(body, "application/json"), 400, "bad_request");
    }
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
    // The same rules on the other bodies.
    let r = api.raw(
        "PUT",
        "/v1/organizers/a@x.com/conference-id",
        Some(TOKEN),
        Some(("application/json", r#"{"conference_id": 1234567}"#)),
    );
    assert_error(&r, 400, "bad_request");
    let r = api.raw(
        "POST",
        "/v1/meetings",
        Some(TOKEN),
        Some(("application/xml", "<meeting/>")),
    );
    assert_error(&r, 415, "unsupported_media_type");
    // A path segment that is not UTF-8 once decoded.
    assert_error(&api.get("/v1/organizers/%FF%FE"), 400, "bad_path");
    assert_error(&api.get("/v1/conference-ids/%FF"), 400, "bad_path");
    assert!(all_organizers(&api).is_empty());
}

/// Organizer ids may hold characters that are special in URLs; encoded,
/// they round-trip through paths and the `after` query.
#[test]
fn odd_organizer_ids_round_trip_through_urls() {
    let api = Api::start();
    let odd = "o'brien/a+b%c?d#e&f=g@contoso.com";
    let encoded = "o'brien%2Fa%2Bb%25c%3Fd%23e%26f%3Dg@contoso.com";
    let r = api.add(odd, json!({"email": "obrien@contoso.com"}));
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["id"], odd);
    assert_eq!(api.add("a@contoso.com", json!({})).status, 201);
    assert_eq!(api.add("z@contoso.com", json!({})).status, 201);
    let r = api.get(&format!("/v1/organizers/{encoded}"));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["id"], odd);
    let r = api.get(&format!("/v1/organizers?limit=1&after={encoded}"));
    assert_eq!(r.body["items"][0]["id"], "z@contoso.com", "{r:?}");
    let r = api.get("/v1/organizers?limit=1&after=a%40contoso.com");
    assert_eq!(r.body["items"][0]["id"], odd, "{r:?}");
    assert_eq!(
        all_organizers(&api),
        ["a@contoso.com", odd, "z@contoso.com"]
    );
    assert_eq!(reset(&api, encoded).status, 200);
    assert_eq!(api.delete(&format!("/v1/organizers/{encoded}")).status, 204);
    assert_eq!(all_organizers(&api), ["a@contoso.com", "z@contoso.com"]);
}

/// One raw HTTP/1.1 exchange over TCP: sends `head` (and nothing else),
/// reads the response status and body.
fn raw_exchange(api: &Api, head: &str) -> (u16, Value) {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(api.env.daemon.admin_addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(head.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (header_end, length) = loop {
        let n = tcp.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before a response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().unwrap())
                })
                .expect("response has a Content-Length");
            break (end + 4, length);
        }
    };
    while buf.len() < header_end + length {
        let n = tcp.read(&mut chunk).unwrap();
        assert!(n > 0, "closed inside the body");
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8(buf).unwrap();
    let status = text[9..12].parse().unwrap();
    (status, serde_json::from_str(&text[header_end..]).unwrap())
}

#[test]
fn oversized_bodies_are_413() {
    let api = Api::start();
    let big = 3 * 1024 * 1024;
    // Refused on the announced length, before the body is sent: with
    // `Expect: 100-continue` the client is told not to send it at all.
    for expect in ["Expect: 100-continue\r\n", ""] {
        let head = format!(
            "POST /v1/organizers HTTP/1.1\r\nHost: test\r\n\
             Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n\
             Content-Length: {big}\r\n{expect}\r\n"
        );
        let (status, body) = raw_exchange(&api, &head);
        assert_eq!(status, 413, "{body}");
        assert_eq!(body["error"]["code"], "body_too_large");
    }
    // A body without a length is cut off once it passes the limit: one
    // chunk announced larger than the limit, sent up to one byte past it.
    let limit = dialgate::admin::api::MAX_BODY;
    let mut head = format!(
        "POST /v1/organizers HTTP/1.1\r\nHost: test\r\n\
         Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        2 * limit
    );
    head.push_str(&" ".repeat(limit + 1));
    let (status, body) = raw_exchange(&api, &head);
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "body_too_large");
    // Without a token the answer is still 401.
    let head = format!(
        "POST /v1/organizers HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         Content-Length: {big}\r\n\r\n"
    );
    assert_eq!(raw_exchange(&api, &head).0, 401);
    // A body just under the limit is read (and then judged on its content).
    let name = "x".repeat(2 * 1024 * 1024 - 200);
    let body = json!({"id": "big@contoso.com", "display_name": name, "email": "big@contoso.com"})
        .to_string();
    assert!(body.len() <= dialgate::admin::api::MAX_BODY);
    let r = api.raw(
        "POST",
        "/v1/organizers",
        Some(TOKEN),
        Some(("application/json", &body)),
    );
    assert_error(&r, 422, "invalid_field");
    // The daemon goes on serving.
    assert_eq!(api.add("small@contoso.com", json!({})).status, 201);
}

#[test]
fn unknown_things_are_404_and_wrong_methods_405() {
    let api = Api::start();
    assert_error(
        &api.get("/v1/organizers/nobody@contoso.com"),
        404,
        "not_found",
    );
    assert_error(
        &api.delete("/v1/organizers/nobody@contoso.com"),
        404,
        "not_found",
    );
    assert_error(&api.get("/v1/meetings/m404"), 404, "not_found");
    assert_error(&api.delete("/v1/meetings/m404"), 404, "not_found");
    assert_error(&api.get("/v1/nothing-here"), 404, "not_found");
    assert_error(&api.get("/"), 404, "not_found");
    assert_error(&reset(&api, "nobody@contoso.com"), 404, "not_found");
    assert_error(
        &set_cid(&api, "nobody@contoso.com", "1234567"),
        404,
        "not_found",
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

    // 405 names the methods the resource has (RFC 9110 §15.5.6).
    let allowed = |r: &Resp| -> Vec<String> {
        let mut m: Vec<String> = r
            .allow
            .as_deref()
            .unwrap_or_else(|| panic!("405 without Allow: {r:?}"))
            .split(',')
            .map(|m| m.trim().to_owned())
            .filter(|m| m != "HEAD")
            .collect();
        m.sort();
        m
    };
    let r = api.send("PATCH", "/v1/organizers", None);
    assert_error(&r, 405, "method_not_allowed");
    assert_eq!(allowed(&r), ["GET", "POST"]);
    let r = api.delete("/v1/organizers");
    assert_error(&r, 405, "method_not_allowed");
    assert_eq!(allowed(&r), ["GET", "POST"]);
    let r = api.send("POST", "/v1/conference-ids/1234567", None);
    assert_error(&r, 405, "method_not_allowed");
    assert_eq!(allowed(&r), ["GET"]);
    let r = api.get("/v1/organizers/a@contoso.com/conference-id/reset");
    assert_error(&r, 405, "method_not_allowed");
    assert_eq!(allowed(&r), ["POST"]);
    let r = api.send("POST", "/v1/organizers/a@contoso.com", None);
    assert_error(&r, 405, "method_not_allowed");
    assert_eq!(allowed(&r), ["DELETE", "GET"]);
    let r = api.get("/v1/organizers/a@contoso.com/conference-id");
    assert_error(&r, 405, "method_not_allowed");
    assert_eq!(allowed(&r), ["PUT"]);
    let r = api.get("/v1/meetings");
    assert_error(&r, 405, "method_not_allowed");
    assert_eq!(allowed(&r), ["POST"]);

    assert_eq!(
        api.get("/v1/conference-ids/1234567").body["state"],
        "unknown"
    );
}

#[test]
fn invalid_values_are_422() {
    let api = Api::start();
    for bad in [
        "12a4567",
        "123456",
        "12345678",
        "",
        " 1234567",
        "１２３４５６７",
    ] {
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
        &api.add("a@contoso.com", json!({"display_name": "  "})),
        422,
        "invalid_field",
    );
    assert_error(
        &api.add("a@contoso.com", json!({"display_name": "A\u{7}B"})),
        422,
        "invalid_field",
    );
    // The leader PIN rule is the directory's: 4 to 12 digits.
    for bad in ["12ab", "", "123", "1234567890123"] {
        let r = api.add("a@contoso.com", json!({ "leader_pin": bad }));
        assert_error(&r, 422, "invalid_field");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("4 to 12 digits"),
            "{r:?}"
        );
    }
    // Organizer ids: not empty, no whitespace, at most 320 bytes.
    assert_error(&api.add("", json!({})), 422, "invalid_field");
    assert_error(&api.add("a b@contoso.com", json!({})), 422, "invalid_field");
    let long = format!("{}@contoso.com", "a".repeat(320));
    let r = api.add(&long, json!({"email": "long@contoso.com"}));
    assert_error(&r, 422, "invalid_field");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("id "),
        "{r:?}"
    );
    // Dynamic organizers get an ID per meeting, not a chosen one.
    let r = api.add(
        "dyn@contoso.com",
        json!({"mode": "dynamic", "conference_id": "1234567"}),
    );
    assert_error(&r, 422, "invalid_field");
    assert!(all_organizers(&api).is_empty());

    // The boundaries themselves are fine.
    assert_eq!(
        api.add("p4@contoso.com", json!({"leader_pin": "0123"}))
            .status,
        201
    );
    assert_eq!(
        api.add("p12@contoso.com", json!({"leader_pin": "012345678901"}))
            .status,
        201
    );
    let id300 = format!("{}@contoso.com", "b".repeat(300));
    let r = api.add(&id300, json!({"email": "b300@contoso.com"}));
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(api.get(&format!("/v1/organizers/{id300}")).status, 200);

    assert_eq!(api.add("a@contoso.com", json!({})).status, 201);
    assert_error(
        &set_cid(&api, "a@contoso.com", "98765"),
        422,
        "invalid_conference_id",
    );
    assert_error(
        &set_cid(&api, "a@contoso.com", "98765x1"),
        422,
        "invalid_conference_id",
    );
}

#[test]
fn organizers_page_in_id_order() {
    let api = Api::start();
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

    let expected: Vec<String> = (0..25).map(|i| format!("user{i:02}@contoso.com")).collect();
    assert_eq!(all_organizers(&api), expected);

    // A page that ends exactly at the last organizer has no `next`.
    let last = api.get("/v1/organizers?limit=5&after=user19@contoso.com");
    assert_eq!(last.body["items"].as_array().unwrap().len(), 5);
    assert!(last.body["next"].is_null(), "{last:?}");
    // After the end (or after an id that does not exist) is fine.
    let past = api.get("/v1/organizers?after=zzz");
    assert_eq!(past.status, 200);
    assert_eq!(past.body["items"], json!([]));
    let between = api.get("/v1/organizers?limit=1&after=user04z");
    assert_eq!(between.body["items"][0]["id"], "user05@contoso.com");
    // An empty `after` is the start.
    let start = api.get("/v1/organizers?limit=1&after=");
    assert_eq!(start.body["items"][0]["id"], "user00@contoso.com");

    let all = api.get("/v1/organizers");
    assert_eq!(all.body["items"].as_array().unwrap().len(), 25);
    assert!(all.body["next"].is_null());
    assert_error(&api.get("/v1/organizers?limit=0"), 400, "bad_query");
    assert_error(&api.get("/v1/organizers?limit=1001"), 400, "bad_query");
    assert_error(&api.get("/v1/organizers?limit=ten"), 400, "bad_query");
    assert_error(&api.get("/v1/organizers?limit=-1"), 400, "bad_query");
    assert_error(&api.get("/v1/outbox?limit=0"), 400, "bad_query");
    assert_eq!(api.get("/v1/organizers?limit=1000").status, 200);
}

#[test]
fn meetings_and_conference_id_status() {
    let api = Api::start();
    assert_eq!(
        api.add("dyn@contoso.com", json!({"mode": "dynamic"}))
            .status,
        201
    );
    assert_eq!(api.add("static@contoso.com", json!({})).status, 201);
    let dynamic = api.get("/v1/organizers/dyn@contoso.com");
    assert_eq!(dynamic.body["mode"], "dynamic");
    assert!(dynamic.body["conference_id"].is_null());

    let r = api.send(
        "POST",
        "/v1/meetings",
        Some(json!({"organizer": "dyn@contoso.com", "expires_at": "2099-12-01T15:00:00+01:00"})),
    );
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["expires_at"], "2099-12-01T14:00:00Z");
    assert_eq!(r.body["organizer"], "dyn@contoso.com");
    assert_eq!(r.body["dial_in_numbers"][0]["label"], "London");
    let id = r.body["id"].as_str().unwrap().to_owned();
    let cid = r.body["conference_id"].as_str().unwrap().to_owned();
    assert_eq!(cid.len(), 7);

    let shown = api.get(&format!("/v1/meetings/{id}"));
    assert_eq!(shown.status, 200);
    assert_eq!(shown.body["conference_id"], cid.as_str());

    let st = api.get(&format!("/v1/conference-ids/{cid}"));
    assert_eq!(st.status, 200);
    assert_eq!(st.body["state"], "active");
    assert_eq!(st.body["organizer"], "dyn@contoso.com");
    assert_eq!(st.body["meeting"], id.as_str());
    assert!(st.body["since"].as_str().unwrap().ends_with('Z'));

    // A meeting without an end never expires.
    let open = api.send(
        "POST",
        "/v1/meetings",
        Some(json!({"organizer": "dyn@contoso.com"})),
    );
    assert_eq!(open.status, 201, "{open:?}");
    assert!(open.body["expires_at"].is_null());

    // The directory refuses a meeting that has already ended (grace included).
    assert_error(
        &api.send(
            "POST",
            "/v1/meetings",
            Some(json!({"organizer": "dyn@contoso.com", "expires_at": "2001-01-01T00:00:00Z"})),
        ),
        422,
        "invalid_field",
    );
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
        &api.send("POST", "/v1/meetings", Some(json!({"organizer": " "}))),
        422,
        "invalid_field",
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
    assert_error(&reset(&api, "dyn@contoso.com"), 409, "wrong_mode");
    assert_error(
        &set_cid(&api, "dyn@contoso.com", "7654321"),
        409,
        "wrong_mode",
    );

    assert_eq!(api.delete(&format!("/v1/meetings/{id}")).status, 204);
    assert_error(&api.get(&format!("/v1/meetings/{id}")), 404, "not_found");
    assert_error(&api.delete(&format!("/v1/meetings/{id}")), 404, "not_found");
    let st = api.get(&format!("/v1/conference-ids/{cid}"));
    assert_eq!(st.body["state"], "reset");
    assert!(st.body["at"].is_string());

    // Removing the organizer removes its meetings and retires their IDs.
    let open_id = open.body["id"].as_str().unwrap();
    let open_cid = open.body["conference_id"].as_str().unwrap();
    assert_eq!(api.delete("/v1/organizers/dyn@contoso.com").status, 204);
    assert_error(
        &api.get(&format!("/v1/meetings/{open_id}")),
        404,
        "not_found",
    );
    assert_eq!(
        api.get(&format!("/v1/conference-ids/{open_cid}")).body["state"],
        "reset"
    );
}

#[test]
fn a_meeting_id_expires_after_the_end_plus_grace() {
    let api = Api::on(Env::start_with(|mut c| {
        c.directory.dynamic_grace = "1s".into();
        c
    }));
    assert_eq!(
        api.add("dyn@contoso.com", json!({"mode": "dynamic"}))
            .status,
        201
    );
    let end = SystemTime::now() + Duration::from_secs(1);
    let end = dialgate::admin::rfc3339::format(end);
    let r = api.send(
        "POST",
        "/v1/meetings",
        Some(json!({"organizer": "dyn@contoso.com", "expires_at": end})),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let cid = r.body["conference_id"].as_str().unwrap().to_owned();
    // Wait (bounded) for the wall clock to pass the end plus grace.
    let mut st = api.get(&format!("/v1/conference-ids/{cid}"));
    for _ in 0..100 {
        if st.body["state"] != "active" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        st = api.get(&format!("/v1/conference-ids/{cid}"));
    }
    assert_eq!(st.body["state"], "expired", "{st:?}");
    assert_eq!(st.body["organizer"], "dyn@contoso.com");
    assert_eq!(st.body["meeting"], r.body["id"]);
    // `at` is when the ID stopped working: the end plus the grace period.
    let at = dialgate::admin::rfc3339::parse(st.body["at"].as_str().unwrap()).unwrap();
    let end = dialgate::admin::rfc3339::parse(r.body["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(at.duration_since(end).unwrap(), Duration::from_secs(1));
}

#[test]
fn reset_queues_conference_info_without_the_pin() {
    let (port, received) = smtp_sink();
    let outbox = tempfile::tempdir().unwrap();
    let outbox_dir = outbox.path().to_owned();
    let mut api = Api::on(Env::start_with(|c| with_smtp(c, port, &outbox_dir)));
    api._outbox = Some(outbox);
    let r = api.add(
        "amos.marble@contoso.com",
        json!({"leader_pin": "908172", "conference_id": "8271964"}),
    );
    assert_eq!(r.status, 201);
    let r = reset(&api, "amos.marble@contoso.com");
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
    let status = entry["status"].as_str().unwrap();
    assert!(["pending", "delivered"].contains(&status), "{entry}");

    // The stored notice carries the new ID and the numbers, never the PIN.
    let dir = api._outbox.as_ref().unwrap().path();
    let stored = std::fs::read_to_string(dir.join(format!("{notice_id}.json"))).unwrap();
    assert!(stored.contains(&new_cid));
    assert!(stored.contains("+44 20 7946 0000"));
    assert!(!stored.contains("908172"));

    // The daemon's notifier delivers it.
    let data = received.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(data.contains(&new_cid), "{data}");
    assert!(!data.contains("908172"), "PIN leaked: {data}");

    let r = api.send(
        "POST",
        "/v1/organizers/amos.marble@contoso.com/send-conference-info",
        None,
    );
    assert_eq!(r.status, 202, "{r:?}");
    assert!(r.body["notice_id"].is_string());
    assert_eq!(r.body["to"], "amos.marble@contoso.com");
    let data = received.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(data.contains(&new_cid), "{data}");
    let items = api.get("/v1/outbox").body["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(items, 2);
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
fn no_email_on_reset_when_switched_off() {
    let (port, _received) = smtp_sink();
    let outbox = tempfile::tempdir().unwrap();
    let outbox_dir = outbox.path().to_owned();
    let api = Api::on(Env::start_with(|c| {
        let mut c = with_smtp(c, port, &outbox_dir);
        c.notify.send_on_reset = false;
        c
    }));
    assert_eq!(api.add("a@contoso.com", json!({})).status, 201);
    let r = reset(&api, "a@contoso.com");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.get("notice_id").is_none(), "{r:?}");
    let outbox = api.get("/v1/outbox");
    assert_eq!(outbox.body["enabled"], true);
    assert_eq!(outbox.body["items"], json!([]));
}

#[test]
fn send_conference_info_without_notices_is_503() {
    let api = Api::start();
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
    let env = Env::start_with(|mut c| {
        c.admin.token = None;
        c
    });
    let r = agent()
        .get(format!("{}/v1/organizers", env.url()))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[test]
fn reset_emails_the_new_id_through_smtp() {
    let (port, received) = smtp_sink();
    let outbox = tempfile::tempdir().unwrap();
    let outbox_dir = outbox.path().to_owned();
    let env = Env::start_with(|c| with_smtp(c, port, &outbox_dir));
    let agent = agent();
    let created = agent
        .post(format!("{}/v1/organizers", env.url()))
        .header("Authorization", format!("Bearer {TOKEN}"))
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
            env.url()
        ))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .send_empty()
        .unwrap();
    assert_eq!(reset.status().as_u16(), 200);
    let body: Value = reset.body_mut().read_json().unwrap();
    let new_cid = body["conference_id"].as_str().unwrap().to_owned();

    let data = received.recv_timeout(Duration::from_secs(30)).unwrap();
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

    // Once delivered, the outbox says so.
    let mut status = Value::Null;
    for _ in 0..100 {
        let mut r = agent
            .get(format!("{}/v1/outbox", env.url()))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .call()
            .unwrap();
        let v: Value = r.body_mut().read_json().unwrap();
        status = v["items"][0]["status"].clone();
        if status == "delivered" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(status, "delivered");
}

/// Everything the API acknowledged is there after a restart on the same
/// data dir.
#[test]
fn acknowledged_changes_survive_a_restart() {
    let env = Env::start();
    let api = Api::on(env);
    assert_eq!(
        api.add(
            "amos.marble@contoso.com",
            json!({"leader_pin": "908172", "conference_id": "8271964"})
        )
        .status,
        201
    );
    let r = reset(&api, "amos.marble@contoso.com");
    assert_eq!(r.status, 200, "{r:?}");
    let new_cid = r.body["conference_id"].as_str().unwrap().to_owned();
    assert_eq!(
        api.add("b@contoso.com", json!({"conference_id": "2222222"}))
            .status,
        201
    );
    assert_eq!(set_cid(&api, "b@contoso.com", "3333333").status, 200);
    assert_eq!(
        api.add("gone@contoso.com", json!({"conference_id": "4444444"}))
            .status,
        201
    );
    assert_eq!(api.delete("/v1/organizers/gone@contoso.com").status, 204);
    assert_eq!(
        api.add("dyn@contoso.com", json!({"mode": "dynamic"}))
            .status,
        201
    );
    let m = api.send(
        "POST",
        "/v1/meetings",
        Some(json!({"organizer": "dyn@contoso.com", "expires_at": "2099-01-01T00:00:00Z"})),
    );
    assert_eq!(m.status, 201);
    let meeting = m.body["id"].as_str().unwrap().to_owned();
    let meeting_cid = m.body["conference_id"].as_str().unwrap().to_owned();
    let before_amos = api.get("/v1/organizers/amos.marble@contoso.com").body;
    let before_list = all_organizers(&api);

    let Api { env, agent, .. } = api;
    let Env {
        daemon,
        config,
        data,
    } = env;
    daemon.stop();
    let api = Api::on(Env {
        daemon: TestDaemon::start(config.clone()),
        config,
        data,
    });
    drop(agent);

    assert_eq!(all_organizers(&api), before_list);
    let amos = api.get("/v1/organizers/amos.marble@contoso.com");
    assert_eq!(amos.status, 200);
    assert_eq!(amos.body["conference_id"], new_cid.as_str());
    assert_eq!(amos.body["has_leader_pin"], true);
    assert_eq!(amos.body["created_at"], before_amos["created_at"]);
    assert_eq!(amos.body["updated_at"], before_amos["updated_at"]);
    let old = api.get("/v1/conference-ids/8271964");
    assert_eq!(old.body["state"], "reset", "{old:?}");
    assert_eq!(old.body["organizer"], "amos.marble@contoso.com");
    let new = api.get(&format!("/v1/conference-ids/{new_cid}"));
    assert_eq!(new.body["state"], "active", "{new:?}");
    assert_eq!(new.body["organizer"], "amos.marble@contoso.com");
    // The quarantine holds across the restart.
    assert_error(
        &set_cid(&api, "b@contoso.com", "8271964"),
        409,
        "quarantined",
    );

    assert_eq!(api.get("/v1/conference-ids/2222222").body["state"], "reset");
    assert_eq!(
        api.get("/v1/conference-ids/3333333").body["state"],
        "active"
    );
    assert_eq!(api.get("/v1/conference-ids/4444444").body["state"], "reset");
    assert_error(
        &api.get("/v1/organizers/gone@contoso.com"),
        404,
        "not_found",
    );
    let m = api.get(&format!("/v1/meetings/{meeting}"));
    assert_eq!(m.status, 200);
    assert_eq!(m.body["conference_id"], meeting_cid.as_str());
    assert_eq!(m.body["expires_at"], "2099-01-01T00:00:00Z");
    assert_eq!(
        api.get(&format!("/v1/conference-ids/{meeting_cid}")).body["meeting"],
        meeting.as_str()
    );

    // The leader PIN was stored (the API never shows it): read the store
    // directly once the daemon has closed it.
    let Api { env, .. } = api;
    let dir = env.directory_dir();
    let settings = env.config.directory.clone();
    env.daemon.stop();
    let store = dialgate::directory::EmbeddedDirectory::open(&dir, &settings).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    use dialgate::directory::service::DirectoryService;
    let amos = rt
        .block_on(store.organizer("amos.marble@contoso.com".into()))
        .unwrap();
    assert_eq!(amos.leader_pin.as_deref(), Some("908172"));
    store.close();
}

#[test]
fn refuses_a_public_admin_api_without_a_token() {
    let data = tempfile::tempdir().unwrap();
    let mut config = admin_support::test_config(data.path());
    config.admin.listen = "0.0.0.0:0".into();
    config.admin.token = None;
    let problems = config.validate();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("admin.listen") && problems[0].contains("admin.token"),
        "{problems:?}"
    );
    let e = TestDaemon::try_start(config.clone())
        .err()
        .expect("daemon refuses to start");
    assert!(
        e.contains("admin.listen") && e.contains("admin.token"),
        "{e}"
    );
    // With a token it is allowed (and a wildcard address is not needed to
    // prove that: validation is all that differs).
    config.admin.token = Some(TOKEN.into());
    assert!(config.validate().is_empty(), "{:?}", config.validate());
}

/// Concurrent creates and resets through the API never hand out one ID twice.
#[test]
fn concurrent_changes_never_share_an_id() {
    let api = std::sync::Arc::new(Api::start());
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let api = std::sync::Arc::clone(&api);
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                for i in 0..10 {
                    let org = format!("w{w}u{i}@contoso.com");
                    let r = api.add(&org, json!({}));
                    assert_eq!(r.status, 201, "{r:?}");
                    ids.push(r.body["conference_id"].as_str().unwrap().to_owned());
                    let r = reset(&api, &org);
                    assert_eq!(r.status, 200, "{r:?}");
                    ids.push(r.body["conference_id"].as_str().unwrap().to_owned());
                }
                ids
            })
        })
        .collect();
    let mut all: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    let issued = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), issued, "an ID was issued twice");
    assert_eq!(all_organizers(&api).len(), 60);
}
