//! Operator interface: the admin HTTP API ([`api`]) and its CLI client ([`cli`]).
//!
//! The API is JSON over HTTP/1.1 with a bearer token; every answer that is
//! not a success carries `{"error": {"code": "...", "message": "..."}}`.
//! Routes (all under `/v1` need the token when one is configured):
//!
//! ```text
//! GET    /healthz                                     liveness, no auth
//! POST   /v1/organizers                               create        201
//! GET    /v1/organizers?after=&limit=                 list (paged)  200
//! GET    /v1/organizers/{id}                          show          200
//! DELETE /v1/organizers/{id}                          remove        204
//! PUT    /v1/organizers/{id}/conference-id            set static ID 200
//! POST   /v1/organizers/{id}/conference-id/reset      new static ID 200
//! POST   /v1/organizers/{id}/send-conference-info     queue email   202
//! POST   /v1/meetings                                 create        201
//! GET    /v1/meetings/{id}                            show          200
//! DELETE /v1/meetings/{id}                            remove        204
//! GET    /v1/conference-ids/{cid}                     status        200
//! GET    /v1/outbox?limit=                            notice log    200
//! ```
//!
//! Error answers and their codes:
//!
//! ```text
//! 400 malformed_json, bad_request (wrong or unknown fields), bad_query, bad_path
//! 401 unauthorized (with WWW-Authenticate: Bearer)
//! 404 not_found (unknown organizer, meeting or route)
//! 405 method_not_allowed (with Allow)
//! 409 already_exists, in_use, quarantined, wrong_mode, no_conference_id
//! 413 body_too_large (bodies over 2 MiB; an announced length is refused unread)
//! 415 unsupported_media_type (a body needs Content-Type: application/json)
//! 422 invalid_conference_id, invalid_field, invalid_timestamp
//! 500 storage; 503 notices_disabled, id_space_exhausted
//! ```
//!
//! `PUT .../conference-id` is idempotent: asking for the ID the organizer
//! already has succeeds without a change. A reset or set tombstones the
//! previous ID (quarantined per `directory.quarantine`, forever by default).
//!
//! Timestamps are RFC 3339 UTC strings ([`rfc3339`]), in responses and in
//! requests (`expires_at` of a meeting; unix seconds are not accepted).
//! Conference IDs are digit strings (leading zeros kept).
//!
//! # Wiring in the daemon
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use dialgate::directory::service::DirectoryService;
//! # async fn wire(
//! #     directory: Arc<dyn DirectoryService>,
//! #     admin: dialgate::admin::AdminSettings,
//! #     notify: dialgate::notify::NotifySettings,
//! #     dial_in: Vec<dialgate::admin::DialInNumberView>,
//! # ) -> anyhow::Result<()> {
//! use dialgate::admin::{serve, AdminState};
//! use dialgate::notify::Notifier;
//! let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
//! let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
//!     let _ = rx.wait_for(|stop| *stop).await;
//! };
//! let mut state = AdminState::new(directory)
//!     .with_token(admin.token.clone())
//!     .with_dial_in_numbers(dial_in)
//!     .with_send_on_reset(notify.send_on_reset);
//! if notify.is_enabled() {
//!     let notifier = Notifier::open(&notify)?; // reloads pending notices
//!     tokio::spawn(notifier.clone().run(stopped(stop_rx.clone())));
//!     state = state.with_notifier(notifier);
//! }
//! if admin.enabled {
//!     let listener = tokio::net::TcpListener::bind(&admin.listen).await?;
//!     tokio::spawn(serve(listener, state, stopped(stop_rx.clone())));
//! }
//! // ... on SIGTERM:
//! let _ = stop_tx.send(true);
//! # Ok(()) }
//! ```

pub mod api;
pub mod cli;
pub mod rfc3339;

pub use api::{router, serve, AdminState};

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Default listen address: loopback only, so an unconfigured daemon never
/// exposes the operator interface.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// A dial-in number shown to operators and in conference-info emails.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DialInNumberView {
    /// E.164 or national form, as callers should dial it (e.g. `+44 20 7946 0000`).
    pub number: String,
    /// Human label, e.g. `London`.
    pub label: String,
    /// Prompt language for callers of this number (BCP 47, e.g. `en-GB`).
    pub language: String,
}

/// `[admin]` section of the configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSettings {
    /// Serve the admin API at all.
    pub enabled: bool,
    /// Socket address the API listens on (`ip:port`).
    pub listen: String,
    /// Bearer token required on `/v1/*`. It can come from the environment
    /// (`DIALGATE_ADMIN_TOKEN`, which the CLI reads too, or
    /// `DIALGATE__ADMIN__TOKEN`), so it need not sit in a file.
    pub token: Option<String>,
}

impl Default for AdminSettings {
    fn default() -> Self {
        AdminSettings {
            enabled: true,
            listen: DEFAULT_LISTEN.to_owned(),
            token: None,
        }
    }
}

impl AdminSettings {
    /// The listen address, if it parses.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.parse().ok()
    }

    /// Every problem with the section, each naming its key.
    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if !self.enabled {
            return errors;
        }
        let addr = self.listen_addr();
        if addr.is_none() {
            errors.push(format!(
                "admin.listen: {:?} is not an ip:port socket address",
                self.listen
            ));
        }
        if let Some(token) = &self.token {
            if token.trim().is_empty() {
                errors.push("admin.token: must not be empty when set".to_owned());
            } else if token.chars().any(|c| c.is_control() || c == ' ') {
                errors
                    .push("admin.token: must not contain spaces or control characters".to_owned());
            }
        }
        if let Some(addr) = addr {
            // Anyone who reaches a non-loopback address could take over the
            // directory, so that needs a token.
            if !addr.ip().is_loopback() && self.token.is_none() {
                errors.push(format!(
                    "admin.listen: {addr} is not a loopback address, so admin.token \
                     (or DIALGATE_ADMIN_TOKEN in the environment) must be set"
                ));
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_loopback() {
        let s = AdminSettings::default();
        assert!(s.validate().is_empty());
        assert!(s.listen_addr().unwrap().ip().is_loopback());
        assert!(s.enabled);
    }

    #[test]
    fn public_listen_without_token_is_refused() {
        let s = AdminSettings {
            listen: "0.0.0.0:8080".into(),
            ..Default::default()
        };
        let errs = s.validate();
        assert_eq!(errs.len(), 1);
        assert!(errs[0].contains("admin.listen") && errs[0].contains("admin.token"));
        let ok = AdminSettings {
            token: Some("s3cret".into()),
            ..s
        };
        assert!(ok.validate().is_empty());
    }

    #[test]
    fn bad_values_name_their_keys() {
        let s = AdminSettings {
            listen: "localhost".into(),
            token: Some(" ".into()),
            enabled: true,
        };
        let errs = s.validate();
        assert!(errs.iter().any(|e| e.starts_with("admin.listen")));
        assert!(errs.iter().any(|e| e.starts_with("admin.token")));
    }

    #[test]
    fn toml_section_rejects_unknown_keys() {
        let s: AdminSettings = toml::from_str("listen = \"[::1]:9000\"").unwrap();
        assert_eq!(s.listen, "[::1]:9000");
        assert!(s.validate().is_empty());
        assert!(toml::from_str::<AdminSettings>("listne = \"x\"").is_err());
    }
}
