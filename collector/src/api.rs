//! The HTTP API (`/api/v1`, JSON); see `collector/README.md` for the reference.
//!
//! Every request but `GET /healthz` carries `Authorization: Bearer <token>`: no or an
//! unknown token is 401, a revoked one 403 (looked up on every request, so revocation
//! takes effect at once). Agents may post and read; readers may only read. Each
//! credential has a token bucket (429 with `Retry-After`).
//!
//! A refusal is `{"error": "...", "field": "..."}` (`field` when one field is at fault)
//! and leaves the store unchanged. Store work runs on blocking threads; a batch is
//! committed before its 200 is sent.

use crate::config::Limits;
use crate::ingest::IngestError;
use crate::merged::{Filter, Merged, View};
use crate::metrics::{Gauges, Metrics, Reason};
use crate::ratelimit::RateLimiter;
use crate::store::{AgentRecord, Store, StoreError};
use crate::token::{Role, TokenHash};
use axum::body::Bytes;
use axum::body::HttpBody;
use axum::extract::{FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use setten_agent::inventory::policy::Policy;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

/// Largest heartbeat body.
pub const MAX_HEARTBEAT_BYTES: usize = 64 << 10;
/// Bytes of an oversized body read and discarded before answering 413.
pub const DRAIN_BYTES: usize = 16 << 20;
/// How long a request body may take to arrive.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a batch waits for an ingest slot before 503.
pub const SLOT_WAIT: Duration = Duration::from_secs(30);
/// Requests in flight per allowed connection (HTTP/2 multiplexes); beyond, 503.
pub const IN_FLIGHT_PER_CONNECTION: usize = 4;
/// Longest `Authorization` header looked at.
const MAX_AUTH_HEADER: usize = 512;

struct Shared {
    store: Arc<dyn Store>,
    merged: Merged,
    metrics: Metrics,
    limiter: RateLimiter,
    limits: Limits,
    ingest_slots: Arc<Semaphore>,
    in_flight: Arc<Semaphore>,
    alerts: std::sync::OnceLock<Arc<crate::alerts::engine::Engine>>,
    alert_wake: std::sync::OnceLock<Arc<crate::alerts::worker::Wake>>,
}

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// Builds the merged inventory from the store (this reads every inventory finding)
    /// and the shared state. `oui_dir` replaces the system's IEEE registry.
    pub fn new(
        store: Arc<dyn Store>,
        policy: Policy,
        limits: Limits,
        oui_dir: Option<PathBuf>,
    ) -> Result<AppState, StoreError> {
        let merged = Merged::build(&*store, policy, oui_dir)?;
        Ok(AppState(Arc::new(Shared {
            store,
            merged,
            metrics: Metrics::default(),
            limiter: RateLimiter::new(limits.rate),
            ingest_slots: Arc::new(Semaphore::new(limits.ingest_concurrency.max(1))),
            in_flight: Arc::new(Semaphore::new(
                limits
                    .max_connections
                    .saturating_mul(IN_FLIGHT_PER_CONNECTION)
                    .max(1),
            )),
            limits,
            alerts: std::sync::OnceLock::new(),
            alert_wake: std::sync::OnceLock::new(),
        })))
    }

    /// Attaches the alert engine (once); `run` starts its tasks.
    pub fn set_alerts(&self, engine: Arc<crate::alerts::engine::Engine>) {
        let _ = self.0.alerts.set(engine);
    }

    /// The alert engine, when attached.
    pub fn alerts(&self) -> Option<&Arc<crate::alerts::engine::Engine>> {
        self.0.alerts.get()
    }

    pub(crate) fn set_alert_wake(&self, wake: Arc<crate::alerts::worker::Wake>) {
        let _ = self.0.alert_wake.set(wake);
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.0.store
    }

    /// The merged inventory.
    pub fn merged(&self) -> &Merged {
        &self.0.merged
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.0.limits
    }

    /// Parses, checks, stores and merges a batch from `agent` (blocking).
    pub fn ingest(&self, agent: &AgentRecord, bytes: &[u8]) -> Result<IngestReply, ApiError> {
        let s = &self.0;
        let (batch, done) = crate::ingest::ingest(&*s.store, agent, bytes, crate::now_us())
            .map_err(ApiError::from_ingest)?;
        s.metrics.batch(done.stored, done.duplicates);
        tracing::debug!(
            agent = %agent.name,
            stored = done.stored,
            duplicates = done.duplicates,
            last_seq = done.last_seq,
            "batch stored"
        );
        // Committed already: if the inventory cannot follow now, it catches up on the
        // next read.
        let reply = IngestReply {
            stored: done.stored,
            duplicates: done.duplicates,
            last_seq: done.last_seq,
        };
        if let Err(e) = s.merged.committed(&*s.store, &agent.name, batch, done) {
            tracing::error!("the inventory will catch up later: {e}");
        }
        if let Some(w) = s.alert_wake.get() {
            w.evaluate();
        }
        Ok(reply)
    }
}

/// The answer to a stored batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestReply {
    /// Findings newly stored.
    pub stored: u64,
    /// Findings the collector already had.
    pub duplicates: u64,
    /// The highest sequence number the collector holds for the agent.
    pub last_seq: u64,
}

/// A refused or failed request.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    reason: Reason,
    message: String,
    field: Option<String>,
    retry_after: Option<u64>,
}

/// Marks a response as a refusal, for the counters.
#[derive(Clone, Copy, Debug)]
struct Rejected(Reason);

impl ApiError {
    fn new(status: StatusCode, reason: Reason, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            reason,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    fn bad(field: Option<String>, message: impl Into<String>) -> ApiError {
        ApiError {
            field,
            ..ApiError::new(StatusCode::BAD_REQUEST, Reason::BadRequest, message)
        }
    }

    fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Reason::TooLarge,
            format!("the request body is larger than {limit} bytes; send smaller batches"),
        )
    }

    fn unavailable(message: impl Into<String>, retry_after: u64) -> ApiError {
        ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                Reason::Unavailable,
                message,
            )
        }
    }

    fn store(e: StoreError) -> ApiError {
        match e {
            StoreError::Revoked(name) => ApiError::new(
                StatusCode::FORBIDDEN,
                Reason::Revoked,
                format!("agent `{name}` is revoked"),
            ),
            e @ StoreError::SeqReused { .. } => {
                tracing::error!("{e}");
                ApiError::new(StatusCode::CONFLICT, Reason::Conflict, e.to_string())
            }
            other => {
                tracing::error!("store: {other}");
                ApiError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    ..ApiError::unavailable(
                        "the collector's store failed; nothing was stored, retry later",
                        5,
                    )
                }
            }
        }
    }

    fn from_ingest(e: IngestError) -> ApiError {
        match e {
            IngestError::Invalid { field, message } => ApiError::bad(field, message),
            IngestError::WrongAgent { message } => ApiError {
                field: Some("agent".into()),
                ..ApiError::new(StatusCode::FORBIDDEN, Reason::Forbidden, message)
            },
            IngestError::Store(s) => ApiError::store(s),
        }
    }

    fn joined(e: tokio::task::JoinError) -> ApiError {
        tracing::error!("a request's worker failed: {e}");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            ..ApiError::unavailable("internal error; nothing was stored, retry later", 5)
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: &self.message,
            field: self.field.as_deref(),
        };
        let mut r = json_response(self.status, &body);
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s.max(1)));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"setten\""),
            );
        }
        r.extensions_mut().insert(Rejected(self.reason));
        r
    }
}

fn json_response<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response(),
        Err(e) => {
            tracing::error!("cannot serialise a response: {e}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Runs store work on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::joined)?
}

/// The authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller(pub AgentRecord);

impl Caller {
    fn must_send(&self) -> Result<(), ApiError> {
        if self.0.role == Role::Agent {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                Reason::Forbidden,
                format!(
                    "`{}` is enrolled as a reader; only agents may send findings",
                    self.0.name
                ),
            ))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Caller, ApiError> {
        let unauth = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, Reason::Unauthenticated, m);
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauth("missing `Authorization: Bearer <token>` header"))?;
        let token = value
            .to_str()
            .ok()
            .filter(|v| v.len() <= MAX_AUTH_HEADER)
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .ok_or_else(|| unauth("the `Authorization` header must be `Bearer <token>`"))?;
        let hash = TokenHash::of(token);
        let store = st.0.store.clone();
        let found = blocking(move || store.agent_by_token(&hash).map_err(ApiError::store)).await?;
        let rec = found.ok_or_else(|| unauth("unknown token"))?;
        if let Some(at) = rec.revoked_us {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                Reason::Revoked,
                format!(
                    "agent `{}` was revoked at {}",
                    rec.name,
                    crate::time::render(Some(at)).unwrap_or_default()
                ),
            ));
        }
        if let Err(wait) = st.0.limiter.check(rec.id, tokio::time::Instant::now()) {
            return Err(ApiError {
                retry_after: Some(wait.as_secs_f64().ceil() as u64),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    Reason::RateLimited,
                    format!("too many requests from `{}`; retry later", rec.name),
                )
            });
        }
        tracing::Span::current().record("caller", rec.name.as_str());
        Ok(Caller(rec))
    }
}

/// The routes, with the request span and counters around them.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/findings", post(post_findings))
        .route("/api/v1/heartbeat", post(post_heartbeat))
        .route("/api/v1/connection-points", get(get_points))
        .route("/api/v1/connection-points/{id}", get(get_point))
        .route("/api/v1/hosts", get(get_hosts))
        .route("/api/v1/agents", get(get_agents))
        .route("/api/v1/report", get(get_report))
        .route("/api/v1/alerts", get(get_alerts))
        .route("/api/v1/alerts/{id}", get(get_alert))
        .route("/api/v1/alerts/{id}/ack", post(post_ack))
        .route("/healthz", get(healthz))
        .route("/metrics", get(get_metrics))
        .fallback(not_found)
        .merge(crate::ui::routes(&state))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

async fn track(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let start = std::time::Instant::now();
    let method = req.method().clone();
    let route = Metrics::route(
        method.as_str(),
        req.extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str),
    );
    let span = tracing::info_span!(
        "request",
        method = %method,
        path = %req.uri().path(),
        caller = tracing::field::Empty,
    );
    let resp = match st.0.in_flight.clone().try_acquire_owned() {
        Ok(permit) => {
            let r = next.run(req).instrument(span.clone()).await;
            drop(permit);
            r
        }
        Err(_) => ApiError::unavailable("the collector is busy; retry later", 1).into_response(),
    };
    let elapsed = start.elapsed();
    st.0.metrics.observe(route, elapsed);
    if let Some(Rejected(r)) = resp.extensions().get::<Rejected>() {
        st.0.metrics.reject(*r);
    }
    span.in_scope(|| {
        tracing::debug!(
            status = resp.status().as_u16(),
            micros = elapsed.as_micros() as u64,
            "answered"
        )
    });
    resp
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        Reason::NotFound,
        "no such resource; the API is under /api/v1 (see the collector's README)",
    )
}

async fn ingest_slot(st: &AppState) -> Result<OwnedSemaphorePermit, ApiError> {
    match tokio::time::timeout(SLOT_WAIT, st.0.ingest_slots.clone().acquire_owned()).await {
        Ok(Ok(p)) => Ok(p),
        _ => Err(ApiError::unavailable(
            "the collector is busy storing other batches; retry later",
            5,
        )),
    }
}

/// Reads a body of at most `limit` bytes: 413 beyond. A body declared larger than
/// `limit + DRAIN_BYTES` is refused before reading; otherwise the excess is read and
/// discarded, so a client still sending gets to read the 413 instead of a reset.
async fn read_body(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let give_up = limit.saturating_add(DRAIN_BYTES);
    if declared.is_some_and(|n| n > give_up as u64) {
        return Err(ApiError::too_large(limit));
    }
    let mut body = req.into_body();
    let mut buf: Vec<u8> = Vec::with_capacity(declared.map_or(0, |n| n.min(limit as u64) as usize));
    let mut seen = 0usize;
    let read = async {
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            let frame = frame
                .map_err(|e| ApiError::bad(None, format!("cannot read the request body: {e}")))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            seen = seen.saturating_add(data.len());
            if seen > give_up {
                break;
            }
            if seen <= limit {
                buf.extend_from_slice(&data);
            }
        }
        Ok::<(), ApiError>(())
    };
    match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            Reason::Timeout,
            format!(
                "the request body did not arrive within {} s",
                BODY_TIMEOUT.as_secs()
            ),
        )),
        Ok(Err(e)) => Err(e),
        Ok(Ok(())) if seen > limit => Err(ApiError::too_large(limit)),
        Ok(Ok(())) => Ok(Bytes::from(buf)),
    }
}

async fn post_findings(
    State(st): State<AppState>,
    caller: Caller,
    req: Request,
) -> Result<Response, ApiError> {
    caller.must_send()?;
    let _slot = ingest_slot(&st).await?;
    let bytes = read_body(req, st.0.limits.max_body_bytes).await?;
    let agent = caller.0;
    let st2 = st.clone();
    let reply = blocking(move || st2.ingest(&agent, &bytes)).await?;
    Ok(json_response(StatusCode::OK, &reply))
}

/// `POST /api/v1/heartbeat`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Heartbeat {
    agent: String,
    at_us: u64,
    health: serde_json::Map<String, serde_json::Value>,
}

async fn post_heartbeat(
    State(st): State<AppState>,
    caller: Caller,
    req: Request,
) -> Result<StatusCode, ApiError> {
    caller.must_send()?;
    let bytes = read_body(req, MAX_HEARTBEAT_BYTES).await?;
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let hb: Heartbeat = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() || path == "." {
                ApiError::bad(None, format!("malformed heartbeat: {inner}"))
            } else {
                ApiError::bad(Some(path.clone()), format!("{path}: {inner}"))
            }
        })
        .and_then(|hb| {
            de.end()
                .map(|()| hb)
                .map_err(|e| ApiError::bad(None, format!("malformed heartbeat: {e}")))
        })?;
    if hb.agent != caller.0.name {
        return Err(ApiError {
            field: Some("agent".into()),
            ..ApiError::new(
                StatusCode::FORBIDDEN,
                Reason::Forbidden,
                format!(
                    "agent: the heartbeat is for another agent than the credential (`{}`)",
                    caller.0.name
                ),
            )
        });
    }
    let at_us = i64::try_from(hb.at_us).map_err(|_| {
        ApiError::bad(
            Some("at_us".into()),
            format!("at_us: {} is out of range", hb.at_us),
        )
    })?;
    let health = serde_json::to_string(&hb.health).unwrap_or_else(|_| "{}".into());
    let store = st.0.store.clone();
    let id = caller.0.id;
    blocking(move || {
        store
            .heartbeat(id, at_us, &health, crate::now_us())
            .map_err(ApiError::store)
    })
    .await?;
    st.0.metrics.heartbeat();
    Ok(StatusCode::NO_CONTENT)
}

async fn view(st: &AppState) -> Result<Arc<View>, ApiError> {
    let st = st.clone();
    blocking(move || st.0.merged.view(&*st.0.store).map_err(ApiError::store)).await
}

#[derive(Serialize)]
struct PointsBody<'a> {
    points: Vec<&'a setten_agent::inventory::ConnectionPoint>,
    unseen: &'a [setten_agent::inventory::ledger::Entry],
}

async fn get_points(
    State(st): State<AppState>,
    _caller: Caller,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(pairs) =
        query.map_err(|e| ApiError::bad(None, format!("bad query string: {}", e.body_text())))?;
    let filter = Filter::from_query(&pairs).map_err(|e| ApiError::bad(Some(e.field), e.message))?;
    let v = view(&st).await?;
    // Serialising thousands of points is CPU work: off the reactor too.
    blocking(move || {
        let body = PointsBody {
            points: v.points.iter().filter(|p| filter.matches(p)).collect(),
            unseen: &v.unseen,
        };
        Ok(json_response(StatusCode::OK, &body))
    })
    .await
}

async fn get_point(
    State(st): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let v = view(&st).await?;
    match v.points.iter().find(|p| p.id == id) {
        Some(p) => Ok(json_response(StatusCode::OK, p)),
        None => {
            let shown: String = id.chars().take(64).collect();
            Err(ApiError::new(
                StatusCode::NOT_FOUND,
                Reason::NotFound,
                format!("no connection point `{}`", shown.escape_debug()),
            ))
        }
    }
}

async fn get_hosts(State(st): State<AppState>, _caller: Caller) -> Result<Response, ApiError> {
    let v = view(&st).await?;
    blocking(move || {
        #[derive(Serialize)]
        struct Hosts<'a> {
            hosts: &'a [crate::merged::Host],
        }
        Ok(json_response(StatusCode::OK, &Hosts { hosts: &v.hosts }))
    })
    .await
}

/// An agent as `GET /api/v1/agents` lists it.
#[derive(Debug, Serialize)]
struct AgentView {
    name: String,
    role: Role,
    created: Option<String>,
    revoked: Option<String>,
    last_seen: Option<String>,
    last_seq: u64,
    findings: u64,
    health: Option<serde_json::Value>,
    health_at: Option<String>,
}

async fn get_agents(State(st): State<AppState>, _caller: Caller) -> Result<Response, ApiError> {
    let store = st.0.store.clone();
    let agents = blocking(move || store.agents().map_err(ApiError::store)).await?;
    let t = |us| crate::time::render(us);
    let list: Vec<AgentView> = agents
        .into_iter()
        .map(|a| AgentView {
            created: t(Some(a.created_us)),
            revoked: t(a.revoked_us),
            last_seen: t(a.last_seen_us),
            health_at: t(a.health_at_us),
            name: a.name,
            role: a.role,
            last_seq: a.last_seq,
            findings: a.findings,
            health: a.health,
        })
        .collect();
    #[derive(Serialize)]
    struct Agents {
        agents: Vec<AgentView>,
    }
    Ok(json_response(StatusCode::OK, &Agents { agents: list }))
}

async fn healthz(State(st): State<AppState>) -> Response {
    let store = st.0.store.clone();
    match blocking(move || store.ping().map_err(ApiError::store)).await {
        Ok(()) => json_response(StatusCode::OK, &serde_json::json!({"status": "ok"})),
        Err(_) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"status": "unavailable", "error": "the store does not answer"}),
        ),
    }
}

async fn get_metrics(State(st): State<AppState>, _caller: Caller) -> Result<Response, ApiError> {
    let st2 = st.clone();
    let text = blocking(move || {
        let s = &st2.0;
        let agents = s.store.agents().map_err(ApiError::store)?;
        let mut g = Gauges {
            connection_points: s.merged.point_count() as u64,
            unreadable: s.merged.unreadable(),
            ..Gauges::default()
        };
        for a in &agents {
            g.findings += a.findings;
            match (a.is_revoked(), a.role) {
                (true, _) => g.revoked += 1,
                (false, Role::Agent) => g.agents += 1,
                (false, Role::Reader) => g.readers += 1,
            }
        }
        Ok(s.metrics.render(g))
    })
    .await?;
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertsQuery {
    state: Option<String>,
    severity: Option<String>,
    rule: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
    lang: Option<String>,
}

fn lang_param(l: Option<&str>) -> Result<crate::alerts::config::Lang, ApiError> {
    match l {
        None | Some("ja") => Ok(crate::alerts::config::Lang::Ja),
        Some("en") => Ok(crate::alerts::config::Lang::En),
        Some(other) => Err(ApiError::bad(
            Some("lang".into()),
            format!("lang: `{}` is not ja or en", other.escape_debug()),
        )),
    }
}

fn alert_id(id: &str) -> Result<i64, ApiError> {
    id.parse::<i64>().ok().filter(|i| *i > 0).ok_or_else(|| {
        let shown: String = id.chars().take(32).collect();
        ApiError::new(
            StatusCode::NOT_FOUND,
            Reason::NotFound,
            format!("no alert `{}`", shown.escape_debug()),
        )
    })
}

/// `GET /api/v1/alerts` (any role): newest first.
async fn get_alerts(
    State(st): State<AppState>,
    _caller: Caller,
    query: Result<Query<AlertsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    use crate::alerts::{AlertFilter, AlertState, Severity};
    let Query(q) =
        query.map_err(|e| ApiError::bad(None, format!("bad query string: {}", e.body_text())))?;
    let state = match q.state.as_deref() {
        None | Some("all") => AlertState::All,
        Some("open") => AlertState::Open,
        Some("acked") => AlertState::Acked,
        Some(o) => {
            return Err(ApiError::bad(
                Some("state".into()),
                format!("state: `{}` is not open, acked or all", o.escape_debug()),
            ))
        }
    };
    let min_severity = match q.severity.as_deref() {
        None => None,
        Some(s) => Some(Severity::parse(s).ok_or_else(|| {
            ApiError::bad(
                Some("severity".into()),
                format!(
                    "severity: `{}` is not info, warning or critical",
                    s.escape_debug()
                ),
            )
        })?),
    };
    let time = |k: &str, v: &Option<String>| -> Result<Option<i64>, ApiError> {
        v.as_deref()
            .map(|t| {
                crate::time::parse_rfc3339(t)
                    .map_err(|e| ApiError::bad(Some(k.into()), format!("{k}: {e}")))
            })
            .transpose()
    };
    let filter = AlertFilter {
        state,
        min_severity,
        rule: q.rule.clone(),
        since_us: time("since", &q.since)?,
        until_us: time("until", &q.until)?,
        limit: q.limit,
    };
    let lang = lang_param(q.lang.as_deref())?;
    let store = st.0.store.clone();
    let list =
        blocking(move || crate::alerts::list(&*store, &filter).map_err(ApiError::store)).await?;
    let body: Vec<serde_json::Value> = list
        .iter()
        .map(|a| crate::alerts::to_json(a, lang))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "alerts": body }),
    ))
}

/// `GET /api/v1/alerts/{id}`.
async fn get_alert(
    State(st): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(pairs) =
        query.map_err(|e| ApiError::bad(None, format!("bad query string: {}", e.body_text())))?;
    let mut lang = crate::alerts::config::Lang::Ja;
    for (k, v) in &pairs {
        match k.as_str() {
            "lang" => lang = lang_param(Some(v))?,
            other => {
                return Err(ApiError::bad(
                    Some(other.chars().take(32).collect()),
                    "unknown parameter; only lang is taken",
                ))
            }
        }
    }
    let id = alert_id(&id)?;
    let store = st.0.store.clone();
    match blocking(move || crate::alerts::get(&*store, id).map_err(ApiError::store)).await? {
        Some(a) => Ok(json_response(
            StatusCode::OK,
            &crate::alerts::to_json(&a, lang),
        )),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            Reason::NotFound,
            format!("no alert #{id}"),
        )),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AckBody {
    note: Option<String>,
}

/// `POST /api/v1/alerts/{id}/ack` (role reader: a person, or the UI on a person's
/// behalf; agent tokens are machines and may not acknowledge).
async fn post_ack(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    if caller.0.role != Role::Reader {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            Reason::Forbidden,
            format!(
                "`{}` is an agent; alerts are acknowledged by people, with a reader token",
                caller.0.name
            ),
        ));
    }
    let id = alert_id(&id)?;
    let bytes = read_body(req, MAX_HEARTBEAT_BYTES).await?;
    let body: AckBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        AckBody::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad(None, format!("malformed acknowledgement: {e}")))?
    };
    let store = st.0.store.clone();
    let by = caller.0.name.clone();
    let a = blocking(move || {
        crate::alerts::acknowledge(&*store, id, &by, body.note.as_deref()).map_err(|e| match e {
            crate::alerts::AckError::NotFound(id) => ApiError::new(
                StatusCode::NOT_FOUND,
                Reason::NotFound,
                format!("no alert #{id}"),
            ),
            crate::alerts::AckError::NoName => ApiError::bad(None, e.to_string()),
            crate::alerts::AckError::Store(s) => ApiError::store(s),
        })
    })
    .await?;
    Ok(json_response(
        StatusCode::OK,
        &crate::alerts::to_json(&a, crate::alerts::config::Lang::Ja),
    ))
}

/// `GET /api/v1/report?lang=ja|en&format=html|csv|json`: the survey report as a download
/// (any enrolled, unrevoked credential: readers and agents).
async fn get_report(
    State(st): State<AppState>,
    _caller: Caller,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    use setten_agent::inventory::output::Lang;
    use setten_agent::report::Format;
    let Query(pairs) =
        query.map_err(|e| ApiError::bad(None, format!("bad query string: {}", e.body_text())))?;
    let mut lang = None;
    let mut format = None;
    for (k, v) in &pairs {
        let shown: String = v.chars().take(32).collect();
        match k.as_str() {
            "lang" if lang.is_none() => {
                lang = Some(match v.as_str() {
                    "ja" => Lang::Ja,
                    "en" => Lang::En,
                    _ => {
                        return Err(ApiError::bad(
                            Some("lang".into()),
                            format!("lang: `{}` is not a language; one of: ja, en", shown.escape_debug()),
                        ))
                    }
                })
            }
            "format" if format.is_none() => {
                format = Some(match Format::parse(v) {
                    Some(f @ (Format::Html | Format::Csv | Format::Json)) => f,
                    _ => {
                        return Err(ApiError::bad(
                            Some("format".into()),
                            format!(
                                "format: `{}` is not a report format; one of: html, csv, json (PDF: `setten-collector report --format pdf`)",
                                shown.escape_debug()
                            ),
                        ))
                    }
                })
            }
            "lang" | "format" => {
                return Err(ApiError::bad(Some(k.clone()), format!("{k}: given more than once")))
            }
            other => {
                let other: String = other.chars().take(32).collect();
                return Err(ApiError::bad(
                    Some(other.clone()),
                    format!("`{}` is not a parameter of this route; use lang and format", other.escape_debug()),
                ));
            }
        }
    }
    let (lang, format) = (lang.unwrap_or(Lang::Ja), format.unwrap_or(Format::Html));
    let st2 = st.clone();
    let out = blocking(move || {
        crate::report::render(&st2, lang, format).map_err(|e| match e {
            crate::report::ReportError::Store(s) => ApiError::store(s),
            crate::report::ReportError::Render(r) => {
                tracing::error!("report: {r}");
                ApiError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    ..ApiError::unavailable(
                        "the report could not be made; see the collector's log",
                        5,
                    )
                }
            }
        })
    })
    .await?;
    let disposition = format!("attachment; filename=\"{}\"", out.filename);
    let mut r = (StatusCode::OK, out.bytes).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(out.content_type),
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The report fetches nothing and runs no script; say so to the browser too.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; img-src data:"),
    );
    Ok(r)
}
