//! The operator CLI: `dialgate organizer|meeting|conference-id ...`, a thin
//! client of the admin API.
//!
//! The binary embeds [`AdminCommand`] as subcommands, flattens
//! [`ClientOptions`] and calls [`run`]. Output is aligned `key: value`
//! lines, or the API's JSON with `--json`. Exit status: 0 on success, 1 when
//! the API refused a request (printed as `error: <message> (<code>)`), could
//! not be reached, or (for `import`) any row failed.

use anyhow::Context as _;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::api::{
    ConferenceIdView, ErrorBody, MeetingView, OrganizerPage, OrganizerView, ResetView, MAX_PAGE,
};

/// Where the admin API is and how to talk to it.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientOptions {
    /// Base URL of the admin API.
    #[arg(
        long,
        global = true,
        env = "DIALGATE_ADMIN_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub admin_url: String,
    /// Bearer token for the admin API. Prefer the environment variable:
    /// command lines are visible to other local users.
    #[arg(
        long,
        global = true,
        env = "DIALGATE_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Print the API's JSON responses instead of `key: value` lines.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            admin_url: "http://127.0.0.1:8080".to_owned(),
            token: None,
            json: false,
        }
    }
}

/// Operator commands, each one or more admin API calls.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AdminCommand {
    /// Organizers enabled for audio conferencing.
    #[command(subcommand)]
    Organizer(OrganizerCommand),
    /// Scheduled meetings with their own (dynamic) conference IDs.
    #[command(subcommand)]
    Meeting(MeetingCommand),
    /// Conference-ID status.
    #[command(subcommand)]
    ConferenceId(ConferenceIdCommand),
}

/// How an organizer's meetings get conference IDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    /// One conference ID for all the organizer's meetings.
    Static,
    /// A conference ID per scheduled meeting.
    Dynamic,
}

impl ModeArg {
    fn as_str(self) -> &'static str {
        match self {
            ModeArg::Static => "static",
            ModeArg::Dynamic => "dynamic",
        }
    }
}

/// `dialgate organizer ...`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum OrganizerCommand {
    /// Enable an organizer (assigns a conference ID unless one is given).
    Add {
        /// Organizer identifier, e.g. amos.marble@contoso.com.
        id: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Email address for conference-info notices.
        #[arg(long)]
        email: String,
        /// Leader PIN (4 to 12 digits).
        #[arg(long)]
        pin: Option<String>,
        /// Conference-ID mode (default: the directory's configured mode).
        #[arg(long, value_enum)]
        mode: Option<ModeArg>,
        /// A chosen static conference ID instead of an assigned one.
        #[arg(long)]
        conference_id: Option<String>,
    },
    /// Show one organizer.
    Show { id: String },
    /// List organizers, ordered by id.
    List {
        /// Start after this organizer id.
        #[arg(long)]
        after: Option<String>,
        /// Page size (1 to 1000).
        #[arg(long)]
        limit: Option<usize>,
        /// Follow pages to the end.
        #[arg(long)]
        all: bool,
    },
    /// Give an organizer a chosen static conference ID.
    SetConferenceId { id: String, conference_id: String },
    /// Issue a new conference ID; the old one stops working.
    ResetConferenceId { id: String },
    /// Email the organizer their conference ID and dial-in numbers.
    SendConferenceInfo { id: String },
    /// Remove an organizer; their conference IDs stop working.
    Remove { id: String },
    /// Add organizers from a CSV file with a header row:
    /// id,display_name,email[,leader_pin][,mode][,conference_id]
    Import { file: PathBuf },
}

/// `dialgate meeting ...`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum MeetingCommand {
    /// Create a meeting with its own conference ID.
    Create {
        /// Organizer id (must use dynamic conference IDs).
        #[arg(long)]
        organizer: String,
        /// End of the meeting, RFC 3339 (e.g. 2026-12-01T15:00:00Z).
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// Show one meeting.
    Show { id: String },
    /// Remove a meeting; its conference ID stops working.
    Remove { id: String },
}

/// `dialgate conference-id ...`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ConferenceIdCommand {
    /// What a conference ID does now: active, reset, expired or unknown.
    Show { conference_id: String },
}

/// Runs `cmd` against the API, printing to stdout/stderr.
///
/// `Ok(code)` covers every outcome the API decides (including refusals,
/// exit 1) and an unreachable API (exit 1); `Err` is a local problem such
/// as an unreadable import file, which the binary prints and exits 1 on.
pub fn run(cmd: AdminCommand, opts: &ClientOptions) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    run_with(cmd, opts, &mut stdout.lock(), &mut stderr.lock())
}

/// [`run`] writing to the given streams (for tests and embedding).
pub fn run_with(
    cmd: AdminCommand,
    opts: &ClientOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let client = Client::new(opts);
    let mut ctx = Ctx {
        client,
        json: opts.json,
        out,
        err,
    };
    match ctx.dispatch(cmd) {
        Ok(code) => Ok(code),
        Err(Failure::Local(e)) => Err(e),
        Err(Failure::Api(e)) => {
            writeln!(ctx.err, "error: {} ({})", e.message, e.code)?;
            Ok(ExitCode::from(1))
        }
        Err(Failure::Transport(msg)) => {
            writeln!(ctx.err, "error: {msg}")?;
            Ok(ExitCode::from(1))
        }
    }
}

// ---------------------------------------------------------------- client

/// An error answer from the API.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ApiFailure {
    status: u16,
    code: String,
    message: String,
}

enum Failure {
    Api(ApiFailure),
    Transport(String),
    Local(anyhow::Error),
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Local(e.into())
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Local(e)
    }
}

struct Client {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

#[derive(Clone, Copy)]
enum Method {
    Get,
    Post,
    Put,
    Delete,
}

/// Percent-encodes a path segment (RFC 3986 §3.3: unreserved and `@` pass).
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    // "." and ".." would be taken as dot-segments.
    if out == "." || out == ".." {
        out = out.replace('.', "%2E");
    }
    out
}

impl Client {
    fn new(opts: &ClientOptions) -> Self {
        let config = ureq::Agent::config_builder()
            // Read JSON error bodies instead of turning 4xx/5xx into Err.
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build();
        Client {
            agent: config.new_agent(),
            base: opts.admin_url.trim_end_matches('/').to_owned(),
            token: opts.token.clone().filter(|t| !t.is_empty()),
        }
    }

    /// One request; `Ok` carries the JSON body (`Null` for 204).
    fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        let url = format!("{}{path}", self.base);
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let result = match method {
            Method::Get | Method::Delete => {
                let mut req = if matches!(method, Method::Get) {
                    self.agent.get(&url)
                } else {
                    self.agent.delete(&url)
                };
                for (k, v) in query {
                    req = req.query(*k, v);
                }
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req.call()
            }
            Method::Post | Method::Put => {
                let mut req = if matches!(method, Method::Post) {
                    self.agent.post(&url)
                } else {
                    self.agent.put(&url)
                };
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                match body {
                    Some(b) => req.send_json(b),
                    None => req.send_empty(),
                }
            }
        };
        let mut resp = result.map_err(|e| self.transport(e))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| self.transport(e))?;
        if (200..300).contains(&status) {
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_str(&text).map_err(|e| {
                Failure::Transport(format!(
                    "the admin API at {} sent invalid JSON: {e}",
                    self.base
                ))
            });
        }
        Err(Failure::Api(
            match serde_json::from_str::<ErrorBody>(&text) {
                Ok(b) => ApiFailure {
                    status,
                    code: b.error.code,
                    message: b.error.message,
                },
                Err(_) => ApiFailure {
                    status,
                    code: format!("http_{status}"),
                    message: format!("the server answered HTTP {status}"),
                },
            },
        ))
    }

    fn transport(&self, e: ureq::Error) -> Failure {
        let refused = matches!(&e, ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused)
            || matches!(e, ureq::Error::ConnectionFailed);
        if refused {
            Failure::Transport(format!(
                "cannot connect to the admin API at {} (connection refused): is dialgate \
                 running, and is --admin-url / DIALGATE_ADMIN_URL right?",
                self.base
            ))
        } else {
            Failure::Transport(format!("admin API at {}: {e}", self.base))
        }
    }
}

// -------------------------------------------------------------- commands

struct Ctx<'a> {
    client: Client,
    json: bool,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
}

/// Aligned `key: value` lines; a multi-line value continues under itself.
fn write_fields(out: &mut dyn Write, fields: &[(&str, String)]) -> std::io::Result<()> {
    let width = fields.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    for (key, value) in fields {
        let mut lines = value.lines();
        let first = lines.next().unwrap_or("");
        writeln!(out, "{:width$} {first}", format!("{key}:"))?;
        for line in lines {
            writeln!(out, "{:width$} {line}", "")?;
        }
    }
    Ok(())
}

fn typed<T: DeserializeOwned>(v: Value) -> Result<T, Failure> {
    serde_json::from_value(v)
        .map_err(|e| Failure::Transport(format!("unexpected response from the admin API: {e}")))
}

fn dial_in_lines(numbers: &[super::DialInNumberView]) -> String {
    if numbers.is_empty() {
        return "-".to_owned();
    }
    let width = numbers.iter().map(|d| d.number.len()).max().unwrap_or(0);
    numbers
        .iter()
        .map(|d| format!("{:width$}  {} ({})", d.number, d.label, d.language))
        .collect::<Vec<_>>()
        .join("\n")
}

fn organizer_fields(o: &OrganizerView) -> Vec<(&'static str, String)> {
    vec![
        ("id", o.id.clone()),
        ("display name", o.display_name.clone()),
        ("email", o.email.clone()),
        ("mode", mode_str(o.mode).to_owned()),
        (
            "conference ID",
            o.conference_id.map_or("-".to_owned(), |c| c.to_string()),
        ),
        (
            "leader PIN",
            if o.has_leader_pin { "set" } else { "not set" }.to_owned(),
        ),
        ("dial-in numbers", dial_in_lines(&o.dial_in_numbers)),
        ("created", o.created_at.clone()),
        ("updated", o.updated_at.clone()),
    ]
}

fn mode_str(m: crate::directory::service::IdMode) -> &'static str {
    match m {
        crate::directory::service::IdMode::Static => "static",
        crate::directory::service::IdMode::Dynamic => "dynamic",
    }
}

impl Ctx<'_> {
    fn dispatch(&mut self, cmd: AdminCommand) -> Result<ExitCode, Failure> {
        match cmd {
            AdminCommand::Organizer(c) => self.organizer(c),
            AdminCommand::Meeting(c) => self.meeting(c),
            AdminCommand::ConferenceId(ConferenceIdCommand::Show { conference_id }) => {
                let v = self.client.call(
                    Method::Get,
                    &format!("/v1/conference-ids/{}", segment(&conference_id)),
                    &[],
                    None,
                )?;
                if self.print_json(&v)? {
                    return Ok(ExitCode::SUCCESS);
                }
                let s: ConferenceIdView = typed(v)?;
                let mut fields = vec![
                    ("conference ID", s.conference_id.to_string()),
                    ("state", s.state.clone()),
                ];
                let optional = [
                    ("organizer", s.organizer),
                    ("meeting", s.meeting),
                    ("since", s.since),
                    ("at", s.at),
                    ("quarantined until", s.quarantined_until),
                ];
                fields.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
                write_fields(self.out, &fields)?;
                Ok(ExitCode::SUCCESS)
            }
        }
    }

    /// With `--json`, prints `v` and returns true.
    fn print_json(&mut self, v: &Value) -> Result<bool, Failure> {
        if !self.json {
            return Ok(false);
        }
        if !v.is_null() {
            let text = serde_json::to_string_pretty(v).map_err(anyhow::Error::from)?;
            writeln!(self.out, "{text}")?;
        }
        Ok(true)
    }

    fn show_organizer(&mut self, v: Value) -> Result<ExitCode, Failure> {
        if self.print_json(&v)? {
            return Ok(ExitCode::SUCCESS);
        }
        let o: OrganizerView = typed(v)?;
        write_fields(self.out, &organizer_fields(&o))?;
        Ok(ExitCode::SUCCESS)
    }

    fn organizer(&mut self, cmd: OrganizerCommand) -> Result<ExitCode, Failure> {
        match cmd {
            OrganizerCommand::Add {
                id,
                name,
                email,
                pin,
                mode,
                conference_id,
            } => {
                let mut body = json!({"id": id, "display_name": name, "email": email});
                if let Some(pin) = pin {
                    body["leader_pin"] = json!(pin);
                }
                if let Some(mode) = mode {
                    body["mode"] = json!(mode.as_str());
                }
                if let Some(cid) = conference_id {
                    body["conference_id"] = json!(cid);
                }
                let v = self
                    .client
                    .call(Method::Post, "/v1/organizers", &[], Some(&body))?;
                self.show_organizer(v)
            }
            OrganizerCommand::Show { id } => {
                let v = self.client.call(
                    Method::Get,
                    &format!("/v1/organizers/{}", segment(&id)),
                    &[],
                    None,
                )?;
                self.show_organizer(v)
            }
            OrganizerCommand::List { after, limit, all } => self.list(after, limit, all),
            OrganizerCommand::SetConferenceId { id, conference_id } => {
                let v = self.client.call(
                    Method::Put,
                    &format!("/v1/organizers/{}/conference-id", segment(&id)),
                    &[],
                    Some(&json!({"conference_id": conference_id})),
                )?;
                self.show_organizer(v)
            }
            OrganizerCommand::ResetConferenceId { id } => {
                let v = self.client.call(
                    Method::Post,
                    &format!("/v1/organizers/{}/conference-id/reset", segment(&id)),
                    &[],
                    None,
                )?;
                if self.print_json(&v)? {
                    return Ok(ExitCode::SUCCESS);
                }
                let r: ResetView = typed(v)?;
                let mut fields = vec![
                    ("organizer", r.organizer.id.clone()),
                    ("previous conference ID", r.previous.to_string()),
                    ("new conference ID", r.conference_id.to_string()),
                ];
                match (&r.notice_id, &r.notice_error) {
                    (Some(n), _) => fields.push(("email queued", n.clone())),
                    (None, Some(e)) => fields.push(("email not queued", e.clone())),
                    (None, None) => {}
                }
                write_fields(self.out, &fields)?;
                Ok(ExitCode::SUCCESS)
            }
            OrganizerCommand::SendConferenceInfo { id } => {
                let v = self.client.call(
                    Method::Post,
                    &format!("/v1/organizers/{}/send-conference-info", segment(&id)),
                    &[],
                    None,
                )?;
                if self.print_json(&v)? {
                    return Ok(ExitCode::SUCCESS);
                }
                let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("-").to_owned();
                write_fields(
                    self.out,
                    &[("email queued", field("notice_id")), ("to", field("to"))],
                )?;
                Ok(ExitCode::SUCCESS)
            }
            OrganizerCommand::Remove { id } => {
                self.client.call(
                    Method::Delete,
                    &format!("/v1/organizers/{}", segment(&id)),
                    &[],
                    None,
                )?;
                if !self.json {
                    writeln!(self.out, "removed organizer {id}")?;
                }
                Ok(ExitCode::SUCCESS)
            }
            OrganizerCommand::Import { file } => self.import(file),
        }
    }

    fn list(
        &mut self,
        mut after: Option<String>,
        limit: Option<usize>,
        all: bool,
    ) -> Result<ExitCode, Failure> {
        let mut items: Vec<Value> = Vec::new();
        let next = loop {
            let mut query = Vec::new();
            if let Some(a) = &after {
                query.push(("after", a.clone()));
            }
            let page_size = limit.unwrap_or(if all { MAX_PAGE } else { 100 });
            query.push(("limit", page_size.to_string()));
            let v = self
                .client
                .call(Method::Get, "/v1/organizers", &query, None)?;
            let next = v.get("next").and_then(Value::as_str).map(str::to_owned);
            if let Some(Value::Array(page)) = v.get("items") {
                items.extend(page.iter().cloned());
            }
            match next {
                Some(n) if all => after = Some(n),
                other => break other,
            }
        };
        let v = json!({"items": items, "next": next});
        if self.print_json(&v)? {
            return Ok(ExitCode::SUCCESS);
        }
        let page: OrganizerPage = typed(v)?;
        let rows: Vec<[String; 4]> = page
            .items
            .iter()
            .map(|o| {
                [
                    o.id.clone(),
                    o.conference_id.map_or("-".to_owned(), |c| c.to_string()),
                    mode_str(o.mode).to_owned(),
                    o.display_name.clone(),
                ]
            })
            .collect();
        let header = [
            "ID".to_owned(),
            "CONFERENCE ID".to_owned(),
            "MODE".to_owned(),
            "NAME".to_owned(),
        ];
        let mut widths = [0usize; 4];
        for row in std::iter::once(&header).chain(rows.iter()) {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for row in std::iter::once(&header).chain(rows.iter()) {
            writeln!(
                self.out,
                "{:w0$}  {:w1$}  {:w2$}  {}",
                row[0],
                row[1],
                row[2],
                row[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            )?;
        }
        if let Some(n) = page.next {
            writeln!(self.out, "(more: organizer list --after {n}, or --all)")?;
        }
        Ok(ExitCode::SUCCESS)
    }

    fn import(&mut self, file: PathBuf) -> Result<ExitCode, Failure> {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let records = parse_csv(&text).with_context(|| format!("{}", file.display()))?;
        let mut records = records.into_iter();
        let Some((_, header)) = records.next() else {
            return Err(
                anyhow::anyhow!("{}: empty file (expected a header row)", file.display()).into(),
            );
        };
        let columns = ImportColumns::from_header(&header)
            .with_context(|| format!("{}: line 1", file.display()))?;
        let (mut ok, mut failed) = (0usize, 0usize);
        for (line, fields) in records {
            let body = match columns.body(&fields) {
                Ok(b) => b,
                Err(msg) => {
                    failed += 1;
                    writeln!(self.err, "line {line}: error: {msg}")?;
                    continue;
                }
            };
            match self
                .client
                .call(Method::Post, "/v1/organizers", &[], Some(&body))
            {
                Ok(v) => {
                    ok += 1;
                    if self.json {
                        writeln!(self.out, "{v}")?;
                    }
                }
                Err(Failure::Api(e)) => {
                    failed += 1;
                    let id = body.get("id").and_then(Value::as_str).unwrap_or("");
                    writeln!(
                        self.err,
                        "line {line}: {id}: error: {} ({})",
                        e.message, e.code
                    )?;
                }
                Err(Failure::Transport(msg)) => {
                    writeln!(
                        self.err,
                        "line {line}: error: {msg}\nstopped: imported {ok}, failed {failed}, \
                         rows from line {line} on not attempted"
                    )?;
                    return Ok(ExitCode::from(1));
                }
                Err(other) => return Err(other),
            }
        }
        let summary = format!(
            "imported {ok} of {} organizers, {failed} failed",
            ok + failed
        );
        if self.json {
            writeln!(self.err, "{summary}")?;
        } else {
            writeln!(self.out, "{summary}")?;
        }
        Ok(if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }

    fn meeting(&mut self, cmd: MeetingCommand) -> Result<ExitCode, Failure> {
        let v = match cmd {
            MeetingCommand::Create {
                organizer,
                expires_at,
            } => {
                let mut body = json!({"organizer": organizer});
                if let Some(e) = expires_at {
                    body["expires_at"] = json!(e);
                }
                self.client
                    .call(Method::Post, "/v1/meetings", &[], Some(&body))?
            }
            MeetingCommand::Show { id } => self.client.call(
                Method::Get,
                &format!("/v1/meetings/{}", segment(&id)),
                &[],
                None,
            )?,
            MeetingCommand::Remove { id } => {
                self.client.call(
                    Method::Delete,
                    &format!("/v1/meetings/{}", segment(&id)),
                    &[],
                    None,
                )?;
                if !self.json {
                    writeln!(self.out, "removed meeting {id}")?;
                }
                return Ok(ExitCode::SUCCESS);
            }
        };
        if self.print_json(&v)? {
            return Ok(ExitCode::SUCCESS);
        }
        let m: MeetingView = typed(v)?;
        write_fields(
            self.out,
            &[
                ("meeting", m.id),
                ("organizer", m.organizer),
                ("conference ID", m.conference_id.to_string()),
                (
                    "expires",
                    m.expires_at.unwrap_or_else(|| "never".to_owned()),
                ),
                ("dial-in numbers", dial_in_lines(&m.dial_in_numbers)),
                ("created", m.created_at),
            ],
        )?;
        Ok(ExitCode::SUCCESS)
    }
}

// ------------------------------------------------------------------ CSV

/// Column positions of an import file, from its header row.
#[derive(Debug)]
struct ImportColumns {
    id: usize,
    display_name: usize,
    email: usize,
    leader_pin: Option<usize>,
    mode: Option<usize>,
    conference_id: Option<usize>,
    /// Number of header columns.
    width: usize,
}

impl ImportColumns {
    fn from_header(header: &[String]) -> anyhow::Result<Self> {
        let find = |name: &str| {
            header
                .iter()
                .position(|h| h.trim().eq_ignore_ascii_case(name))
        };
        for h in header {
            let known = [
                "id",
                "display_name",
                "email",
                "leader_pin",
                "mode",
                "conference_id",
            ];
            if !known.iter().any(|k| h.trim().eq_ignore_ascii_case(k)) {
                anyhow::bail!(
                    "unknown column {h:?} (columns: id,display_name,email[,leader_pin][,mode][,conference_id])"
                );
            }
        }
        let required = |name: &str| {
            find(name).ok_or_else(|| anyhow::anyhow!("header row lacks the {name} column"))
        };
        Ok(ImportColumns {
            id: required("id")?,
            display_name: required("display_name")?,
            email: required("email")?,
            leader_pin: find("leader_pin"),
            mode: find("mode"),
            conference_id: find("conference_id"),
            width: header.len(),
        })
    }

    /// The create-organizer body for one row; empty optional cells are absent.
    fn body(&self, fields: &[String]) -> Result<Value, String> {
        let cell = |i: usize| fields.get(i).map(|s| s.as_str()).unwrap_or("");
        let required = self.id.max(self.display_name).max(self.email);
        if fields.len() <= required {
            return Err(format!(
                "expected at least {} fields, found {}",
                required + 1,
                fields.len()
            ));
        }
        if fields.len() > self.width {
            return Err(format!(
                "{} fields, but the header has {} columns",
                fields.len(),
                self.width
            ));
        }
        let mut body = json!({
            "id": cell(self.id),
            "display_name": cell(self.display_name),
            "email": cell(self.email),
        });
        for (key, col) in [
            ("leader_pin", self.leader_pin),
            ("mode", self.mode),
            ("conference_id", self.conference_id),
        ] {
            if let Some(c) = col.map(cell).filter(|v| !v.is_empty()) {
                body[key] = json!(c);
            }
        }
        Ok(body)
    }
}

/// Why a CSV file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct CsvError {
    pub line: usize,
    pub reason: &'static str,
}

/// Parses RFC 4180 CSV: comma-separated, fields optionally in double
/// quotes (`""` inside is a quote; quoted fields may span lines), LF or
/// CRLF line ends, a leading UTF-8 BOM ignored, blank lines skipped.
/// Unquoted fields are trimmed. Returns each record with the line it starts on.
pub fn parse_csv(text: &str) -> Result<Vec<(usize, Vec<String>)>, CsvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1usize;
    loop {
        // One record.
        let start = line;
        let mut fields: Vec<String> = Vec::new();
        let ended_by_eof;
        loop {
            // One field.
            let mut field = String::new();
            while matches!(chars.peek(), Some(' ' | '\t')) {
                chars.next();
            }
            if chars.peek() == Some(&'"') {
                chars.next();
                let quote_line = line;
                loop {
                    match chars.next() {
                        None => {
                            return Err(CsvError {
                                line: quote_line,
                                reason: "unterminated quoted field",
                            })
                        }
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some('"') => break,
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            field.push(c);
                        }
                    }
                }
                while matches!(chars.peek(), Some(' ' | '\t')) {
                    chars.next();
                }
                if !matches!(chars.peek(), None | Some(',' | '\r' | '\n')) {
                    return Err(CsvError {
                        line,
                        reason: "text after a closing quote",
                    });
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if matches!(c, ',' | '\r' | '\n') {
                        break;
                    }
                    if c == '"' {
                        return Err(CsvError {
                            line,
                            reason: "quote inside an unquoted field",
                        });
                    }
                    field.push(c);
                    chars.next();
                }
                let trimmed = field.trim_end().len();
                field.truncate(trimmed);
            }
            fields.push(field);
            match chars.next() {
                Some(',') => continue,
                Some('\r') => {
                    if chars.peek() == Some(&'\n') {
                        chars.next();
                    }
                    line += 1;
                    ended_by_eof = false;
                    break;
                }
                Some('\n') => {
                    line += 1;
                    ended_by_eof = false;
                    break;
                }
                _ => {
                    ended_by_eof = true;
                    break;
                }
            }
        }
        let blank = fields.len() == 1 && fields.first().is_some_and(|f| f.is_empty());
        if !blank {
            records.push((start, fields));
        }
        if ended_by_eof {
            return Ok(records);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        opts: ClientOptions,
        #[command(subcommand)]
        cmd: AdminCommand,
    }

    #[test]
    fn command_line_shape() {
        let cli = Cli::try_parse_from([
            "dialgate",
            "organizer",
            "add",
            "amos@contoso.com",
            "--name",
            "Amos Marble",
            "--email",
            "amos@contoso.com",
            "--mode",
            "dynamic",
            "--json",
        ])
        .unwrap();
        assert!(cli.opts.json);
        assert!(matches!(
            cli.cmd,
            AdminCommand::Organizer(OrganizerCommand::Add {
                mode: Some(ModeArg::Dynamic),
                ..
            })
        ));
        let cli = Cli::try_parse_from([
            "dialgate",
            "--admin-url",
            "http://10.0.0.1:9000",
            "conference-id",
            "show",
            "8271964",
        ])
        .unwrap();
        assert_eq!(cli.opts.admin_url, "http://10.0.0.1:9000");
        assert!(Cli::try_parse_from(["dialgate", "organizer", "set-conference-id", "a"]).is_err());
        assert!(Cli::try_parse_from(["dialgate", "meeting", "create", "--organizer", "x"]).is_ok());
    }

    #[test]
    fn csv_quotes_and_lines() {
        let text = "\u{feff}id,display_name,email\r\n\
                    a@x.com, \"Marble, Amos\" ,a@x.com\r\n\
                    \n\
                    b@x.com,\"Say \"\"hi\"\"\nsecond line\",b@x.com\n\
                    c@x.com,C,c@x.com";
        let recs = parse_csv(text).unwrap();
        assert_eq!(recs.len(), 4);
        assert_eq!(
            recs[1],
            (
                2,
                vec!["a@x.com".into(), "Marble, Amos".into(), "a@x.com".into()]
            )
        );
        assert_eq!(recs[2].0, 4);
        assert_eq!(recs[2].1[1], "Say \"hi\"\nsecond line");
        assert_eq!(recs[3].0, 6);
        assert_eq!(parse_csv("a,\"b\nc").unwrap_err().line, 1);
        assert_eq!(parse_csv("a\nb,\"x\"y").unwrap_err().line, 2);
        assert_eq!(parse_csv("a\nb,x\"y").unwrap_err().line, 2);
        assert!(parse_csv("").unwrap().is_empty());
    }

    #[test]
    fn import_columns() {
        let header: Vec<String> = ["id", "display_name", "email", "leader_pin", "conference_id"]
            .map(String::from)
            .to_vec();
        let cols = ImportColumns::from_header(&header).unwrap();
        let row: Vec<String> = ["a@x.com", "A", "a@x.com", "", "8271964"]
            .map(String::from)
            .to_vec();
        let body = cols.body(&row).unwrap();
        assert_eq!(body["conference_id"], "8271964");
        assert!(body.get("leader_pin").is_none());
        let short: Vec<String> = ["a@x.com", "A", "a@x.com", "1234"]
            .map(String::from)
            .to_vec();
        assert!(
            cols.body(&short).is_ok(),
            "trailing optional column may be omitted"
        );
        assert!(cols.body(&["a".to_owned()]).is_err());
        assert!(ImportColumns::from_header(&["id".to_owned(), "nme".to_owned()]).is_err());
        assert!(ImportColumns::from_header(&["id".to_owned(), "email".to_owned()]).is_err());
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(
            segment("amos.marble@contoso.com"),
            "amos.marble@contoso.com"
        );
        assert_eq!(segment("a/b c?"), "a%2Fb%20c%3F");
        assert_eq!(segment(".."), "%2E%2E");
    }

    proptest::proptest! {
        #[test]
        fn csv_never_panics(s in "[a-z,\"\r\n \u{feff}]{0,60}") {
            if let Ok(records) = parse_csv(&s) {
                for (line, _) in records {
                    proptest::prop_assert!(line >= 1);
                }
            }
        }
    }
}
