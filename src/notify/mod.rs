//! Email notices with a durable outbox.
//!
//! An operator action (a conference-ID reset, an explicit "send conference
//! info") renders a notice and [`Notifier::enqueue`]s it: the notice is on
//! disk (fsynced) before the call returns, so an SMTP outage neither fails
//! the action nor loses the email. [`Notifier::run`] delivers pending
//! notices to the configured relay with exponential backoff, records every
//! attempt (shown by `GET /v1/outbox`), and picks up where it left off after
//! a restart.
//!
//! The daemon wires it up like this:
//!
//! ```no_run
//! # async fn wire(settings: dialgate::notify::NotifySettings,
//! #               shutdown: impl std::future::Future<Output = ()> + Send + 'static)
//! #     -> Result<(), dialgate::notify::NotifyError> {
//! use dialgate::notify::Notifier;
//! if settings.is_enabled() {
//!     let notifier = Notifier::open(&settings)?; // loads pending notices
//!     tokio::spawn(notifier.clone().run(shutdown)); // delivery task
//!     // hand `notifier` to AdminState::with_notifier
//! }
//! # Ok(()) }
//! ```

pub mod message;
pub mod notifier;
pub mod outbox;
pub mod smtp;

pub use message::{conference_info, InfoReason, NewNotice};
pub use notifier::Notifier;
pub use outbox::{Notice, NoticeStatus, Outbox, RetryPolicy};
pub use smtp::{SmtpError, SmtpRelay};

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Why a notice could not be built, stored or configured.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("outbox storage: {0}")]
    Storage(#[from] std::io::Error),
    #[error("outbox entry {file}: {reason}")]
    Corrupt { file: String, reason: String },
    #[error("invalid email address {0:?}")]
    BadAddress(String),
    #[error("organizer {0:?} has no static conference ID to send")]
    NoConferenceId(String),
    #[error("notices are not configured: {0}")]
    NotConfigured(String),
}

/// `[notify]` section of the configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifySettings {
    /// Send notices at all. Unset: on exactly when `smtp_host` is set.
    pub enabled: Option<bool>,
    /// SMTP relay host name or address. Plain SMTP to a relay on a trusted
    /// network; STARTTLS/authentication are a later addition.
    pub smtp_host: Option<String>,
    /// SMTP relay port.
    pub smtp_port: u16,
    /// Name sent in EHLO.
    pub helo_name: String,
    /// Envelope and header sender, e.g. `conferencing@contoso.com`.
    pub from: Option<String>,
    /// Email the organizer their new conference ID after a reset.
    pub send_on_reset: bool,
    /// Directory of the durable outbox (one JSON file per notice).
    pub outbox_dir: PathBuf,
    /// First retry delay after a failed attempt, seconds.
    pub retry_initial_secs: u64,
    /// Longest retry delay (the backoff doubles up to this), seconds.
    pub retry_max_secs: u64,
    /// Attempts before a notice is given up as failed.
    pub max_attempts: u32,
    /// Time allowed for one whole SMTP transaction, seconds.
    pub smtp_timeout_secs: u64,
    /// Delivered/failed notices kept for `GET /v1/outbox`.
    pub keep_finished: usize,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            enabled: None,
            smtp_host: None,
            smtp_port: 25,
            helo_name: "localhost".to_owned(),
            from: None,
            send_on_reset: true,
            outbox_dir: PathBuf::from("data/outbox"),
            retry_initial_secs: 30,
            retry_max_secs: 3600,
            max_attempts: 48,
            smtp_timeout_secs: 30,
            keep_finished: 500,
        }
    }
}

impl NotifySettings {
    /// Whether notices are sent: `enabled`, or by default whether a relay is set.
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(self.smtp_host.is_some())
    }

    /// The retry schedule these settings describe.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_secs(self.retry_initial_secs),
            max: Duration::from_secs(self.retry_max_secs),
            max_attempts: self.max_attempts,
        }
    }

    /// Every problem with the section, each naming its key.
    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if !self.is_enabled() {
            return errors;
        }
        match self.smtp_host.as_deref().map(str::trim) {
            None | Some("") => {
                errors.push("notify.smtp_host: required when notices are enabled".to_owned())
            }
            Some(h) if h.chars().any(|c| c.is_whitespace() || c.is_control()) => {
                errors.push(format!("notify.smtp_host: {h:?} is not a host name"))
            }
            Some(_) => {}
        }
        if self.smtp_port == 0 {
            errors.push("notify.smtp_port: must not be 0".to_owned());
        }
        if self.helo_name.is_empty()
            || self
                .helo_name
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            errors.push("notify.helo_name: must be a host name without spaces".to_owned());
        }
        match &self.from {
            None => errors.push("notify.from: required when notices are enabled".to_owned()),
            Some(f) if !is_plain_address(f) => {
                errors.push(format!("notify.from: {f:?} is not a plain email address"))
            }
            Some(_) => {}
        }
        if self.outbox_dir.as_os_str().is_empty() {
            errors.push("notify.outbox_dir: must not be empty".to_owned());
        }
        if self.retry_initial_secs == 0 {
            errors.push("notify.retry_initial_secs: must be at least 1".to_owned());
        }
        if self.retry_max_secs < self.retry_initial_secs {
            errors.push("notify.retry_max_secs: must not be below retry_initial_secs".to_owned());
        }
        if self.max_attempts == 0 {
            errors.push("notify.max_attempts: must be at least 1".to_owned());
        }
        if self.smtp_timeout_secs == 0 {
            errors.push("notify.smtp_timeout_secs: must be at least 1".to_owned());
        }
        errors
    }
}

/// A bare `local@domain` address safe to put in SMTP commands and headers:
/// one `@`, both sides non-empty, no spaces, angle brackets or control
/// characters (which is what keeps header and command injection out).
pub fn is_plain_address(s: &str) -> bool {
    let mut parts = s.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && s.len() <= 254
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | '"'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_by_default_and_valid() {
        let s = NotifySettings::default();
        assert!(!s.is_enabled());
        assert!(s.validate().is_empty());
        assert!(s.send_on_reset);
        assert_eq!(s.retry_policy().initial, Duration::from_secs(30));
        assert_eq!(s.retry_policy().max, Duration::from_secs(3600));
    }

    #[test]
    fn relay_turns_it_on_and_needs_a_sender() {
        let s = NotifySettings {
            smtp_host: Some("mail.contoso.com".into()),
            ..Default::default()
        };
        assert!(s.is_enabled());
        let errs = s.validate();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("notify.from"));
        let s = NotifySettings {
            from: Some("conferencing@contoso.com".into()),
            ..s
        };
        assert!(s.validate().is_empty());
    }

    #[test]
    fn bad_values_name_their_keys() {
        let s = NotifySettings {
            enabled: Some(true),
            smtp_port: 0,
            from: Some("a@b\r\nBcc: x@y".into()),
            retry_initial_secs: 60,
            retry_max_secs: 30,
            max_attempts: 0,
            ..Default::default()
        };
        let errs = s.validate().join("\n");
        for key in [
            "notify.smtp_host",
            "notify.smtp_port",
            "notify.from",
            "notify.retry_max_secs",
            "notify.max_attempts",
        ] {
            assert!(errs.contains(key), "{key} missing in {errs}");
        }
    }

    #[test]
    fn toml_section() {
        let s: NotifySettings =
            toml::from_str("smtp_host = \"10.0.0.5\"\nfrom = \"c@contoso.com\"\nsmtp_port = 2525")
                .unwrap();
        assert!(s.is_enabled() && s.validate().is_empty());
        assert!(toml::from_str::<NotifySettings>("smtp = 1").is_err());
    }

    #[test]
    fn plain_addresses() {
        assert!(is_plain_address("amos.marble@contoso.com"));
        for bad in [
            "", "a", "@b", "a@", "a@b@c", "a b@c", "a@b\n", "<a@b>", "a@b,c@d",
        ] {
            assert!(!is_plain_address(bad), "{bad:?}");
        }
    }
}
