//! Rendering notices: the conference-info email and its RFC 5322 form.
//!
//! The leader PIN is deliberately never read here: a conference-info email
//! may be forwarded to every attendee, and the PIN is what lets someone
//! start the meeting as its leader.

use super::{is_plain_address, NotifyError};
use crate::admin::rfc3339::to_civil;
use crate::admin::DialInNumberView;
use crate::directory::service::Organizer;
use std::fmt::Write as _;
use std::time::SystemTime;

/// A notice ready to be queued: recipient and plain-text content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewNotice {
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// Why the organizer gets the email (changes one sentence of the text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InfoReason {
    /// Their conference ID was reset; the old one no longer works.
    Reset,
    /// An operator asked for the current details to be sent.
    Requested,
}

/// Subject of the conference-info email.
pub const CONFERENCE_INFO_SUBJECT: &str = "Your conference ID";

/// The conference-info email for `organizer`: their static conference ID
/// and the dial-in numbers. Never contains the leader PIN.
pub fn conference_info(
    organizer: &Organizer,
    dial_in: &[DialInNumberView],
    reason: InfoReason,
) -> Result<NewNotice, NotifyError> {
    if !is_plain_address(&organizer.email) {
        return Err(NotifyError::BadAddress(organizer.email.clone()));
    }
    let cid = organizer
        .conference_id
        .ok_or_else(|| NotifyError::NoConferenceId(organizer.id.clone()))?;
    let name: String = organizer
        .display_name
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    let mut body = String::new();
    let _ = writeln!(body, "Hello {name},\n");
    match reason {
        InfoReason::Reset => {
            let _ = writeln!(
                body,
                "Your conference ID has been reset. Your new conference ID is {cid}.\n\
                 The previous conference ID no longer works: please update any \
                 meeting invitations you have already sent.\n"
            );
        }
        InfoReason::Requested => {
            let _ = writeln!(body, "Your conference ID is {cid}.\n");
        }
    }
    let _ = writeln!(
        body,
        "Callers dial one of the numbers below and enter the conference ID \
         followed by # when asked."
    );
    if !dial_in.is_empty() {
        let _ = writeln!(body, "\nDial-in numbers:");
        let width = dial_in.iter().map(|d| d.number.len()).max().unwrap_or(0);
        for d in dial_in {
            let _ = writeln!(body, "  {:width$}  {}", d.number, d.label);
        }
    }
    Ok(NewNotice {
        to: organizer.email.clone(),
        subject: CONFERENCE_INFO_SUBJECT.to_owned(),
        body,
    })
}

/// RFC 5322 date (§3.3), always in UTC: `Tue, 25 Nov 2025 14:30:00 +0000`.
pub fn rfc5322_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, mo, d, h, mi, s, wd) = to_civil(t);
    let day = DAYS.get(wd as usize).copied().unwrap_or("Sun");
    let month = MONTHS
        .get((mo as usize).wrapping_sub(1))
        .copied()
        .unwrap_or("Jan");
    format!("{day}, {d:02} {month} {y:04} {h:02}:{mi:02}:{s:02} +0000")
}

/// The full message for SMTP DATA: headers and a UTF-8 plain-text body.
/// `from`/`to` must be plain addresses and the subject is single-line, so
/// nothing a user typed can add a header.
pub fn render(
    from: &str,
    to: &str,
    subject: &str,
    body: &str,
    message_id: &str,
    now: SystemTime,
) -> Vec<u8> {
    let subject: String = subject.chars().filter(|c| !c.is_control()).collect();
    let mut m = String::with_capacity(body.len() + 400);
    let _ = write!(
        m,
        "Date: {}\r\nFrom: {from}\r\nTo: {to}\r\nSubject: {}\r\nMessage-ID: <{message_id}@dialgate>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\nAuto-Submitted: auto-generated\r\n\r\n",
        rfc5322_date(now),
        encode_header_text(&subject),
    );
    for line in body.lines() {
        m.push_str(line);
        m.push_str("\r\n");
    }
    m.into_bytes()
}

/// RFC 2047 encoded-word (base64) for non-ASCII header text; ASCII passes.
fn encode_header_text(s: &str) -> String {
    if s.is_ascii() {
        return s.to_owned();
    }
    format!("=?utf-8?b?{}?=", base64(s.as_bytes()))
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::service::IdMode;
    use crate::directory::ConferenceId;
    use std::time::{Duration, UNIX_EPOCH};

    fn organizer() -> Organizer {
        Organizer {
            id: "amos.marble@contoso.com".into(),
            display_name: "Amos Marble".into(),
            email: "amos.marble@contoso.com".into(),
            leader_pin: Some("908172".into()),
            mode: IdMode::Static,
            conference_id: Some(ConferenceId::parse("8271964", 7).unwrap()),
            created_at: UNIX_EPOCH,
            updated_at: UNIX_EPOCH,
        }
    }

    fn numbers() -> Vec<DialInNumberView> {
        vec![
            DialInNumberView {
                number: "+44 20 7946 0000".into(),
                label: "London".into(),
                language: "en-GB".into(),
            },
            DialInNumberView {
                number: "+1 425 555 0100".into(),
                label: "Redmond".into(),
                language: "en-US".into(),
            },
        ]
    }

    #[test]
    fn conference_info_has_id_and_numbers_but_never_the_pin() {
        let n = conference_info(&organizer(), &numbers(), InfoReason::Reset).unwrap();
        assert_eq!(n.to, "amos.marble@contoso.com");
        assert!(n.body.contains("Amos Marble"));
        assert!(n.body.contains("8271964"));
        assert!(n.body.contains("+44 20 7946 0000  London"));
        assert!(n.body.contains("+1 425 555 0100   Redmond"));
        assert!(n.body.contains("no longer works"));
        assert!(!n.body.contains("908172"));
        let msg = render(
            "c@contoso.com",
            &n.to,
            &n.subject,
            &n.body,
            "x1",
            UNIX_EPOCH,
        );
        assert!(!String::from_utf8(msg).unwrap().contains("908172"));
    }

    #[test]
    fn refuses_bad_address_and_missing_id() {
        let mut o = organizer();
        o.email = "amos@contoso.com\r\nBcc: all@contoso.com".into();
        assert!(matches!(
            conference_info(&o, &[], InfoReason::Requested),
            Err(NotifyError::BadAddress(_))
        ));
        let mut o = organizer();
        o.conference_id = None;
        assert!(matches!(
            conference_info(&o, &[], InfoReason::Requested),
            Err(NotifyError::NoConferenceId(_))
        ));
    }

    #[test]
    fn headers() {
        let t = UNIX_EPOCH + Duration::from_secs(1_764_081_000);
        assert_eq!(rfc5322_date(t), "Tue, 25 Nov 2025 14:30:00 +0000");
        let msg = render("c@contoso.com", "a@contoso.com", "Grüße", "a\nb", "id1", t);
        let msg = String::from_utf8(msg).unwrap();
        assert!(msg.contains("Subject: =?utf-8?b?R3LDvMOfZQ==?=\r\n"));
        assert!(msg.ends_with("\r\n\r\na\r\nb\r\n"));
        assert_eq!(base64(b"foob"), "Zm9vYg==");
        assert_eq!(base64(b"fooba"), "Zm9vYmE=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
