//! The web UI under `/ui/`, served beside `/api/v1` by the same server.
//!
//! Pages are rendered on the server with minijinja from templates built into the binary
//! (`collector/ui/templates/`), HTML-escaped everywhere: host names, SNI and certificate
//! fields come from the network. No JavaScript; one stylesheet served from `/ui/static/`;
//! nothing is fetched from elsewhere. Japanese by default, English by a link that sets a
//! cookie (`setten_lang`); strings come from one catalog per language ([`i18n`]).
//!
//! Every page but the login page needs a session ([`auth`]); without one a request is
//! redirected to `/ui/login`. Every POST is checked for the session's CSRF token and
//! its `Origin`/`Referer` by [`require_session`] before any handler runs. Viewers read;
//! admins also act (acknowledge alerts).
//!
//! Every response carries a strict Content-Security-Policy (`default-src 'self'`, no
//! inline script, `frame-ancestors 'none'`), `X-Frame-Options: DENY`,
//! `X-Content-Type-Options: nosniff` and `Referrer-Policy: same-origin`. Not
//! `no-referrer`: under it browsers send `Origin: null` with form posts (Fetch standard,
//! "serializing a request origin"), which would defeat the Origin check; `same-origin`
//! still sends nothing to other sites.

pub mod auth;
pub mod backup;
pub mod chart;
pub mod i18n;
mod pages;

use crate::api::AppState;
use crate::store::{SessionRecord, UserRole};
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Router};
use i18n::{Catalogs, Lang};
use minijinja::{context, Environment, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// The session cookie.
pub const SESSION_COOKIE: &str = "setten_session";
/// The login form's double-submit cookie.
pub const LOGIN_COOKIE: &str = "setten_login";
/// The language cookie.
pub const LANG_COOKIE: &str = "setten_lang";
/// Largest form body accepted.
pub const MAX_FORM_BYTES: usize = 64 << 10;
/// Longest `Cookie` header looked at.
const MAX_COOKIE_HEADER: usize = 8192;
/// The Content-Security-Policy of every UI response.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The templates, by name.
pub const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../ui/templates/base.html")),
    ("login.html", include_str!("../../ui/templates/login.html")),
    ("error.html", include_str!("../../ui/templates/error.html")),
    (
        "inventory.html",
        include_str!("../../ui/templates/inventory.html"),
    ),
    ("point.html", include_str!("../../ui/templates/point.html")),
    ("hosts.html", include_str!("../../ui/templates/hosts.html")),
    (
        "agents.html",
        include_str!("../../ui/templates/agents.html"),
    ),
    (
        "backups.html",
        include_str!("../../ui/templates/backups.html"),
    ),
    (
        "alerts.html",
        include_str!("../../ui/templates/alerts.html"),
    ),
    ("alert.html", include_str!("../../ui/templates/alert.html")),
    (
        "report.html",
        include_str!("../../ui/templates/report.html"),
    ),
    (
        "macros.html",
        include_str!("../../ui/templates/macros.html"),
    ),
];

const CSS: &str = include_str!("../../ui/static/ui.css");

/// Whether the server speaks HTTPS (decides the cookies' `Secure`). Added by the server
/// as a request extension; without it cookies are `Secure`.
#[derive(Clone, Copy, Debug)]
pub struct Secure(pub bool);

/// What the UI keeps besides the application state.
pub struct Ui {
    env: Environment<'static>,
    catalogs: Catalogs,
    throttle: auth::Throttle,
    verify_slots: Arc<Semaphore>,
    /// Verified against for unknown names, so they take as long as known ones.
    dummy_phc: String,
    last_purge: AtomicI64,
}

impl std::fmt::Debug for Ui {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ui").finish_non_exhaustive()
    }
}

impl Ui {
    fn new() -> Ui {
        let mut env = Environment::new();
        // Every template is HTML: escape everything, whatever the template's name.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        for (name, src) in TEMPLATES {
            // Built in and covered by the tests: a syntax error is a build defect.
            if let Err(e) = env.add_template(name, src) {
                panic!("built-in template {name}: {e}");
            }
        }
        let catalogs = Catalogs::load().unwrap_or_else(|e| panic!("built-in catalog {e}"));
        let dummy_phc =
            auth::hash_password("setten-dummy-password").unwrap_or_else(|_| String::new());
        Ui {
            env,
            catalogs,
            throttle: auth::Throttle::default(),
            verify_slots: Arc::new(Semaphore::new(auth::VERIFY_SLOTS)),
            dummy_phc,
            last_purge: AtomicI64::new(0),
        }
    }

    fn render(&self, status: StatusCode, name: &str, ctx: Value) -> Response {
        match self.env.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(html) => (
                status,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                )],
                html,
            )
                .into_response(),
            Err(e) => {
                tracing::error!("template {name}: {e:#}");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
            }
        }
    }
}

/// A logged-in request: the session and the page's common values.
#[derive(Clone, Debug)]
pub struct Authed {
    /// The session.
    pub session: SessionRecord,
}

impl Authed {
    /// Whether the user may act (acknowledge alerts, manage).
    pub fn is_admin(&self) -> bool {
        self.session.user.role == UserRole::Admin
    }
}

/// The common values of a page.
pub(crate) struct Page<'a> {
    ui: &'a Ui,
    lang: Lang,
    authed: Option<&'a Authed>,
    /// Path and query, for the language switch's way back.
    here: String,
}

impl<'a> Page<'a> {
    pub(crate) fn t(&self, key: &str) -> String {
        self.ui.catalogs.text(self.lang, key)
    }

    fn base(&self, nav: &str) -> Value {
        let user = self.authed.map(|a| {
            context! {
                name => a.session.user.name.clone(),
                role => a.session.user.role.as_str(),
                admin => a.is_admin(),
            }
        });
        context! {
            t => self.ui.catalogs.get(self.lang).clone(),
            lang => self.lang.as_str(),
            other_lang => match self.lang { Lang::Ja => "en", Lang::En => "ja" },
            user => user,
            csrf => self.authed.map(|a| a.session.csrf.clone()),
            nav => nav,
            here => self.here.clone(),
        }
    }

    pub(crate) fn render(&self, status: StatusCode, name: &str, nav: &str, ctx: Value) -> Response {
        let ctx = context! { ..ctx, ..self.base(nav) };
        self.ui.render(status, name, ctx)
    }

    pub(crate) fn error(
        &self,
        status: StatusCode,
        message_key: &str,
        detail: Option<String>,
    ) -> Response {
        self.render(
            status,
            "error.html",
            "",
            context! { message => self.t(message_key), detail => detail, status => status.as_u16() },
        )
    }

    pub(crate) fn lang(&self) -> Lang {
        self.lang
    }
}

/// The UI's routes (merged into the API router, which adds the request tracking).
pub fn routes(state: &AppState) -> Router<AppState> {
    let ui = Arc::new(Ui::new());
    let authed = Router::new()
        .route("/ui/", get(pages::inventory))
        .route("/ui/points/{id}", get(pages::point))
        .route("/ui/hosts", get(pages::hosts))
        .route("/ui/agents", get(pages::agents))
        .route("/ui/backups", get(pages::backups))
        .route("/ui/report", get(pages::report_page))
        .route("/ui/alerts", get(pages::alerts_page))
        .route("/ui/alerts/{id}", get(pages::alert_page))
        .route("/ui/alerts/{id}/ack", axum::routing::post(pages::ack))
        .route("/ui/report/file", get(pages::report_file))
        .route("/ui/logout", axum::routing::post(logout))
        .route("/ui/{*rest}", get(not_found_page))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_session,
        ));
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/lang/{lang}", get(set_lang))
        .route("/ui/static/ui.css", get(css))
        .merge(authed)
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(middleware::from_fn(security_headers))
        .layer(Extension(ui))
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    // A handler may set a stricter policy of its own (the survey report).
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    r
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

/// A cookie's value from the request.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| v.len() <= MAX_COOKIE_HEADER)
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn lang_of(headers: &HeaderMap) -> Lang {
    cookie(headers, LANG_COOKIE)
        .and_then(Lang::parse)
        .unwrap_or_default()
}

fn secure(req_ext: Option<&Secure>) -> bool {
    req_ext.is_none_or(|s| s.0)
}

fn set_cookie(name: &str, value: &str, max_age: Option<i64>, secure: bool) -> HeaderValue {
    let mut c = format!("{name}={value}; HttpOnly; SameSite=Strict; Path=/");
    if let Some(a) = max_age {
        c.push_str(&format!("; Max-Age={a}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    // Names and values are ours (hex, `ja`/`en`): always a valid header value.
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A local path under `/ui/` to go back to, or `/ui/`.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/ui/")
                && n.len() <= 512
                && !n.contains("//")
                && !n.contains('\\')
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n.to_owned()
        }
        _ => "/ui/".to_owned(),
    }
}

/// Whether the request's `Origin` (else `Referer`) is this server.
fn same_origin(headers: &HeaderMap, uri: &axum::http::Uri, secure: bool) -> bool {
    let host = uri.authority().map(|a| a.as_str().to_owned()).or_else(|| {
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
    });
    let Some(host) = host else {
        return false;
    };
    let expected = format!("{}://{host}", if secure { "https" } else { "http" });
    if let Some(o) = headers.get(header::ORIGIN) {
        return o.to_str().is_ok_and(|o| o == expected);
    }
    if let Some(r) = headers.get(header::REFERER).and_then(|r| r.to_str().ok()) {
        return r == expected
            || r.strip_prefix(&expected)
                .is_some_and(|rest| rest.starts_with('/'));
    }
    false
}

fn form_field(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn read_form(req: Request) -> Result<(axum::http::request::Parts, Bytes), StatusCode> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| StatusCode::PAYLOAD_TOO_LARGE)?;
    Ok((parts, bytes))
}

fn redirect(to: &str) -> Response {
    Redirect::to(to).into_response()
}

fn login_redirect(uri: &axum::http::Uri) -> Response {
    let here = uri.path_and_query().map_or("/ui/", |p| p.as_str());
    let next: String = form_urlencoded::byte_serialize(safe_next(Some(here)).as_bytes()).collect();
    redirect(&format!("/ui/login?next={next}"))
}

/// Loads the session, refuses stale ones, checks every POST's CSRF token and origin.
async fn require_session(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let Some(ui) = req.extensions().get::<Arc<Ui>>().cloned() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let lang = lang_of(req.headers());
    let is_secure = secure(req.extensions().get::<Secure>());
    let now = crate::now_us();
    let Some(id) = cookie(req.headers(), SESSION_COOKIE).map(str::to_owned) else {
        return login_redirect(req.uri());
    };
    let hash = auth::session_hash(&id);
    let store = st.store().clone();
    let purge = now - ui.last_purge.load(Ordering::Relaxed) > 10 * 60 * 1_000_000;
    if purge {
        ui.last_purge.store(now, Ordering::Relaxed);
    }
    let found = tokio::task::spawn_blocking(move || {
        if purge {
            if let Err(e) = store.purge_sessions(now - auth::IDLE, now - auth::ABSOLUTE) {
                tracing::warn!("purging expired sessions: {e}");
            }
        }
        let s = store.session(&hash)?;
        match s {
            Some(s) if auth::session_alive(&s, now) => {
                if now - s.last_us > auth::TOUCH_EVERY {
                    store.touch_session(&s.id_hash, now)?;
                }
                Ok(Some(s))
            }
            Some(s) => {
                store.delete_session(&s.id_hash)?;
                Ok(None)
            }
            None => Ok(None),
        }
    })
    .await;
    let session = match found {
        Ok(Ok(Some(s))) => s,
        Ok(Ok(None)) => return login_redirect(req.uri()),
        Ok(Err(e)) => {
            let e: crate::store::StoreError = e;
            tracing::error!("session lookup: {e}");
            let page = Page {
                ui: &ui,
                lang,
                authed: None,
                here: "/ui/".into(),
            };
            return page.error(StatusCode::SERVICE_UNAVAILABLE, "err.store", None);
        }
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let authed = Authed { session };
    let mut req = req;
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let (parts, body) = match read_form(req).await {
            Ok(x) => x,
            Err(s) => return s.into_response(),
        };
        let page = Page {
            ui: &ui,
            lang,
            authed: Some(&authed),
            here: "/ui/".into(),
        };
        if !same_origin(&parts.headers, &parts.uri, is_secure) {
            return page.error(StatusCode::FORBIDDEN, "err.origin", None);
        }
        let token = form_field(&body, "csrf").unwrap_or_default();
        if !auth::same_secret(&token, &authed.session.csrf) {
            return page.error(StatusCode::FORBIDDEN, "err.csrf", None);
        }
        req = Request::from_parts(parts, Body::from(body));
    }
    req.extensions_mut().insert(authed);
    next.run(req).await
}

/// Path and query of the request.
fn here(uri: &axum::http::Uri) -> String {
    uri.path_and_query()
        .map_or("/ui/", |p| p.as_str())
        .to_owned()
}

#[derive(serde::Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn login_page(
    State(st): State<AppState>,
    Extension(ui): Extension<Arc<Ui>>,
    secure_ext: Option<Extension<Secure>>,
    Query(q): Query<NextQuery>,
    headers: HeaderMap,
) -> Response {
    let is_secure = secure(secure_ext.as_ref().map(|e| &e.0));
    // Already logged in: straight on.
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        let hash = auth::session_hash(id);
        let store = st.store().clone();
        let now = crate::now_us();
        if let Ok(Ok(Some(s))) = tokio::task::spawn_blocking(move || store.session(&hash)).await {
            if auth::session_alive(&s, now) {
                return redirect(&safe_next(q.next.as_deref()));
            }
        }
    }
    login_form(
        &ui,
        lang_of(&headers),
        is_secure,
        q.next.as_deref(),
        StatusCode::OK,
        None,
    )
}

fn login_form(
    ui: &Ui,
    lang: Lang,
    is_secure: bool,
    next: Option<&str>,
    status: StatusCode,
    message_key: Option<&str>,
) -> Response {
    let token = match auth::random_token() {
        Ok(t) => t,
        Err(e) => {
            tracing::error!("no randomness for the login form: {e}");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let next = safe_next(next);
    let page = Page {
        ui,
        lang,
        authed: None,
        here: format!(
            "/ui/login?next={}",
            form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        ),
    };
    let mut r = page.render(
        status,
        "login.html",
        "login",
        context! {
            login_csrf => token.clone(),
            next => next,
            message => message_key.map(|k| page.t(k)),
        },
    );
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, &token, Some(3600), is_secure),
    );
    r
}

async fn login(
    State(st): State<AppState>,
    Extension(ui): Extension<Arc<Ui>>,
    secure_ext: Option<Extension<Secure>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let is_secure = secure(secure_ext.as_ref().map(|e| &e.0));
    let lang = lang_of(req.headers());
    let (parts, body) = match read_form(req).await {
        Ok(x) => x,
        Err(s) => return s.into_response(),
    };
    let page = Page {
        ui: &ui,
        lang,
        authed: None,
        here: "/ui/login".into(),
    };
    if !same_origin(&parts.headers, &parts.uri, is_secure) {
        return page.error(StatusCode::FORBIDDEN, "err.origin", None);
    }
    let token = form_field(&body, "csrf").unwrap_or_default();
    let expected = cookie(&parts.headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.len() != 64 || !auth::same_secret(&token, expected) {
        return page.error(StatusCode::FORBIDDEN, "err.csrf", None);
    }
    // Cut before it becomes a throttle key: memory per tracked name stays small.
    let name: String = form_field(&body, "name")
        .unwrap_or_default()
        .chars()
        .take(auth::MAX_USER_NAME + 1)
        .collect();
    let password = form_field(&body, "password").unwrap_or_default();
    let next = form_field(&body, "next");
    let now = crate::now_us();
    let ip = peer.ip();
    let refuse = |status, key| login_form(&ui, lang, is_secure, next.as_deref(), status, Some(key));
    if ui.throttle.locked_until(&name, ip, now).is_some() {
        tracing::warn!(user = %name.escape_debug(), %ip, "login refused: too many failures");
        return refuse(StatusCode::TOO_MANY_REQUESTS, "login.throttled");
    }
    let Ok(_slot) = ui.verify_slots.clone().acquire_owned().await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let store = st.store().clone();
    let dummy = ui.dummy_phc.clone();
    let user_name = name.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let found = if auth::check_user_name(&user_name).is_ok() {
            store.user_by_name(&user_name)?
        } else {
            None
        };
        Ok::<_, crate::store::StoreError>(match found {
            Some((user, phc)) => auth::verify_password(&phc, &password).then_some(user),
            None => {
                let _ = auth::verify_password(&dummy, &password);
                None
            }
        })
    })
    .await;
    let user = match checked {
        Ok(Ok(u)) => u,
        Ok(Err(e)) => {
            tracing::error!("login: {e}");
            return page.error(StatusCode::SERVICE_UNAVAILABLE, "err.store", None);
        }
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let Some(user) = user else {
        ui.throttle.failed(&name, ip, now);
        tracing::warn!(user = %name.escape_debug(), %ip, "login failed");
        return refuse(StatusCode::UNAUTHORIZED, "login.failed");
    };
    ui.throttle.succeeded(&name);
    // A new id on every login; the old session (if any) ends.
    let (Ok(id), Ok(csrf)) = (auth::random_token(), auth::random_token()) else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let old = cookie(&parts.headers, SESSION_COOKIE).map(auth::session_hash);
    let store = st.store().clone();
    let hash = auth::session_hash(&id);
    let uid = user.id;
    let made = tokio::task::spawn_blocking(move || {
        if let Some(old) = old {
            store.delete_session(&old)?;
        }
        store.create_session(&hash, uid, &csrf, now)
    })
    .await;
    if !matches!(made, Ok(Ok(()))) {
        return page.error(StatusCode::SERVICE_UNAVAILABLE, "err.store", None);
    }
    tracing::info!(user = %user.name, %ip, "logged in");
    let mut r = redirect(&safe_next(next.as_deref()));
    let h = r.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &id, None, is_secure),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, "", Some(0), is_secure),
    );
    r
}

/// Any other path under `/ui/` (after login: unknown paths are not told apart from
/// pages before it).
async fn not_found_page(
    Extension(ui): Extension<Arc<Ui>>,
    Extension(authed): Extension<Authed>,
    headers: HeaderMap,
) -> Response {
    let page = Page {
        ui: &ui,
        lang: lang_of(&headers),
        authed: Some(&authed),
        here: "/ui/".into(),
    };
    page.error(StatusCode::NOT_FOUND, "err.not_found", None)
}

async fn logout(
    State(st): State<AppState>,
    Extension(authed): Extension<Authed>,
    secure_ext: Option<Extension<Secure>>,
) -> Response {
    let is_secure = secure(secure_ext.as_ref().map(|e| &e.0));
    let store = st.store().clone();
    let hash = authed.session.id_hash.clone();
    let _ = tokio::task::spawn_blocking(move || store.delete_session(&hash)).await;
    let mut r = redirect("/ui/login");
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", Some(0), is_secure),
    );
    r
}

async fn set_lang(
    Path(lang): Path<String>,
    Query(q): Query<NextQuery>,
    secure_ext: Option<Extension<Secure>>,
) -> Response {
    let is_secure = secure(secure_ext.as_ref().map(|e| &e.0));
    let lang = Lang::parse(&lang).unwrap_or_default();
    let next = match q.next.as_deref() {
        Some(n) if n.starts_with("/ui/login") && !n.contains("//") => n.to_owned(),
        n => safe_next(n),
    };
    let mut r = redirect(&next);
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LANG_COOKIE, lang.as_str(), Some(365 * 86400), is_secure),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_escape_what_the_network_says() {
        let ui = Ui::new();
        let page = Page {
            ui: &ui,
            lang: Lang::Ja,
            authed: None,
            here: "/ui/".into(),
        };
        let r = page.error(
            StatusCode::NOT_FOUND,
            "err.not_found",
            Some("<script>alert(1)</script>".into()),
        );
        let body = futures_body(r);
        assert!(
            body.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{body}"
        );
        assert!(!body.contains("<script>"));
    }

    fn futures_body(r: Response) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let b = rt
            .block_on(axum::body::to_bytes(r.into_body(), usize::MAX))
            .unwrap();
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[test]
    fn the_report_page_renders_in_both_languages() {
        let ui = Ui::new();
        for lang in [Lang::Ja, Lang::En] {
            let page = Page {
                ui: &ui,
                lang,
                authed: None,
                here: "/ui/report".into(),
            };
            let ctx = context! { ..context! {}, ..page.base("report") };
            let html = ui
                .env
                .get_template("report.html")
                .and_then(|t| t.render(ctx))
                .unwrap_or_else(|e| panic!("{e:#}"));
            assert!(html.contains("format=csv&amp;lang=ja"));
        }
    }

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/ui/hosts?x=1")), "/ui/hosts?x=1");
        for bad in [
            "https://evil.example/",
            "//evil.example/ui/",
            "/ui//evil",
            "/api/v1/x",
            "/ui/\\evil",
            "/ui/a b",
        ] {
            assert_eq!(safe_next(Some(bad)), "/ui/", "{bad}");
        }
        assert_eq!(safe_next(None), "/ui/");
    }

    #[test]
    fn origin_must_be_this_server() {
        let uri: axum::http::Uri = "/ui/logout".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8443"));
        assert!(!same_origin(&h, &uri, true), "neither Origin nor Referer");
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://127.0.0.1:8443"),
        );
        assert!(same_origin(&h, &uri, true));
        assert!(!same_origin(&h, &uri, false), "scheme differs");
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&h, &uri, true));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h, &uri, true));
        h.remove(header::ORIGIN);
        h.insert(
            header::REFERER,
            HeaderValue::from_static("https://127.0.0.1:8443/ui/"),
        );
        assert!(same_origin(&h, &uri, true));
        h.insert(
            header::REFERER,
            HeaderValue::from_static("https://127.0.0.1:84430/ui/"),
        );
        assert!(!same_origin(&h, &uri, true));
    }

    #[test]
    fn cookies_are_read_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("xsetten_session=bad; setten_session=abc; setten_lang=en"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(lang_of(&h), Lang::En);
        let c = set_cookie(SESSION_COOKIE, "abc", None, true);
        assert_eq!(
            c,
            "setten_session=abc; HttpOnly; SameSite=Strict; Path=/; Secure"
        );
    }
}
