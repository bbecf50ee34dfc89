//! The admin HTTP API (routes listed in the [module docs](super)).
//!
//! Handlers are thin: parse and validate the request, call the
//! [`DirectoryService`], map the answer to a JSON view. Every failure,
//! including axum's own rejections, unknown routes and wrong methods, is
//! answered as `{"error": {"code", "message"}}`.

use super::rfc3339;
use super::DialInNumberView;
use crate::directory::service::{
    DirectoryError, DirectoryService, IdMode, IdState, Meeting, NewMeeting, NewOrganizer, Organizer,
};
use crate::directory::ConferenceId;
use crate::notify::{
    conference_info, is_plain_address, InfoReason, Notice, NoticeStatus, Notifier, NotifyError,
};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

/// Page size when `limit` is not given.
pub const DEFAULT_PAGE: usize = 100;
/// Largest page a client may ask for.
pub const MAX_PAGE: usize = 1000;
/// Largest request body accepted, in bytes.
pub const MAX_BODY: usize = 2 * 1024 * 1024;
/// Longest organizer id or display name, in bytes (the directory's limit).
pub const MAX_TEXT: usize = 320;
/// Digits in a leader PIN (the directory's rule).
pub const LEADER_PIN_LEN: std::ops::RangeInclusive<usize> = 4..=12;

/// Everything the handlers need; cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct AdminState {
    inner: Arc<StateInner>,
}

#[derive(Clone)]
struct StateInner {
    directory: Arc<dyn DirectoryService>,
    token: Option<String>,
    dial_in: Vec<DialInNumberView>,
    notifier: Option<Notifier>,
    send_on_reset: bool,
}

impl AdminState {
    /// State over `directory`: no token, no dial-in numbers, no notifier,
    /// conference info sent on reset once a notifier is added.
    pub fn new(directory: Arc<dyn DirectoryService>) -> Self {
        AdminState {
            inner: Arc::new(StateInner {
                directory,
                token: None,
                dial_in: Vec::new(),
                notifier: None,
                send_on_reset: true,
            }),
        }
    }

    /// Requires `Authorization: Bearer <token>` on `/v1/*` (`None`: open,
    /// which config validation allows on loopback only).
    pub fn with_token(mut self, token: Option<String>) -> Self {
        Arc::make_mut(&mut self.inner).token = token;
        self
    }

    /// The dial-in numbers shown in organizer views and emails.
    pub fn with_dial_in_numbers(mut self, numbers: Vec<DialInNumberView>) -> Self {
        Arc::make_mut(&mut self.inner).dial_in = numbers;
        self
    }

    /// Enables email notices through `notifier`.
    pub fn with_notifier(mut self, notifier: Notifier) -> Self {
        Arc::make_mut(&mut self.inner).notifier = Some(notifier);
        self
    }

    /// Whether a reset queues a conference-info email (default true).
    pub fn with_send_on_reset(mut self, send: bool) -> Self {
        Arc::make_mut(&mut self.inner).send_on_reset = send;
        self
    }

    fn dir(&self) -> &dyn DirectoryService {
        self.inner.directory.as_ref()
    }
}

/// The API's routes over `state`.
pub fn router(state: AdminState) -> Router {
    let v1 = Router::new()
        .route(
            "/v1/organizers",
            post(create_organizer).get(list_organizers),
        )
        .route(
            "/v1/organizers/{id}",
            get(show_organizer).delete(delete_organizer),
        )
        .route("/v1/organizers/{id}/conference-id", put(set_conference_id))
        .route(
            "/v1/organizers/{id}/conference-id/reset",
            post(reset_conference_id),
        )
        .route(
            "/v1/organizers/{id}/send-conference-info",
            post(send_conference_info),
        )
        .route("/v1/meetings", post(create_meeting))
        .route(
            "/v1/meetings/{id}",
            get(show_meeting).delete(delete_meeting),
        )
        .route("/v1/conference-ids/{cid}", get(conference_id_status))
        .route("/v1/outbox", get(outbox))
        .route("/healthz", get(healthz))
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method);
    v1.layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(reject_announced_oversize))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(middleware::from_fn(close_after_unread_body))
        .with_state(state)
}

/// An error answered before the request body was read (401, 413, 415, …)
/// leaves unread bytes on the connection, and the server then closes it.
/// Saying so with `Connection: close` (RFC 9112 §9.6) keeps a client from
/// sending its next request on a connection that is about to go away.
async fn close_after_unread_body(req: Request, next: Next) -> Response {
    let has_body = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0)
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    let mut resp = next.run(req).await;
    if has_body && (resp.status().is_client_error() || resp.status().is_server_error()) {
        resp.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    resp
}

/// Serves the API on `listener` until `shutdown` resolves, then finishes
/// the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AdminState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

// ---------------------------------------------------------------- errors

/// An API failure: HTTP status plus a stable machine-readable code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
}

/// The error body: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// Inside [`ErrorBody`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<DirectoryError> for ApiError {
    fn from(e: DirectoryError) -> Self {
        let msg = e.to_string();
        match e {
            DirectoryError::NotFound { .. } => Self::new(StatusCode::NOT_FOUND, "not_found", msg),
            DirectoryError::AlreadyExists { .. } => {
                Self::new(StatusCode::CONFLICT, "already_exists", msg)
            }
            DirectoryError::InUse(_) => Self::new(StatusCode::CONFLICT, "in_use", msg),
            DirectoryError::Quarantined(_) => Self::new(StatusCode::CONFLICT, "quarantined", msg),
            DirectoryError::WrongMode(..) => Self::new(StatusCode::CONFLICT, "wrong_mode", msg),
            DirectoryError::InvalidId(_) => Self::invalid("invalid_conference_id", msg),
            DirectoryError::Invalid { .. } => Self::invalid("invalid_field", msg),
            DirectoryError::Exhausted => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "id_space_exhausted", msg)
            }
            DirectoryError::Storage(_) => {
                tracing::error!(error = %msg, "directory storage failure");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "storage", msg)
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let msg = r.body_text();
        match r {
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected a body with Content-Type: application/json",
            ),
            JsonRejection::JsonSyntaxError(_) => {
                Self::new(StatusCode::BAD_REQUEST, "malformed_json", msg)
            }
            JsonRejection::JsonDataError(_) => Self::bad_request(msg),
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", msg)
            }
            _ => Self::bad_request(msg),
        }
    }
}

// ------------------------------------------------------------ extractors

/// `Json` whose rejection is an [`ApiError`].
struct ApiJson<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(v)| ApiJson(v))
            .map_err(ApiError::from)
    }
}

/// `Path` whose rejection is an [`ApiError`].
struct ApiPath<T>(T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| ApiPath(v))
            .map_err(|r: PathRejection| ApiError::new(r.status(), "bad_path", r.body_text()))
    }
}

/// `Query` whose rejection is an [`ApiError`].
struct ApiQuery<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| ApiQuery(v))
            .map_err(|r: QueryRejection| {
                ApiError::new(StatusCode::BAD_REQUEST, "bad_query", r.body_text())
            })
    }
}

// ------------------------------------------------------------ body size

/// Refuses a body whose announced `Content-Length` exceeds [`MAX_BODY`]
/// before reading any of it (RFC 9110 §15.5.14), so a client that sent
/// `Expect: 100-continue` never uploads it (§10.1.1). Bodies without a
/// length are cut off at the same limit while being read.
async fn reject_announced_oversize(req: Request, next: Next) -> Response {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match announced {
        Some(n) if n > MAX_BODY as u64 => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("a request body of {n} bytes is larger than the limit of {MAX_BODY}"),
        )
        .into_response(),
        _ => next.run(req).await,
    }
}

// ------------------------------------------------------------------ auth

/// Compares without an early exit, so response time does not reveal how
/// much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    std::hint::black_box(diff) == 0
}

/// RFC 6750 §2.1 bearer token check on everything but `/healthz`.
async fn require_token(State(state): State<AdminState>, req: Request, next: Next) -> Response {
    let Some(expected) = state.inner.token.as_deref() else {
        return next.run(req).await;
    };
    if req.uri().path() == "/healthz" {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty());
    match presented {
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing bearer token (Authorization: Bearer <token>)",
        )
        .into_response(),
        Some(token) if !constant_time_eq(token.as_bytes(), expected.as_bytes()) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "invalid bearer token",
        )
        .into_response(),
        Some(_) => next.run(req).await,
    }
}

// ----------------------------------------------------------------- views

/// An organizer as the API shows it. The leader PIN is never echoed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrganizerView {
    pub id: String,
    pub display_name: String,
    pub email: String,
    pub has_leader_pin: bool,
    pub mode: IdMode,
    pub conference_id: Option<ConferenceId>,
    pub dial_in_numbers: Vec<DialInNumberView>,
    pub created_at: String,
    pub updated_at: String,
}

impl OrganizerView {
    fn new(o: Organizer, dial_in: &[DialInNumberView]) -> Self {
        OrganizerView {
            has_leader_pin: o.leader_pin.is_some(),
            id: o.id,
            display_name: o.display_name,
            email: o.email,
            mode: o.mode,
            conference_id: o.conference_id,
            dial_in_numbers: dial_in.to_vec(),
            created_at: rfc3339::format(o.created_at),
            updated_at: rfc3339::format(o.updated_at),
        }
    }
}

/// A meeting with a dynamic conference ID.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MeetingView {
    pub id: String,
    pub organizer: String,
    pub conference_id: ConferenceId,
    pub expires_at: Option<String>,
    pub created_at: String,
    pub dial_in_numbers: Vec<DialInNumberView>,
}

impl MeetingView {
    fn new(m: Meeting, dial_in: &[DialInNumberView]) -> Self {
        MeetingView {
            id: m.id,
            organizer: m.organizer,
            conference_id: m.conference_id,
            expires_at: m.expires_at.map(rfc3339::format),
            created_at: rfc3339::format(m.created_at),
            dial_in_numbers: dial_in.to_vec(),
        }
    }
}

/// One page of organizers; pass `next` as `after` for the following page.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrganizerPage {
    pub items: Vec<OrganizerView>,
    pub next: Option<String>,
}

/// The answer to a reset.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ResetView {
    /// The ID that no longer works.
    pub previous: ConferenceId,
    /// The new ID.
    pub conference_id: ConferenceId,
    pub organizer: OrganizerView,
    /// Outbox entry of the conference-info email, when one was queued.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub notice_id: Option<String>,
    /// Why no email was queued although notices are on.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub notice_error: Option<String>,
}

/// Status of one conference ID.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConferenceIdView {
    pub conference_id: ConferenceId,
    /// `active`, `reset`, `expired` or `unknown`.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub organizer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub meeting: Option<String>,
    /// Active since.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub since: Option<String>,
    /// Reset or expired at.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub quarantined_until: Option<String>,
}

/// One outbox entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NoticeView {
    pub id: String,
    pub to: String,
    pub subject: String,
    pub status: NoticeStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub next_attempt: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

impl From<Notice> for NoticeView {
    fn from(n: Notice) -> Self {
        NoticeView {
            id: n.id,
            to: n.to,
            subject: n.subject,
            status: n.status,
            attempts: n.attempts,
            last_error: n.last_error,
            next_attempt: n.next_attempt.map(rfc3339::format),
            created_at: rfc3339::format(n.created_at),
            finished_at: n.finished_at.map(rfc3339::format),
        }
    }
}

// -------------------------------------------------------------- requests

/// `POST /v1/organizers` body.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateOrganizer {
    pub id: String,
    pub display_name: String,
    pub email: String,
    /// 4 to 12 digits; stored, never shown again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_pin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<IdMode>,
    /// Digit string; absent: the directory assigns one (static mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conference_id: Option<String>,
}

/// `PUT /v1/organizers/{id}/conference-id` body.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SetConferenceId {
    pub conference_id: String,
}

/// `POST /v1/meetings` body. `expires_at` is an RFC 3339 timestamp.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CreateMeeting {
    pub organizer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ListParams {
    after: Option<String>,
    limit: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct OutboxParams {
    limit: Option<usize>,
}

fn parse_cid(state: &AdminState, s: &str) -> Result<ConferenceId, ApiError> {
    ConferenceId::parse(s, state.dir().id_length())
        .map_err(|e| ApiError::invalid("invalid_conference_id", format!("{s:?}: {e}")))
}

fn check_text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::invalid(
            "invalid_field",
            format!("{field} must not be empty"),
        ));
    }
    if value.len() > max || value.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "invalid_field",
            format!("{field} must be at most {max} bytes without control characters"),
        ));
    }
    Ok(())
}

fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_query",
            format!("limit {n} is outside 1..={MAX_PAGE}"),
        )),
    }
}

// -------------------------------------------------------------- handlers

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn unknown_route(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {} {}", req.method(), req.uri().path()),
    )
}

async fn wrong_method(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

async fn create_organizer(
    State(state): State<AdminState>,
    ApiJson(body): ApiJson<CreateOrganizer>,
) -> Result<(StatusCode, Json<OrganizerView>), ApiError> {
    check_text("id", &body.id, MAX_TEXT)?;
    if body.id.chars().any(char::is_whitespace) {
        return Err(ApiError::invalid(
            "invalid_field",
            "id must not contain whitespace",
        ));
    }
    check_text("display_name", &body.display_name, MAX_TEXT)?;
    if !is_plain_address(&body.email) {
        return Err(ApiError::invalid(
            "invalid_field",
            format!("email {:?} is not a plain email address", body.email),
        ));
    }
    if let Some(pin) = &body.leader_pin {
        if !LEADER_PIN_LEN.contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::invalid(
                "invalid_field",
                "leader_pin must be 4 to 12 digits",
            ));
        }
    }
    let conference_id = body
        .conference_id
        .as_deref()
        .map(|s| parse_cid(&state, s))
        .transpose()?;
    let new = NewOrganizer {
        id: body.id,
        display_name: body.display_name,
        email: body.email,
        leader_pin: body.leader_pin,
        mode: body.mode,
        conference_id,
    };
    let org = state.dir().create_organizer(new).await?;
    Ok((
        StatusCode::CREATED,
        Json(OrganizerView::new(org, &state.inner.dial_in)),
    ))
}

async fn show_organizer(
    State(state): State<AdminState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<OrganizerView>, ApiError> {
    let org = state.dir().organizer(id).await?;
    Ok(Json(OrganizerView::new(org, &state.inner.dial_in)))
}

async fn list_organizers(
    State(state): State<AdminState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<OrganizerPage>, ApiError> {
    let limit = page_limit(params.limit)?;
    let page = state
        .dir()
        .list_organizers(params.after.filter(|a| !a.is_empty()), limit)
        .await?;
    Ok(Json(OrganizerPage {
        items: page
            .items
            .into_iter()
            .map(|o| OrganizerView::new(o, &state.inner.dial_in))
            .collect(),
        next: page.next,
    }))
}

async fn delete_organizer(
    State(state): State<AdminState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.dir().delete_organizer(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_conference_id(
    State(state): State<AdminState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<SetConferenceId>,
) -> Result<Json<OrganizerView>, ApiError> {
    let cid = parse_cid(&state, &body.conference_id)?;
    let org = match state.dir().set_conference_id(id.clone(), cid).await {
        Ok(org) => org,
        // PUT is idempotent (RFC 9110 §9.2.2): asking again for the ID the
        // organizer already has (a retried request, say) is a success, not
        // a conflict with itself.
        Err(DirectoryError::InUse(taken)) => {
            let org = state.dir().organizer(id).await?;
            if org.conference_id != Some(taken) {
                return Err(DirectoryError::InUse(taken).into());
            }
            org
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Json(OrganizerView::new(org, &state.inner.dial_in)))
}

/// Maps a notice problem to the API's error vocabulary.
fn notice_error(e: NotifyError) -> ApiError {
    match e {
        NotifyError::NoConferenceId(_) => {
            ApiError::new(StatusCode::CONFLICT, "no_conference_id", e.to_string())
        }
        NotifyError::BadAddress(_) => ApiError::invalid("invalid_field", e.to_string()),
        NotifyError::NotConfigured(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "notices_disabled",
            e.to_string(),
        ),
        NotifyError::Storage(_) | NotifyError::Corrupt { .. } => {
            tracing::error!(error = %e, "outbox failure");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage", e.to_string())
        }
    }
}

async fn queue_info(
    state: &AdminState,
    notifier: &Notifier,
    org: &Organizer,
    reason: InfoReason,
) -> Result<String, ApiError> {
    let notice = conference_info(org, &state.inner.dial_in, reason).map_err(notice_error)?;
    notifier.enqueue(notice).await.map_err(notice_error)
}

async fn reset_conference_id(
    State(state): State<AdminState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ResetView>, ApiError> {
    let outcome = state.dir().reset_conference_id(id).await?;
    let (mut notice_id, mut notice_error) = (None, None);
    if let (Some(notifier), true) = (&state.inner.notifier, state.inner.send_on_reset) {
        // The reset is already durable: a failure to queue the email is
        // reported, never turned into a failed reset.
        match queue_info(&state, notifier, &outcome.organizer, InfoReason::Reset).await {
            Ok(id) => notice_id = Some(id),
            Err(e) => notice_error = Some(e.message),
        }
    }
    Ok(Json(ResetView {
        previous: outcome.previous,
        conference_id: outcome.current,
        organizer: OrganizerView::new(outcome.organizer, &state.inner.dial_in),
        notice_id,
        notice_error,
    }))
}

async fn send_conference_info(
    State(state): State<AdminState>,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let Some(notifier) = state.inner.notifier.clone() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "notices_disabled",
            "email notices are not configured (see [notify] in the configuration)",
        ));
    };
    let org = state.dir().organizer(id).await?;
    let notice_id = queue_info(&state, &notifier, &org, InfoReason::Requested).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"notice_id": notice_id, "to": org.email})),
    ))
}

async fn create_meeting(
    State(state): State<AdminState>,
    ApiJson(body): ApiJson<CreateMeeting>,
) -> Result<(StatusCode, Json<MeetingView>), ApiError> {
    check_text("organizer", &body.organizer, MAX_TEXT)?;
    let expires_at = body
        .expires_at
        .as_deref()
        .map(|s| {
            rfc3339::parse(s).map_err(|e| {
                ApiError::invalid("invalid_timestamp", format!("expires_at {s:?}: {e}"))
            })
        })
        .transpose()?;
    let meeting = state
        .dir()
        .create_meeting(NewMeeting {
            organizer: body.organizer,
            expires_at,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(MeetingView::new(meeting, &state.inner.dial_in)),
    ))
}

async fn show_meeting(
    State(state): State<AdminState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<MeetingView>, ApiError> {
    let meeting = state.dir().meeting(id).await?;
    Ok(Json(MeetingView::new(meeting, &state.inner.dial_in)))
}

async fn delete_meeting(
    State(state): State<AdminState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.dir().delete_meeting(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn conference_id_status(
    State(state): State<AdminState>,
    ApiPath(cid): ApiPath<String>,
) -> Result<Json<ConferenceIdView>, ApiError> {
    let id = parse_cid(&state, &cid)?;
    let status = state
        .dir()
        .conference_id_status(id, SystemTime::now())
        .await?;
    let mut view = ConferenceIdView {
        conference_id: id,
        state: String::new(),
        organizer: None,
        meeting: None,
        since: None,
        at: None,
        quarantined_until: None,
    };
    match status {
        IdState::Active {
            organizer,
            meeting,
            since,
        } => {
            view.state = "active".into();
            view.organizer = Some(organizer);
            view.meeting = Some(meeting);
            view.since = Some(rfc3339::format(since));
        }
        IdState::Reset {
            organizer,
            at,
            quarantined_until,
        } => {
            view.state = "reset".into();
            view.organizer = Some(organizer);
            view.at = Some(rfc3339::format(at));
            view.quarantined_until = quarantined_until.map(rfc3339::format);
        }
        IdState::Expired {
            organizer,
            meeting,
            at,
        } => {
            view.state = "expired".into();
            view.organizer = Some(organizer);
            view.meeting = Some(meeting);
            view.at = Some(rfc3339::format(at));
        }
        IdState::Unknown => view.state = "unknown".into(),
    }
    Ok(Json(view))
}

async fn outbox(
    State(state): State<AdminState>,
    ApiQuery(params): ApiQuery<OutboxParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = page_limit(params.limit)?;
    let items: Vec<NoticeView> = state
        .inner
        .notifier
        .as_ref()
        .map(|n| n.recent(limit).into_iter().map(NoticeView::from).collect())
        .unwrap_or_default();
    Ok(Json(serde_json::json!({
        "enabled": state.inner.notifier.is_some(),
        "items": items,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3cres"));
        assert!(!constant_time_eq(b"s3cret", b"s3cret!"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn page_limits() {
        assert_eq!(page_limit(None).unwrap(), DEFAULT_PAGE);
        assert_eq!(page_limit(Some(1000)).unwrap(), 1000);
        assert!(page_limit(Some(0)).is_err());
        assert!(page_limit(Some(1001)).is_err());
    }
}
