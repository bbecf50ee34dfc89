//! Bridge profiles (`[[bridge.profiles]]`): where a caller with a valid
//! conference ID is sent — the embedded mixer, or an external meeting
//! bridge reached by a blind transfer (REFER, RFC 3515) or by a second
//! call the gateway places and relays (back-to-back user agent).
//!
//! Targets are URI templates with the placeholders `{conference_id}`,
//! `{meeting_id}`, `{organizer}` and `{dialed_number}`, filled per call by
//! [`render`] so that a value can never break the SIP URI or header it is
//! put into.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Default [`BridgeProfile::answer_timeout`]: 10 s.
pub const DEFAULT_ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`BridgeProfile::transfer_timeout`]: 30 s.
pub const DEFAULT_TRANSFER_TIMEOUT: Duration = Duration::from_secs(30);
/// The placeholders a template may use.
pub const PLACEHOLDERS: [&str; 4] = ["conference_id", "meeting_id", "organizer", "dialed_number"];

/// How a profile reaches its meeting bridge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BridgeMode {
    /// The built-in conference mixer.
    #[default]
    Embedded,
    /// Blind transfer: REFER in the caller's dialog (RFC 3515), then BYE.
    Refer,
    /// A second call to the bridge, RTP relayed between the two legs.
    B2bua,
}

/// One bridge profile. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeProfile {
    /// Name dial-in numbers refer to (`dial_in_numbers[i].bridge`).
    pub name: String,
    /// How the bridge is reached.
    #[serde(default)]
    pub mode: BridgeMode,
    /// URI template of the bridge (`refer` and `b2bua`), e.g.
    /// `sip:{conference_id}@192.0.2.50:5060`.
    #[serde(default)]
    pub uri: String,
    /// Extra headers of the call to the bridge (`b2bua`): name → value
    /// template, e.g. `X-Conference-ID = "{conference_id}"`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How long the bridge may take to answer (`b2bua`). Default 10 s.
    #[serde(
        default = "default_answer_timeout",
        with = "crate::ivr::duration::serde"
    )]
    pub answer_timeout: Duration,
    /// How long a transfer may take to report its outcome (`refer`).
    /// Default 30 s.
    #[serde(
        default = "default_transfer_timeout",
        with = "crate::ivr::duration::serde"
    )]
    pub transfer_timeout: Duration,
}

fn default_answer_timeout() -> Duration {
    DEFAULT_ANSWER_TIMEOUT
}

fn default_transfer_timeout() -> Duration {
    DEFAULT_TRANSFER_TIMEOUT
}

impl BridgeProfile {
    /// The embedded mixer under `name`.
    pub fn embedded(name: &str) -> Self {
        BridgeProfile {
            name: name.to_string(),
            mode: BridgeMode::Embedded,
            uri: String::new(),
            headers: BTreeMap::new(),
            answer_timeout: DEFAULT_ANSWER_TIMEOUT,
            transfer_timeout: DEFAULT_TRANSFER_TIMEOUT,
        }
    }

    /// Every problem with this profile, each naming its key under
    /// `prefix` (e.g. `bridge.profiles[0]`).
    pub fn validate(&self, prefix: &str) -> Vec<String> {
        let mut errors = Vec::new();
        if self.name.trim().is_empty() {
            errors.push(format!("{prefix}.name: must not be empty"));
        }
        match self.mode {
            BridgeMode::Embedded => {
                if !self.uri.is_empty() {
                    errors.push(format!(
                        "{prefix}.uri: not used by the embedded bridge (mode = \"refer\" or \"b2bua\")"
                    ));
                }
            }
            BridgeMode::Refer | BridgeMode::B2bua => {
                if self.uri.trim().is_empty() {
                    errors.push(format!(
                        "{prefix}.uri: required when mode is refer or b2bua"
                    ));
                } else {
                    if let Err(e) = check_template(&self.uri) {
                        errors.push(format!("{prefix}.uri: {e}"));
                    }
                    let lower = self.uri.to_ascii_lowercase();
                    if !(lower.starts_with("sip:") || lower.starts_with("sips:")) {
                        errors.push(format!("{prefix}.uri: must be a sip: or sips: URI"));
                    }
                }
            }
        }
        if !self.headers.is_empty() && self.mode != BridgeMode::B2bua {
            errors.push(format!("{prefix}.headers: only used when mode is b2bua"));
        }
        for (name, value) in &self.headers {
            if !is_token(name) {
                errors.push(format!(
                    "{prefix}.headers: {name:?} is not a valid header name"
                ));
            } else if RESERVED_HEADERS
                .iter()
                .any(|r| r.eq_ignore_ascii_case(name))
            {
                errors.push(format!(
                    "{prefix}.headers.{name}: set by the gateway, cannot be configured"
                ));
            }
            if let Err(e) = check_template(value) {
                errors.push(format!("{prefix}.headers.{name}: {e}"));
            }
        }
        if self.answer_timeout < Duration::from_secs(1)
            || self.answer_timeout > Duration::from_secs(300)
        {
            errors.push(format!("{prefix}.answer_timeout: must be 1s..=5m"));
        }
        if self.transfer_timeout < Duration::from_secs(1)
            || self.transfer_timeout > Duration::from_secs(600)
        {
            errors.push(format!("{prefix}.transfer_timeout: must be 1s..=10m"));
        }
        errors
    }
}

impl BridgeProfile {
    /// The Refer-To URI of a `refer` profile for this call, for
    /// [`crate::sip::ua::UserAgent::refer`].
    pub fn refer_target(&self, ctx: &RouteContext) -> Result<String, TemplateError> {
        render(&self.uri, ctx, Target::Uri)
    }

    /// The call to place for a `b2bua` profile, for
    /// [`crate::sip::ua::UserAgent::place_call`]: the rendered target and
    /// headers, and an offer naming only the caller's negotiated codec and
    /// telephone-event payload type, so the relay never transcodes.
    pub fn b2bua_call(
        &self,
        ctx: &RouteContext,
        caller: &crate::sip::sdp::Negotiated,
    ) -> Result<crate::sip::ua::OutboundCall, TemplateError> {
        let target = render(&self.uri, ctx, Target::Uri)?;
        let mut headers = Vec::with_capacity(self.headers.len());
        for (name, template) in &self.headers {
            headers.push((name.clone(), render(template, ctx, Target::Header)?));
        }
        let mut from_user = String::with_capacity(ctx.dialed_number.len());
        escape_uri(&ctx.dialed_number, &mut from_user);
        Ok(crate::sip::ua::OutboundCall {
            target,
            headers,
            from_user,
            codecs: vec![caller.codec],
            telephone_event_pt: caller
                .telephone_event
                .as_ref()
                .map(|t| t.payload_type)
                .or(Some(crate::media::rtp::DEFAULT_EVENT_PT)),
            answer_timeout: self.answer_timeout,
            local: None,
        })
    }
}

/// Headers the gateway writes itself; a profile may not override them.
const RESERVED_HEADERS: [&str; 12] = [
    "Via",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Contact",
    "Content-Type",
    "Content-Length",
    "Max-Forwards",
    "Route",
    "Record-Route",
    "Refer-To",
];

/// Per-call values the templates are filled with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteContext {
    /// The conference ID the caller keyed.
    pub conference_id: String,
    /// The meeting it belongs to.
    pub meeting_id: String,
    /// The meeting organizer (an address or name).
    pub organizer: String,
    /// The dial-in number called (digits).
    pub dialed_number: String,
}

impl RouteContext {
    fn value(&self, placeholder: &str) -> Option<&str> {
        match placeholder {
            "conference_id" => Some(&self.conference_id),
            "meeting_id" => Some(&self.meeting_id),
            "organizer" => Some(&self.organizer),
            "dialed_number" => Some(&self.dialed_number),
            _ => None,
        }
    }
}

/// Why a template cannot be used or filled.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum TemplateError {
    /// `{name}` names no known placeholder.
    #[error(
        "unknown placeholder {{{0}}} (known: conference_id, meeting_id, organizer, dialed_number)"
    )]
    UnknownPlaceholder(String),
    /// A `{` without its `}`, or a stray `}`.
    #[error("unbalanced braces")]
    Unbalanced,
    /// CR, LF or another control character in the template.
    #[error("control characters (CR, LF, ...) are not allowed")]
    ControlCharacter,
    /// A value holds a control character and cannot go into a header.
    #[error("value of {{{0}}} holds a control character")]
    BadValue(&'static str),
}

/// Checks a template: known placeholders, balanced braces, no control
/// characters.
pub fn check_template(template: &str) -> Result<(), TemplateError> {
    for_each_part(template, |part| match part {
        Part::Placeholder(name) if !PLACEHOLDERS.contains(&name) => {
            Err(TemplateError::UnknownPlaceholder(name.to_string()))
        }
        _ => Ok(()),
    })
}

/// Where a rendered value goes, which decides its escaping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Inside a SIP URI (RFC 3261 §25.1): everything outside `unreserved`
    /// is %-escaped, so a value can never add a parameter, header or host.
    Uri,
    /// A header value: printable text kept; control characters refused.
    Header,
}

/// Fills `template` with the values of `ctx` (RFC 3261 §19.1.2 escaping
/// for [`Target::Uri`]).
pub fn render(template: &str, ctx: &RouteContext, target: Target) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len() + 32);
    for_each_part(template, |part| {
        let name = match part {
            Part::Literal(l) => {
                out.push_str(l);
                return Ok(());
            }
            Part::Placeholder(name) => name,
        };
        {
            let value = ctx
                .value(name)
                .ok_or_else(|| TemplateError::UnknownPlaceholder(name.to_string()))?;
            let key = PLACEHOLDERS
                .iter()
                .copied()
                .find(|p| *p == name)
                .unwrap_or("value");
            match target {
                Target::Uri => escape_uri(value, &mut out),
                Target::Header => {
                    if value.chars().any(char::is_control) {
                        return Err(TemplateError::BadValue(key));
                    }
                    out.push_str(value);
                }
            }
            Ok(())
        }
    })?;
    Ok(out)
}

/// A piece of a template.
enum Part<'a> {
    Literal(&'a str),
    Placeholder(&'a str),
}

/// Walks a template: literal runs and `{placeholder}` names.
fn for_each_part<'a>(
    template: &'a str,
    mut visit: impl FnMut(Part<'a>) -> Result<(), TemplateError>,
) -> Result<(), TemplateError> {
    if template.chars().any(char::is_control) {
        return Err(TemplateError::ControlCharacter);
    }
    let mut rest = template;
    while !rest.is_empty() {
        match rest.find(['{', '}']) {
            None => {
                visit(Part::Literal(rest))?;
                break;
            }
            Some(i) => {
                let (lit, tail) = rest.split_at(i);
                if !lit.is_empty() {
                    visit(Part::Literal(lit))?;
                }
                if tail.starts_with('}') {
                    return Err(TemplateError::Unbalanced);
                }
                let inner = &tail[1..];
                let end = inner.find('}').ok_or(TemplateError::Unbalanced)?;
                let name = &inner[..end];
                if name.contains('{') {
                    return Err(TemplateError::Unbalanced);
                }
                visit(Part::Placeholder(name))?;
                rest = &inner[end + 1..];
            }
        }
    }
    Ok(())
}

/// %-escapes everything outside RFC 3261 `unreserved`.
fn escape_uri(value: &str, out: &mut String) {
    for b in value.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b);
        if keep {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// RFC 3261 §25.1 `token`.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

/// Checks a profile list and the default profile name, naming keys
/// `bridge.profiles[i]...` and `bridge.default_profile`.
pub fn validate_profiles(profiles: &[BridgeProfile], default: Option<&str>) -> Vec<String> {
    let mut errors = Vec::new();
    for (i, p) in profiles.iter().enumerate() {
        let prefix = format!("bridge.profiles[{i}]");
        errors.extend(p.validate(&prefix));
        if profiles[..i].iter().any(|o| o.name == p.name) {
            errors.push(format!(
                "{prefix}.name: {:?} is used by another profile",
                p.name
            ));
        }
    }
    if let Some(name) = default {
        if !profiles.iter().any(|p| p.name == name) {
            errors.push(format!(
                "bridge.default_profile: no profile is named {name:?}"
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> RouteContext {
        RouteContext {
            conference_id: "123456".into(),
            meeting_id: "m-42".into(),
            organizer: "Ann Lee <ann@example.com>".into(),
            dialed_number: "14255550100".into(),
        }
    }

    fn b2bua() -> BridgeProfile {
        toml::from_str(
            r#"
name = "ext"
mode = "b2bua"
uri = "sip:{conference_id}@192.0.2.50:5060"
headers = { X-Conference-ID = "{conference_id}", X-Organizer = "{organizer}" }
answer_timeout = "5s"
"#,
        )
        .unwrap()
    }

    #[test]
    fn toml_profile_with_defaults() {
        let p = b2bua();
        assert_eq!(p.mode, BridgeMode::B2bua);
        assert_eq!(p.answer_timeout, Duration::from_secs(5));
        assert_eq!(p.transfer_timeout, DEFAULT_TRANSFER_TIMEOUT);
        assert_eq!(p.validate("p"), Vec::<String>::new());
        let back: BridgeProfile = toml::from_str(&toml::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        assert!(toml::from_str::<BridgeProfile>("name = \"x\"\nurl = \"sip:a@b\"").is_err());
        let e: BridgeProfile = toml::from_str("name = \"local\"").unwrap();
        assert_eq!(e.mode, BridgeMode::Embedded);
        assert!(e.validate("p").is_empty());
    }

    #[test]
    fn render_escapes_uri_values() {
        let mut c = ctx();
        c.conference_id = "12;maddr=evil@x>".into();
        let uri = render("sip:{conference_id}@192.0.2.50", &c, Target::Uri).unwrap();
        assert_eq!(uri, "sip:12%3Bmaddr%3Devil%40x%3E@192.0.2.50");
        let uri = render(
            "sip:{conference_id}@10.0.0.1;m={meeting_id}",
            &ctx(),
            Target::Uri,
        );
        assert_eq!(uri.unwrap(), "sip:123456@10.0.0.1;m=m-42");
    }

    #[test]
    fn render_refuses_control_characters_in_headers() {
        let h = render("{organizer}", &ctx(), Target::Header).unwrap();
        assert_eq!(h, "Ann Lee <ann@example.com>");
        let mut c = ctx();
        c.organizer = "x\r\nVia: evil".into();
        assert_eq!(
            render("{organizer}", &c, Target::Header),
            Err(TemplateError::BadValue("organizer"))
        );
    }

    #[test]
    fn templates_are_checked() {
        assert_eq!(
            check_template("sip:{room}@h"),
            Err(TemplateError::UnknownPlaceholder("room".into()))
        );
        assert_eq!(check_template("sip:{x@h"), Err(TemplateError::Unbalanced));
        assert_eq!(check_template("sip:x}@h"), Err(TemplateError::Unbalanced));
        assert_eq!(
            check_template("a\r\nb"),
            Err(TemplateError::ControlCharacter)
        );
        assert_eq!(check_template("sip:{dialed_number}@h"), Ok(()));
    }

    #[test]
    fn every_bad_key_is_named() {
        let mut p = b2bua();
        p.uri = "http://{room}".into();
        p.headers.insert("Bad\r\nName".into(), "x".into());
        p.headers.insert("Via".into(), "x".into());
        p.headers.insert("X-Ok".into(), "{nope}".into());
        p.answer_timeout = Duration::ZERO;
        let errors = p.validate("bridge.profiles[1]");
        for key in [
            "bridge.profiles[1].uri: unknown placeholder",
            "bridge.profiles[1].uri: must be a sip",
            "bridge.profiles[1].headers: \"Bad\\r\\nName\"",
            "bridge.profiles[1].headers.Via",
            "bridge.profiles[1].headers.X-Ok",
            "bridge.profiles[1].answer_timeout",
        ] {
            assert!(
                errors.iter().any(|e| e.starts_with(key)),
                "{key}: {errors:?}"
            );
        }
        let mut r = b2bua();
        r.mode = BridgeMode::Refer;
        r.uri = String::new();
        let errors = r.validate("q");
        assert!(errors.iter().any(|e| e.starts_with("q.uri: required")));
        assert!(errors.iter().any(|e| e.starts_with("q.headers")));
    }

    #[test]
    fn b2bua_call_offers_the_callers_codec_only() {
        use crate::sip::sdp::{self, Codec, LocalMedia, SessionDescription};
        let offer = SessionDescription::parse(
            b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 30000 RTP/AVP 8 100\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:100 telephone-event/8000\r\n",
        )
        .unwrap();
        let local = LocalMedia::new("127.0.0.1".parse().unwrap(), 20000, 1);
        let caller = sdp::answer_offer(&offer, &local).unwrap();
        let call = b2bua().b2bua_call(&ctx(), &caller).unwrap();
        assert_eq!(call.target, "sip:123456@192.0.2.50:5060");
        assert_eq!(call.codecs, vec![Codec::Pcma]);
        assert_eq!(call.telephone_event_pt, Some(100));
        assert_eq!(call.answer_timeout, Duration::from_secs(5));
        assert!(call
            .headers
            .contains(&("X-Organizer".into(), "Ann Lee <ann@example.com>".into())));
        let mut refer = b2bua();
        refer.uri = "sip:{meeting_id}@192.0.2.50".into();
        assert_eq!(refer.refer_target(&ctx()).unwrap(), "sip:m-42@192.0.2.50");
    }

    #[test]
    fn duplicate_names_and_unknown_default() {
        let errors = validate_profiles(&[b2bua(), b2bua()], Some("nope"));
        assert!(errors
            .iter()
            .any(|e| e.starts_with("bridge.profiles[1].name")));
        assert!(errors
            .iter()
            .any(|e| e.starts_with("bridge.default_profile")));
        assert!(validate_profiles(&[b2bua()], Some("ext")).is_empty());
    }
}
