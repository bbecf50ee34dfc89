//! Typed configuration: the embedded defaults, a TOML file, and
//! `DIALGATE__<SECTION>__<KEY>` environment overrides, in that order.
//!
//! Every section is a plain serde struct with `deny_unknown_fields`, so a
//! misspelt key is an error naming the key. Loading happens in two steps:
//! first the shape (types, unknown keys: the first error found, with its
//! key path), then the meaning ([`Config::validate`]: every problem at once).
//! Nothing binds a port before the whole config has passed both.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Where `dialgate serve` looks for its config when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "config/dialgate.toml";
/// Prefix of environment overrides: `DIALGATE__SIP__MAX_CALLS=500`.
pub const ENV_PREFIX: &str = "DIALGATE";
/// Environment variable holding the admin API token (read by the CLI too).
pub const ADMIN_TOKEN_ENV: &str = "DIALGATE_ADMIN_TOKEN";
/// Separator between the prefix, section and key in environment overrides.
/// Two underscores, because keys themselves contain single underscores.
pub const ENV_SEPARATOR: &str = "__";

/// The whole daemon configuration.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub sip: SipSettings,
    pub rtp: RtpSettings,
    pub log: LogSettings,
    /// The numbers callers dial; the Request-URI is matched against them.
    pub dial_in_numbers: Vec<DialInNumber>,
    /// Carriers allowed to send INVITEs, by source address.
    pub trunks: Vec<Trunk>,
    /// RTP media, prompts and the pacer.
    pub media: crate::media::MediaSettings,
    /// DTMF detection.
    pub dtmf: crate::dtmf::DtmfSettings,
    /// The auto attendant: digit collection, attempts, guessing defence.
    pub ivr: crate::ivr::IvrSettings,
    /// The conference-ID directory and its embedded durable store.
    pub directory: crate::directory::DirectorySettings,
    /// The embedded conference bridge.
    pub bridge: crate::bridge::BridgeSettings,
    /// The admin HTTP API.
    pub admin: crate::admin::AdminSettings,
    /// Email notices to organizers.
    pub notify: crate::notify::NotifySettings,
}

/// SIP front end settings (`[sip]`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipSettings {
    /// Listeners, each `udp:ADDR:PORT` or `tcp:ADDR:PORT` (IPv6 as `udp:[::1]:5060`).
    pub listen: Vec<ListenSpec>,
    /// Address put in Contact, Via and SDP when the listen address is a wildcard
    /// or behind NAT. `None`: the local address of the socket.
    pub advertised_address: Option<IpAddr>,
    /// Concurrent calls; INVITEs beyond it get 503 with Retry-After.
    pub max_calls: usize,
    /// Retry-After (seconds) sent with 503 when overloaded or shutting down.
    pub retry_after: u32,
    /// On SIGTERM, how long running calls may go on before they get BYE.
    #[serde(with = "duration_serde")]
    pub shutdown_grace: Duration,
    /// Accept INVITEs from any source, not only configured trunks (labs only).
    pub allow_any_source: bool,
    /// Largest SIP message accepted (bytes); larger TCP messages get 513.
    pub max_message_size: usize,
    /// Value of the User-Agent / Server header.
    pub user_agent: String,
    /// Transaction timers (RFC 3261 §17.1.1.1).
    pub timers: SipTimers,
}

impl Default for SipSettings {
    fn default() -> Self {
        SipSettings {
            listen: vec![
                ListenSpec {
                    transport: Transport::Udp,
                    addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5060),
                },
                ListenSpec {
                    transport: Transport::Tcp,
                    addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5060),
                },
            ],
            advertised_address: None,
            max_calls: 5000,
            retry_after: 5,
            shutdown_grace: Duration::from_secs(30),
            allow_any_source: false,
            max_message_size: 65_536,
            user_agent: concat!("dialgate/", env!("CARGO_PKG_VERSION")).to_string(),
            timers: SipTimers::default(),
        }
    }
}

/// SIP timers T1, T2 and T4 (RFC 3261 §17.1.1.1, table 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipTimers {
    /// RTT estimate; retransmissions start at T1 and double.
    #[serde(with = "duration_serde")]
    pub t1: Duration,
    /// Cap of the retransmission interval.
    #[serde(with = "duration_serde")]
    pub t2: Duration,
    /// How long a message may stay in the network.
    #[serde(with = "duration_serde")]
    pub t4: Duration,
}

impl Default for SipTimers {
    fn default() -> Self {
        SipTimers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// SIP transport of a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    /// The Via transport token (RFC 3261 §20.42).
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    /// Whether the transport is reliable (no retransmissions, RFC 3261 §17).
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        })
    }
}

/// One SIP listener: transport and socket address, written `udp:127.0.0.1:5060`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenSpec {
    pub transport: Transport,
    pub addr: SocketAddr,
}

impl FromStr for ListenSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (transport, addr) = s.split_once(':').ok_or_else(|| {
            format!("{s:?} is not TRANSPORT:ADDRESS:PORT (e.g. udp:0.0.0.0:5060)")
        })?;
        let transport = match transport.to_ascii_lowercase().as_str() {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            other => return Err(format!("unknown transport {other:?} (expected udp or tcp)")),
        };
        let addr = addr.parse::<SocketAddr>().map_err(|_| {
            format!("{addr:?} is not an IP address with port (IPv6 in brackets: [::1]:5060)")
        })?;
        Ok(ListenSpec { transport, addr })
    }
}

impl fmt::Display for ListenSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.addr)
    }
}

impl Serialize for ListenSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ListenSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// RTP media settings (`[rtp]`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtpSettings {
    /// Local address RTP sockets bind to.
    pub bind_address: IpAddr,
    /// Address written in SDP `c=` lines. `None`: the bind address, or the
    /// SIP socket's address when the bind address is a wildcard.
    pub advertised_address: Option<IpAddr>,
    /// First port of the RTP range (even; RTCP uses the next odd port).
    pub port_min: u16,
    /// Last port of the RTP range (inclusive).
    pub port_max: u16,
}

impl Default for RtpSettings {
    fn default() -> Self {
        RtpSettings {
            bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            advertised_address: None,
            port_min: 20_000,
            port_max: 29_999,
        }
    }
}

/// Log output settings (`[log]`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `text` for people, `json` for log collectors.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `info,dialgate::sip=debug`.
    /// `RUST_LOG` overrides it when set.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: LogFormat::Text,
            level: "info".to_string(),
        }
    }
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

/// A dial-in number (`[[dial_in_numbers]]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialInNumber {
    /// E.164 number as published, e.g. `+1 425 555 0100`; matched on its digits.
    pub number: String,
    /// Prompt language for callers of this number.
    #[serde(default = "default_language")]
    pub language: String,
    /// What invitations call it, e.g. `toll` or `toll-free`.
    #[serde(default)]
    pub label: String,
    /// Bridge profile for this number (`bridge.profiles[].name`); `None`:
    /// `bridge.default_profile`, else the embedded bridge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    /// DTMF methods listened to for callers of this number; `None`: the
    /// trunk's, else `dtmf.mode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtmf_mode: Option<crate::dtmf::DtmfMode>,
}

fn default_language() -> String {
    "en".to_string()
}

impl DialInNumber {
    /// The digits the Request-URI is matched against (no `+`, no separators).
    pub fn digits(&self) -> Option<String> {
        normalize_number(&self.number)
    }
}

/// A SIP trunk (`[[trunks]]`): the carrier's source addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trunk {
    pub name: String,
    /// Source networks, e.g. `192.0.2.0/24`, `2001:db8::/32`, or a single address.
    pub sources: Vec<Cidr>,
    /// DTMF methods listened to for calls from this trunk (a carrier that
    /// strips telephone-events, say); `None`: `dtmf.mode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtmf_mode: Option<crate::dtmf::DtmfMode>,
}

impl Trunk {
    /// Whether `ip` is one of this trunk's sources.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.sources.iter().any(|c| c.contains(ip))
    }
}

/// An IP network in CIDR notation. Hand-written: it is a dozen lines and
/// the only thing we would use from an IP-network crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub network: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Whether `ip` lies in this network. IPv4-mapped IPv6 sources match IPv4 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{addr:?} is not an IP address"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("prefix length {p:?} is not 0..={max}"))?,
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Reduces a published or dialed number to its digits: drops a leading `+`
/// and the visual separators of RFC 3966 §5.1.1 (`-`, `.`, `(`, `)`, space).
/// `None` when anything else is left (letters, empty).
pub fn normalize_number(s: &str) -> Option<String> {
    let s = s.trim();
    let s = s.strip_prefix('+').unwrap_or(s);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '0'..='9' => out.push(c),
            '-' | '.' | '(' | ')' | ' ' => {}
            _ => return None,
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Parses a duration such as `500ms`, `30s`, `5m`, `1h`, `7d`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 500ms, 30s, 5m, 1h)"))?;
    let scale = match unit.trim() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} in {s:?} (use ms, s, m, h, d)"
            ))
        }
    };
    Duration::try_from_secs_f64(value * scale).map_err(|_| format!("{s:?} is out of range"))
}

/// Formats a duration the way [`parse_duration`] reads it.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 != 0 {
        format!("{ms}ms")
    } else if ms % 3_600_000 == 0 && ms > 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms % 60_000 == 0 && ms > 0 {
        format!("{}m", ms / 60_000)
    } else {
        format!("{}s", ms / 1000)
    }
}

/// Serde adapter for durations written as strings (`"30s"`) or bare seconds.
pub mod duration_serde {
    use super::{format_duration, parse_duration};
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Seconds(u64),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Text(s) => parse_duration(&s).map_err(serde::de::Error::custom),
            Raw::Seconds(n) => Ok(Duration::from_secs(n)),
        }
    }
}

/// Why the configuration could not be used. The message names the file,
/// the key and the reason; `check-config` prints it and exits non-zero.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config file: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{source_name}: {reason}")]
    Syntax { source_name: String, reason: String },
    #[error("{source_name}: key `{key}`: {reason}")]
    Key {
        source_name: String,
        key: String,
        reason: String,
    },
    #[error("{source_name}: {} problem(s):\n  - {}", .problems.len(), .problems.join("\n  - "))]
    Invalid {
        source_name: String,
        problems: Vec<String>,
    },
}

impl Config {
    /// Loads `path` (if `Some`) over the embedded defaults, then applies
    /// `DIALGATE__*` environment overrides, then validates.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    /// Like [`Config::load`] with an explicit environment (for tests).
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let source_name = match path {
            Some(p) => p.display().to_string(),
            None => "embedded defaults".to_string(),
        };
        let mut builder = config::Config::builder();
        if let Some(p) = path {
            let text = std::fs::read_to_string(p).map_err(|e| ConfigError::Read {
                path: p.to_path_buf(),
                reason: e.to_string(),
            })?;
            // Parse with `toml` first: its errors carry line and column.
            if let Err(e) = text.parse::<toml::Table>() {
                return Err(ConfigError::Syntax {
                    source_name,
                    reason: e.to_string().trim().replace('\n', " "),
                });
            }
            builder = builder.add_source(config::File::from_str(&text, config::FileFormat::Toml));
        } else {
            // No file: start from the embedded defaults (numbers and a loopback trunk).
            let text = Config::embedded().to_toml();
            builder = builder.add_source(config::File::from_str(&text, config::FileFormat::Toml));
        }
        let mut admin_token = None;
        let mut env_map: std::collections::HashMap<String, String> = env
            .into_iter()
            .filter(|(k, v)| {
                if k == ADMIN_TOKEN_ENV {
                    admin_token = Some(v.clone());
                }
                k.starts_with(&format!("{ENV_PREFIX}{ENV_SEPARATOR}"))
            })
            .collect();
        // The CLI's token variable also sets the daemon's token, so one
        // secret in the environment serves both; the explicit key wins.
        if let Some(token) = admin_token {
            env_map
                .entry(format!(
                    "{ENV_PREFIX}{ENV_SEPARATOR}ADMIN{ENV_SEPARATOR}TOKEN"
                ))
                .or_insert(token);
        }
        let env_names: Vec<String> = env_map.keys().cloned().collect();
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator(ENV_SEPARATOR)
                .separator(ENV_SEPARATOR)
                .list_separator(",")
                .with_list_parse_key("sip.listen")
                .try_parsing(true)
                .source(Some(env_map)),
        );
        let merged = builder.build().map_err(|e| ConfigError::Syntax {
            source_name: source_name.clone(),
            reason: e.to_string(),
        })?;
        let config: Config = serde_path_to_error::deserialize(merged).map_err(|e| {
            let key = e.path().to_string();
            let env_hint = env_names
                .iter()
                .find(|n| {
                    n.to_ascii_lowercase()
                        .replace(ENV_SEPARATOR, ".")
                        .ends_with(&key)
                })
                .map(|n| format!(" (set by environment variable {n})"))
                .unwrap_or_default();
            ConfigError::Key {
                source_name: source_name.clone(),
                key: if key == "." {
                    "(top level)".into()
                } else {
                    key
                },
                reason: format!(
                    "{}{env_hint}",
                    strip_config_noise(&e.into_inner().to_string())
                ),
            }
        })?;
        let problems = config.validate();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                source_name,
                problems,
            })
        }
    }

    /// Checks what types alone cannot: every problem is reported, each
    /// naming its key.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        let sip = &self.sip;
        if sip.listen.is_empty() {
            p.push("sip.listen: at least one listener is needed".into());
        }
        for (i, a) in sip.listen.iter().enumerate() {
            if sip.listen[..i].contains(a) {
                p.push(format!("sip.listen: {a} is listed twice"));
            }
        }
        if sip.max_calls == 0 {
            p.push("sip.max_calls: must be at least 1".into());
        }
        if !(1024..=1_048_576).contains(&sip.max_message_size) {
            p.push("sip.max_message_size: must be between 1024 and 1048576 bytes".into());
        }
        if sip.user_agent.trim().is_empty() || sip.user_agent.contains(['\r', '\n']) {
            p.push("sip.user_agent: must be a non-empty single line".into());
        }
        let t = &sip.timers;
        if t.t1.is_zero() {
            p.push("sip.timers.t1: must be greater than zero".into());
        }
        if t.t2 < t.t1 {
            p.push("sip.timers.t2: must not be smaller than sip.timers.t1".into());
        }
        if t.t4.is_zero() {
            p.push("sip.timers.t4: must be greater than zero".into());
        }
        if let Some(a) = sip.advertised_address {
            if a.is_unspecified() {
                p.push("sip.advertised_address: must not be a wildcard address".into());
            }
        }
        let rtp = &self.rtp;
        if rtp.port_min < 1024 {
            p.push("rtp.port_min: must be at least 1024".into());
        }
        if rtp.port_min % 2 != 0 {
            p.push(
                "rtp.port_min: must be even (RTP on even ports, RTCP on the next odd one)".into(),
            );
        }
        if rtp.port_max <= rtp.port_min {
            p.push("rtp.port_max: must be greater than rtp.port_min".into());
        }
        if let Some(a) = rtp.advertised_address {
            if a.is_unspecified() {
                p.push("rtp.advertised_address: must not be a wildcard address".into());
            }
        }
        for l in &sip.listen {
            let port = l.addr.port();
            if (rtp.port_min..=rtp.port_max).contains(&port) && port != 0 {
                p.push(format!(
                    "rtp.port_min/rtp.port_max: the RTP range {}-{} overlaps SIP listener {l}",
                    rtp.port_min, rtp.port_max
                ));
            }
        }
        if self.log.level.trim().is_empty()
            || tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err()
        {
            p.push(format!(
                "log.level: {:?} is not a valid filter (e.g. info, debug, info,dialgate=debug)",
                self.log.level
            ));
        }
        let mut seen: Vec<(String, usize)> = Vec::new();
        for (i, n) in self.dial_in_numbers.iter().enumerate() {
            if let Some(b) = &n.bridge {
                if !self.bridge.has_profile(b) {
                    p.push(format!(
                        "dial_in_numbers[{i}].bridge: no bridge.profiles entry is named {b:?}"
                    ));
                }
            }
            let key = format!("dial_in_numbers[{i}].number");
            match n.digits() {
                None => p.push(format!("{key}: {:?} is not a phone number (digits, optional +, separators - . ( ) space)", n.number)),
                Some(d) if d.len() > 15 => p.push(format!("{key}: {:?} has more than 15 digits (E.164)", n.number)),
                Some(d) => {
                    if let Some((_, j)) = seen.iter().find(|(s, _)| *s == d) {
                        p.push(format!("{key}: {:?} duplicates dial_in_numbers[{j}]", n.number));
                    } else {
                        seen.push((d, i));
                    }
                }
            }
            if n.language.is_empty()
                || !n
                    .language
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                p.push(format!(
                    "dial_in_numbers[{i}].language: {:?} is not a language tag (e.g. en, fr-CA)",
                    n.language
                ));
            }
        }
        for (i, t) in self.trunks.iter().enumerate() {
            if t.name.trim().is_empty() {
                p.push(format!("trunks[{i}].name: must not be empty"));
            }
            if t.sources.is_empty() {
                p.push(format!(
                    "trunks[{i}].sources: at least one source network is needed"
                ));
            }
            if self.trunks[..i].iter().any(|o| o.name == t.name) {
                p.push(format!(
                    "trunks[{i}].name: {:?} is used by another trunk",
                    t.name
                ));
            }
        }
        p.extend(self.media.validate());
        p.extend(self.dtmf.validate());
        p.extend(self.ivr.validate());
        p.extend(self.directory.validate());
        if self.ivr.id_length != self.directory.id_length {
            p.push(format!(
                "ivr.id_length: {} differs from directory.id_length {}; callers must key IDs of the length the directory issues",
                self.ivr.id_length, self.directory.id_length
            ));
        }
        p.extend(self.bridge.validate());
        p.extend(self.admin.validate());
        p.extend(self.notify.validate());
        if self.trunks.is_empty() && !sip.allow_any_source {
            p.push("trunks: no trunk is configured and sip.allow_any_source is false, so every call would be refused".into());
        }
        p
    }

    /// The dial-in number a normalised dialed number matches, if any.
    pub fn dial_in_number(&self, digits: &str) -> Option<&DialInNumber> {
        self.dial_in_numbers
            .iter()
            .find(|n| n.digits().as_deref() == Some(digits))
    }

    /// The trunk `ip` belongs to, if any.
    pub fn trunk_for(&self, ip: IpAddr) -> Option<&Trunk> {
        self.trunks.iter().find(|t| t.contains(ip))
    }

    /// The effective settings as TOML, as `check-config` prints them.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render settings: {e}\n"))
    }

    /// The embedded defaults: what `dialgate serve` runs on with no config
    /// file. Loopback only, one toll and one toll-free test number, and a
    /// loopback trunk so a softphone on the same machine can call.
    pub fn embedded() -> Config {
        Config {
            dial_in_numbers: vec![
                DialInNumber {
                    dtmf_mode: None,
                    number: "+1 425 555 0100".into(),
                    language: "en".into(),
                    label: "toll".into(),
                    bridge: None,
                },
                DialInNumber {
                    dtmf_mode: None,
                    number: "+1 800 555 0100".into(),
                    language: "en".into(),
                    label: "toll-free".into(),
                    bridge: None,
                },
            ],
            trunks: vec![Trunk {
                dtmf_mode: None,
                name: "loopback".into(),
                sources: vec![
                    Cidr {
                        network: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
                        prefix: 8,
                    },
                    Cidr {
                        network: IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
                        prefix: 128,
                    },
                ],
            }],
            ..Config::default()
        }
    }
}

/// The config crate prefixes some messages with its own location text;
/// the key path is reported separately, so keep only the reason.
fn strip_config_noise(s: &str) -> String {
    s.split(" for key ").next().unwrap_or(s).to_string()
}

/// Logging set-up for the daemon.
pub mod logging {
    use super::{LogFormat, LogSettings};
    use tracing_subscriber::EnvFilter;

    /// Installs the global subscriber. `RUST_LOG`, when set, overrides `log.level`.
    /// ANSI colours are off: SIP headers are attacker-controlled text.
    pub fn init(settings: &LogSettings) {
        let filter = EnvFilter::try_from_default_env()
            .or_else(|_| EnvFilter::try_new(&settings.level))
            .unwrap_or_else(|_| EnvFilter::new("info"));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(std::io::stderr);
        // A second init (tests starting several servers) is harmless: ignore it.
        let _ = match settings.format {
            LogFormat::Text => builder.try_init(),
            LogFormat::Json => builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .try_init(),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_config(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn load(text: &str) -> Result<Config, ConfigError> {
        let f = write_config(text);
        Config::load_with_env(Some(f.path()), Vec::new())
    }

    const MINIMAL: &str = r#"
[[dial_in_numbers]]
number = "+1 425 555 0100"
label = "toll"

[[trunks]]
name = "lab"
sources = ["127.0.0.0/8"]
"#;

    #[test]
    fn shipped_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_CONFIG_PATH);
        let c = Config::load_with_env(Some(&path), Vec::new()).unwrap();
        assert!(!c.dial_in_numbers.is_empty());
        assert!(c.validate().is_empty());
        // The shipped file documents the embedded defaults, nothing else.
        assert_eq!(c.to_toml(), Config::embedded().to_toml());
    }

    #[test]
    fn embedded_defaults_are_valid() {
        assert_eq!(Config::embedded().validate(), Vec::<String>::new());
    }

    #[test]
    fn minimal_file_gets_defaults() {
        let c = load(MINIMAL).unwrap();
        assert_eq!(c.sip.max_calls, 5000);
        assert_eq!(c.sip.timers.t1, Duration::from_millis(500));
        assert_eq!(c.dial_in_numbers[0].language, "en");
        assert_eq!(
            c.dial_in_numbers[0].digits().as_deref(),
            Some("14255550100")
        );
        assert!(c.dial_in_number("14255550100").is_some());
        assert_eq!(
            c.trunk_for("127.0.0.9".parse().unwrap())
                .map(|t| t.name.as_str()),
            Some("lab")
        );
        assert!(c.trunk_for("10.0.0.1".parse().unwrap()).is_none());
    }

    #[test]
    fn unknown_key_is_named() {
        let e = load(&format!("{MINIMAL}\n[sip]\nmax_cals = 3\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_cals"), "{e}");
        assert!(e.contains(".toml") || e.contains("tmp"), "{e}");
    }

    #[test]
    fn bad_address_is_named() {
        let e = load(&format!(
            "[sip]\nlisten = [\"udp:300.1.1.1:5060\"]\n{MINIMAL}"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("sip.listen"), "{e}");
        assert!(e.contains("300.1.1.1"), "{e}");
        let e = load(&format!("[rtp]\nbind_address = \"nowhere\"\n{MINIMAL}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("rtp.bind_address"), "{e}");
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let e = load("[sip\nmax_calls = 3").unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn semantic_problems_are_all_reported() {
        let text = r#"
[sip]
listen = ["udp:127.0.0.1:20002"]
max_calls = 0
[sip.timers]
t1 = "2s"
t2 = "1s"
[rtp]
port_min = 20001
port_max = 20000

[[dial_in_numbers]]
number = "+1 (425) 555-0100"
[[dial_in_numbers]]
number = "14255550100"
[[dial_in_numbers]]
number = "call-me"
bridge = "nowhere"

[[trunks]]
name = "x"
sources = []
"#;
        let e = load(text).unwrap_err();
        let ConfigError::Invalid { problems, .. } = &e else {
            panic!("{e}")
        };
        let all = problems.join("\n");
        for key in [
            "sip.max_calls",
            "sip.timers.t2",
            "rtp.port_min",
            "rtp.port_max",
            "dial_in_numbers[1].number",
            "dial_in_numbers[2].number",
            "dial_in_numbers[2].bridge",
            "trunks[0].sources",
        ] {
            assert!(all.contains(key), "missing {key} in\n{all}");
        }
        assert!(all.contains("duplicates dial_in_numbers[0]"), "{all}");
    }

    #[test]
    fn overlapping_ports_rejected() {
        let text = format!("[sip]\nlisten = [\"udp:127.0.0.1:20010\"]\n{MINIMAL}");
        let e = load(&text).unwrap_err().to_string();
        assert!(e.contains("overlaps SIP listener"), "{e}");
    }

    #[test]
    fn environment_overrides() {
        let f = write_config(MINIMAL);
        let env = vec![
            ("DIALGATE__SIP__MAX_CALLS".to_string(), "42".to_string()),
            (
                "DIALGATE__SIP__LISTEN".to_string(),
                "udp:127.0.0.1:5070,tcp:[::1]:5070".to_string(),
            ),
            ("DIALGATE__LOG__FORMAT".to_string(), "json".to_string()),
            ("UNRELATED".to_string(), "x".to_string()),
        ];
        let c = Config::load_with_env(Some(f.path()), env).unwrap();
        assert_eq!(c.sip.max_calls, 42);
        assert_eq!(c.sip.listen.len(), 2);
        assert_eq!(c.sip.listen[1].addr, "[::1]:5070".parse().unwrap());
        assert_eq!(c.log.format, LogFormat::Json);
    }

    #[test]
    fn admin_token_from_its_own_variable() {
        let f = write_config(MINIMAL);
        let env = vec![(ADMIN_TOKEN_ENV.to_string(), "s3cret".to_string())];
        let c = Config::load_with_env(Some(f.path()), env).unwrap();
        assert_eq!(c.admin.token.as_deref(), Some("s3cret"));
        let env = vec![
            (ADMIN_TOKEN_ENV.to_string(), "a".to_string()),
            ("DIALGATE__ADMIN__TOKEN".to_string(), "b".to_string()),
        ];
        let c = Config::load_with_env(Some(f.path()), env).unwrap();
        assert_eq!(c.admin.token.as_deref(), Some("b"));
    }

    /// Every key of the effective settings is documented in the shipped
    /// file, set or commented out.
    #[test]
    fn shipped_config_documents_every_key() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_CONFIG_PATH);
        let shipped = std::fs::read_to_string(path).unwrap();
        let mut c = Config::embedded();
        c.sip.advertised_address = Some("192.0.2.1".parse().unwrap());
        c.rtp.advertised_address = Some("192.0.2.1".parse().unwrap());
        c.admin.token = Some("x".into());
        c.notify.enabled = Some(true);
        c.notify.smtp_host = Some("x".into());
        c.notify.from = Some("x".into());
        let effective: toml::Table = c.to_toml().parse().unwrap();
        fn walk(t: &toml::Table, prefix: &str, out: &mut Vec<(String, String)>) {
            for (k, v) in t {
                match v {
                    toml::Value::Table(sub) => walk(sub, &format!("{prefix}{k}."), out),
                    toml::Value::Array(a) if a.iter().all(|x| x.is_table()) => {
                        for x in a {
                            if let toml::Value::Table(sub) = x {
                                walk(sub, &format!("{prefix}{k}[]."), out);
                            }
                        }
                    }
                    _ => out.push((prefix.to_string(), k.clone())),
                }
            }
        }
        let mut keys = Vec::new();
        walk(&effective, "", &mut keys);
        for (section, key) in keys {
            let documented = shipped.lines().any(|l| {
                let l = l.trim_start_matches('#').trim();
                l.starts_with(&format!("{key} =")) || l.starts_with(&format!("{key}="))
            });
            assert!(
                documented,
                "{section}{key} is not documented in {DEFAULT_CONFIG_PATH}"
            );
        }
    }

    /// The commented bridge-profile examples in the shipped file are valid.
    #[test]
    fn documented_bridge_profiles_are_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_CONFIG_PATH);
        let shipped = std::fs::read_to_string(path).unwrap();
        let mut example = String::new();
        let mut inside = false;
        for line in shipped.lines() {
            if line.starts_with("# [[bridge.profiles]]") {
                inside = true;
            }
            if inside {
                match line.strip_prefix("# ") {
                    Some(l) => {
                        example.push_str(l);
                        example.push('\n');
                    }
                    None if line == "#" => example.push('\n'),
                    None => break,
                }
            }
        }
        let text = format!("{MINIMAL}\n[bridge]\n{example}");
        let c = load(&text).unwrap();
        assert_eq!(c.bridge.profiles.len(), 3);
    }

    #[test]
    fn bad_environment_value_is_named() {
        let f = write_config(MINIMAL);
        let env = vec![("DIALGATE__SIP__MAX_CALLS".to_string(), "many".to_string())];
        let e = Config::load_with_env(Some(f.path()), env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("sip.max_calls"), "{e}");
    }

    #[test]
    fn missing_file_is_reported() {
        let e = Config::load_with_env(Some(Path::new("/nonexistent/d.toml")), Vec::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/d.toml"), "{e}");
    }

    #[test]
    fn no_file_means_embedded_defaults_with_env() {
        let env = vec![("DIALGATE__SIP__MAX_CALLS".to_string(), "7".to_string())];
        let c = Config::load_with_env(None, env).unwrap();
        assert_eq!(c.sip.max_calls, 7);
        assert_eq!(c.dial_in_numbers, Config::embedded().dial_in_numbers);
    }

    #[test]
    fn type_errors_name_the_key_path() {
        for (text, key) in [
            ("[sip]\nmax_cals = 3\n", "`sip.max_cals`"),
            (
                "[sip]\nlisten = [\"udp:300.1.1.1:5060\"]\n",
                "`sip.listen[0]`",
            ),
            (
                "[sip]\nshutdown_grace = \"forever\"\n",
                "`sip.shutdown_grace`",
            ),
            (
                "[[trunks]]\nname = \"a\"\nsources = [\"10.0.0.0/40\"]\n",
                "`trunks[0].sources[0]`",
            ),
        ] {
            let e = load(text).unwrap_err().to_string();
            assert!(e.contains(key), "{key} not in {e}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
        for d in [
            Duration::from_millis(1500),
            Duration::from_secs(60),
            Duration::from_secs(7200),
        ] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }

    #[test]
    fn cidr_matching() {
        let c: Cidr = "192.0.2.0/24".parse().unwrap();
        assert!(c.contains("192.0.2.77".parse().unwrap()));
        assert!(!c.contains("192.0.3.1".parse().unwrap()));
        assert!(c.contains("::ffff:192.0.2.1".parse().unwrap()));
        let any: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains("8.8.8.8".parse().unwrap()));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert_eq!("10.1.2.3".parse::<Cidr>().unwrap().prefix, 32);
    }

    #[test]
    fn number_normalisation() {
        assert_eq!(
            normalize_number("+1 (425) 555-0100").as_deref(),
            Some("14255550100")
        );
        assert_eq!(
            normalize_number("1.425.555.0100").as_deref(),
            Some("14255550100")
        );
        assert_eq!(normalize_number("conference"), None);
        assert_eq!(normalize_number("+"), None);
    }

    #[test]
    fn effective_settings_round_trip() {
        let c = Config::embedded();
        let text = c.to_toml();
        let f = write_config(&text);
        let back = Config::load_with_env(Some(f.path()), Vec::new()).unwrap();
        assert_eq!(back.to_toml(), text);
    }
}
