//! The pages: inventory, a connection point, hosts, agents, backup media.

use super::{chart, here, lang_of, Authed, Page, Ui};
use crate::api::AppState;
use crate::merged::{Filter, View, LEDGER_STATUSES};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use minijinja::{context, Value};
use serde::Serialize;
use setten_agent::inventory::policy::{RiskId, Severity};
use setten_agent::inventory::ConnectionPoint;
use std::collections::BTreeSet;
use std::sync::Arc;

/// An agent is shown as not answering after this long without a batch or heartbeat (µs).
pub const SILENT_AFTER: i64 = 10 * 60 * 1_000_000;
/// Names shown per host or far side in the table.
const NAMES_IN_TABLE: usize = 3;

/// A serialisable value for a template.
fn ser<T: Serialize>(x: T) -> Value {
    Value::from_serialize(x)
}

fn page<'a>(ui: &'a Ui, headers: &HeaderMap, authed: &'a Authed, uri: &Uri) -> Page<'a> {
    Page {
        ui,
        lang: lang_of(headers),
        authed: Some(authed),
        here: here(uri),
    }
}

async fn view(st: &AppState) -> Result<Arc<View>, crate::store::StoreError> {
    let st = st.clone();
    tokio::task::spawn_blocking(move || st.merged().view(&**st.store()))
        .await
        .map_err(|e| crate::store::StoreError::Backend(e.to_string()))?
}

fn store_error(p: &Page<'_>, e: &crate::store::StoreError) -> Response {
    tracing::error!("ui: {e}");
    p.error(StatusCode::SERVICE_UNAVAILABLE, "err.store", None)
}

/// Severity as the templates use it: a key for the label and style, and a rank.
fn sev(s: Option<Severity>) -> &'static str {
    s.map_or("none", Severity::as_str)
}

fn lt(us: u64, off: i32) -> String {
    chart::local_time(i64::try_from(us).unwrap_or(i64::MAX), off)
}

#[derive(Serialize)]
struct Row {
    id: String,
    severity: &'static str,
    service: &'static str,
    direction: &'static str,
    internal_ip: String,
    internal_names: Vec<String>,
    far_kind: &'static str,
    far_name: Option<String>,
    far_ips: Vec<String>,
    far_count: usize,
    far_names: Vec<String>,
    vendor: Option<String>,
    product: Option<String>,
    sessions: u64,
    first_seen: String,
    last_seen: String,
    ledger: &'static str,
    risks: Vec<RiskView>,
    agents: Vec<String>,
}

#[derive(Serialize)]
struct RiskView {
    id: &'static str,
    severity: &'static str,
    title: String,
    advice: String,
    detail: Option<String>,
    checklist: Vec<String>,
}

fn risks(st: &AppState, p: &ConnectionPoint, en: bool) -> Vec<RiskView> {
    let policy = st.merged().policy();
    p.risks
        .iter()
        .map(|r| {
            let info = policy.risk(r.id);
            RiskView {
                id: r.id.as_str(),
                severity: r.severity.as_str(),
                title: if en { info.title_en } else { info.title_ja },
                advice: if en { info.advice_en } else { info.advice_ja },
                detail: r.detail.clone(),
                checklist: info.checklist,
            }
        })
        .collect()
}

fn row(st: &AppState, p: &ConnectionPoint, off: i32, en: bool) -> Row {
    Row {
        id: p.id.clone(),
        severity: sev(p.severity),
        service: p.service.as_str(),
        direction: p.direction.as_str(),
        internal_ip: p.internal.ip.to_string(),
        internal_names: p
            .internal
            .names
            .iter()
            .take(NAMES_IN_TABLE)
            .cloned()
            .collect(),
        far_kind: p.far_side.kind,
        far_name: p.far_side.name.clone(),
        far_ips: p
            .far_side
            .ips
            .iter()
            .take(NAMES_IN_TABLE)
            .map(|i| i.to_string())
            .collect(),
        far_count: p.far_side.ip_count,
        far_names: p
            .far_side
            .names
            .iter()
            .take(NAMES_IN_TABLE)
            .cloned()
            .collect(),
        vendor: p.vendor.clone(),
        product: p.product.clone(),
        sessions: p.sessions,
        first_seen: lt(p.first_us, off),
        last_seen: lt(p.last_us, off),
        ledger: p.ledger.status,
        risks: risks(st, p, en),
        agents: p.agents.clone(),
    }
}

/// Sortable columns of the inventory.
const SORTS: &[&str] = &[
    "severity", "service", "internal", "far", "sessions", "first", "last", "ledger",
];

fn sort_points(points: &mut [&ConnectionPoint], by: &str, desc: bool) {
    let far = |p: &ConnectionPoint| {
        p.far_side
            .name
            .clone()
            .or_else(|| p.far_side.ips.first().map(|i| i.to_string()))
            .unwrap_or_default()
    };
    match by {
        "service" => points.sort_by(|a, b| a.service.as_str().cmp(b.service.as_str())),
        "internal" => points.sort_by_key(|p| p.internal.ip),
        "far" => points.sort_by_key(|p| far(p)),
        "sessions" => points.sort_by_key(|p| p.sessions),
        "first" => points.sort_by_key(|p| p.first_us),
        "last" => points.sort_by_key(|p| p.last_us),
        "ledger" => {
            points.sort_by_key(|p| LEDGER_STATUSES.iter().position(|s| *s == p.ledger.status))
        }
        _ => points.sort_by_key(|p| p.severity),
    }
    if desc {
        points.reverse();
    }
}

/// A `YYYY-MM-DD` from a date input as RFC 3339 at the start or end of that local day.
fn date_bound(v: &str, end: bool, off: i32) -> String {
    let is_date = v.len() == 10
        && v.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !is_date {
        return v.to_owned();
    }
    let sign = if off < 0 { '-' } else { '+' };
    let a = off.unsigned_abs();
    let time = if end { "23:59:59.999999" } else { "00:00:00" };
    format!("{v}T{time}{sign}{:02}:{:02}", a / 3600, (a % 3600) / 60)
}

pub(super) async fn inventory(
    State(st): State<AppState>,
    Extension(ui): Extension<Arc<Ui>>,
    Extension(authed): Extension<Authed>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> Response {
    let p = page(&ui, &headers, &authed, &uri);
    let off = st.merged().policy().utc_offset_secs;
    let en = p.lang() == super::Lang::En;
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut sort = "severity".to_owned();
    let mut desc = true;
    let mut form: Vec<(String, String)> = Vec::new();
    for (k, v) in form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()).take(32) {
        let (k, v) = (k.into_owned(), v.trim().to_owned());
        match k.as_str() {
            "sort" if SORTS.contains(&v.as_str()) => sort = v,
            "dir" => desc = v != "asc",
            _ if v.is_empty() => {}
            "since" | "until" => {
                form.push((k.clone(), v.clone()));
                let end = k == "until";
                pairs.push((k, date_bound(&v, end, off)));
            }
            _ => {
                form.push((k.clone(), v.clone()));
                pairs.push((k, v));
            }
        }
    }
    let (filter, filter_error) = match Filter::from_query(&pairs) {
        Ok(f) => (f, None),
        Err(e) => (Filter::default(), Some(e.message)),
    };
    let v = match view(&st).await {
        Ok(v) => v,
        Err(e) => return store_error(&p, &e),
    };
    let store = st.store().clone();
    let agents = match tokio::task::spawn_blocking(move || store.agents()).await {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => return store_error(&p, &e),
        Err(e) => return store_error(&p, &crate::store::StoreError::Backend(e.to_string())),
    };
    let store = st.store().clone();
    let open_alerts = tokio::task::spawn_blocking(move || {
        crate::alerts::list(
            &*store,
            &crate::alerts::AlertFilter {
                state: crate::alerts::AlertState::Open,
                limit: Some(crate::alerts::MAX_LIMIT),
                ..crate::alerts::AlertFilter::default()
            },
        )
        .map(|l| l.len())
    })
    .await
    .ok()
    .and_then(Result::ok);
    let total = v.points.len();
    let unregistered = v
        .points
        .iter()
        .filter(|p| p.ledger.status == "unregistered")
        .count();
    let serious = v
        .points
        .iter()
        .filter(|p| p.severity >= Some(Severity::High))
        .count();
    let mut shown: Vec<&ConnectionPoint> = v.points.iter().filter(|p| filter.matches(p)).collect();
    sort_points(&mut shown, &sort, desc);
    let rows: Vec<Row> = shown.iter().map(|pt| row(&st, pt, off, en)).collect();
    let services: BTreeSet<&'static str> = v.points.iter().map(|p| p.service.as_str()).collect();
    let policy = st.merged().policy();
    let risk_options: Vec<Value> = RiskId::ALL
        .iter()
        .map(|r| {
            let info = policy.risk(*r);
            context! { id => r.as_str(), title => if en { info.title_en } else { info.title_ja } }
        })
        .collect();
    let agent_names: Vec<String> = agents
        .into_iter()
        .filter(|a| a.role == crate::token::Role::Agent)
        .map(|a| a.name)
        .collect();
    // Sort links keep the filters.
    let base_query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter())
        .finish();
    let selected = |k: &str| form.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    p.render(
        if filter_error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        },
        "inventory.html",
        "inventory",
        context! {
            total => total,
            unregistered => unregistered,
            serious => serious,
            unseen => v.unseen.len(),
            open_alerts => open_alerts,
            shown => rows.len(),
            rows => ser(&rows),
            services => ser(&services),
            risks => risk_options,
            ledgers => ser(LEDGER_STATUSES),
            agents => agent_names,
            sel => context! {
                service => selected("service"),
                risk => selected("risk"),
                ledger => selected("ledger"),
                agent => selected("agent"),
                since => selected("since"),
                until => selected("until"),
            },
            sort => sort,
            desc => desc,
            base_query => base_query,
            filter_error => filter_error,
            filtered => !form.is_empty(),
        },
    )
}

pub(super) async fn point(
    State(st): State<AppState>,
    Extension(ui): Extension<Arc<Ui>>,
    Extension(authed): Extension<Authed>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Response {
    let p = page(&ui, &headers, &authed, &uri);
    let off = st.merged().policy().utc_offset_secs;
    let en = p.lang() == super::Lang::En;
    let v = match view(&st).await {
        Ok(v) => v,
        Err(e) => return store_error(&p, &e),
    };
    let Some(pt) = v.points.iter().find(|x| x.id == id) else {
        let shown: String = id.chars().take(64).collect();
        return p.error(StatusCode::NOT_FOUND, "err.no_point", Some(shown));
    };
    let st2 = st.clone();
    let id2 = pt.id.clone();
    let sessions = match tokio::task::spawn_blocking(move || {
        st2.merged().point_sessions(&**st2.store(), &id2)
    })
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return store_error(&p, &e),
        Err(e) => return store_error(&p, &crate::store::StoreError::Backend(e.to_string())),
    };
    let per_day = chart::per_day(&sessions, off);
    let per_hour = chart::per_hour(&pt.hours);
    let reach: Vec<Value> = pt
        .reach
        .iter()
        .map(|r| {
            context! {
                ip => r.ip.to_string(),
                names => r.names.clone(),
                services => r.services.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            }
        })
        .collect();
    let evidence: Vec<Value> = pt
        .evidence
        .iter()
        .map(|e| context! { rule => e.rule.clone(), field => e.field.clone(), value => e.value.clone() })
        .collect();
    let l = &pt.ledger;
    p.render(
        StatusCode::OK,
        "point.html",
        "inventory",
        context! {
            p => ser(row(&st, pt, off, en)),
            internal => context! {
                ip => pt.internal.ip.to_string(),
                port => pt.internal.port,
                mac => pt.internal.mac.clone(),
                mac_vendor => pt.internal.mac_vendor.clone(),
                names => pt.internal.names.clone(),
                vlans => pt.internal.vlans.clone(),
            },
            far => context! {
                kind => pt.far_side.kind,
                name => pt.far_side.name.clone(),
                ips => pt.far_side.ips.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
                count => pt.far_side.ip_count,
                names => pt.far_side.names.clone(),
            },
            transports => pt.transports.clone(),
            ports => pt.ports.clone(),
            versions => pt.versions.clone(),
            bytes => pt.bytes,
            evidence => evidence,
            reach => reach,
            ledger => context! {
                status => l.status,
                entry => l.entry.clone(),
                vendor => l.vendor.clone(),
                system => l.system.clone(),
                reasons => l.reasons.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            },
            per_day => ser(&per_day),
            per_hour => ser(&per_hour),
            kept_sessions => sessions.len(),
        },
    )
}

pub(super) async fn hosts(
    State(st): State<AppState>,
    Extension(ui): Extension<Arc<Ui>>,
    Extension(authed): Extension<Authed>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let p = page(&ui, &headers, &authed, &uri);
    let v = match view(&st).await {
        Ok(v) => v,
        Err(e) => return store_error(&p, &e),
    };
    let hosts: Vec<Value> = v
        .hosts
        .iter()
        .map(|h| {
            context! {
                ip => h.ip.to_string(),
                names => h.names.clone(),
                mac => h.mac.clone(),
                mac_vendor => h.mac_vendor.clone(),
                points => h.points.clone(),
                reached => h.reached_through.iter().map(|r| context! {
                    point => r.point.clone(),
                    services => r.services.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
                }).collect::<Vec<_>>(),
            }
        })
        .collect();
    p.render(
        StatusCode::OK,
        "hosts.html",
        "hosts",
        context! { hosts => hosts },
    )
}

fn num(h: &serde_json::Value, keys: &[&str]) -> Option<f64> {
    keys.iter()
        .find_map(|k| h.get(*k).and_then(serde_json::Value::as_f64))
}

pub(super) async fn agents(
    State(st): State<AppState>,
    Extension(ui): Extension<Arc<Ui>>,
    Extension(authed): Extension<Authed>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let p = page(&ui, &headers, &authed, &uri);
    let off = st.merged().policy().utc_offset_secs;
    let store = st.store().clone();
    let list = match tokio::task::spawn_blocking(move || store.agents()).await {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => return store_error(&p, &e),
        Err(e) => return store_error(&p, &crate::store::StoreError::Backend(e.to_string())),
    };
    let now = crate::now_us();
    let rows: Vec<Value> = list
        .iter()
        .map(|a| {
            let h = a.health.clone().unwrap_or(serde_json::Value::Null);
            let state = if a.is_revoked() {
                "revoked"
            } else if a.role == crate::token::Role::Reader {
                "reader"
            } else {
                match a.last_seen_us {
                    None => "never",
                    Some(t) if now - t > SILENT_AFTER => "silent",
                    Some(_) => "ok",
                }
            };
            let cpu = num(&h, &["cpu_percent"]).or_else(|| num(&h, &["cpu"]).map(|c| c * 100.0));
            let mem = num(&h, &["rss_bytes", "memory_bytes"]).map(|b| b / 1_048_576.0);
            context! {
                name => a.name.clone(),
                role => a.role.as_str(),
                state => state,
                last_seen => a.last_seen_us.map(|t| chart::local_time(t, off)),
                minutes_ago => a.last_seen_us.map(|t| (now - t).max(0) / 60_000_000),
                health_at => a.health_at_us.map(|t| chart::local_time(t, off)),
                drops => num(&h, &["dropped", "drops"]).map(|d| d as u64),
                drop_rate => num(&h, &["drop_rate"]).map(|r| format!("{:.3}", r * 100.0)),
                cpu => cpu.map(|c| format!("{c:.1}")),
                mem => mem.map(|m| format!("{m:.0}")),
                spool => num(&h, &["spool_pending"]).map(|d| d as u64),
                ship_error => h.get("ship_error").and_then(|e| e.as_str()).map(|s| s.chars().take(200).collect::<String>()),
                findings => a.findings,
                last_seq => a.last_seq,
            }
        })
        .collect();
    p.render(
        StatusCode::OK,
        "agents.html",
        "agents",
        context! { agents => rows },
    )
}

/// Days shown in each medium's connection strip.
const STRIP_DAYS: i64 = 14;

pub(super) async fn backups(
    State(st): State<AppState>,
    Extension(ui): Extension<Arc<Ui>>,
    Extension(authed): Extension<Authed>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let p = page(&ui, &headers, &authed, &uri);
    let off = st.merged().policy().utc_offset_secs;
    let store = st.store().clone();
    let media = match tokio::task::spawn_blocking(move || super::backup::media(&*store)).await {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => return store_error(&p, &e),
        Err(e) => return store_error(&p, &crate::store::StoreError::Backend(e.to_string())),
    };
    let now = crate::now_us();
    // The strip ends at the latest event seen (or now), so old captures still show.
    let end = media
        .iter()
        .map(|m| m.last_event_us)
        .max()
        .unwrap_or(now)
        .max(1);
    let start = end - STRIP_DAYS * 86_400_000_000;
    let span = (end - start) as f64;
    let rows: Vec<Value> = media
        .iter()
        .map(|m| {
            let strip: Vec<Value> = m
                .connections
                .iter()
                .filter_map(|c| {
                    let from = c.from_us.unwrap_or(start).max(start);
                    let to = c.to_us.unwrap_or(end).min(end);
                    (to >= from && to >= start).then(|| {
                        let x = (from - start) as f64 / span * f64::from(chart::WIDTH);
                        let w = ((to - from) as f64 / span * f64::from(chart::WIDTH)).max(2.0);
                        context! { x => (x * 10.0).round() / 10.0, w => (w * 10.0).round() / 10.0 }
                    })
                })
                .collect();
            let conns: Vec<Value> = m
                .connections
                .iter()
                .rev()
                .take(10)
                .map(|c| {
                    context! {
                        from => c.from_us.map(|t| chart::local_time(t, off)),
                        to => c.to_us.map(|t| chart::local_time(t, off)),
                        minutes => c.seconds.map(|s| (s / 60.0).round() as u64),
                    }
                })
                .collect();
            context! {
                name => m.name.clone(),
                fs_uuid => m.fs_uuid.clone(),
                fs_label => m.fs_label.clone(),
                agents => m.agents.clone(),
                verify => m.verify.as_ref().map(|vf| context! {
                    at => chart::local_time(vf.at_us, off),
                    result => vf.result.clone(),
                    mode => vf.mode.clone(),
                    generation => vf.generation,
                    counts => ser(&vf.counts),
                    message => vf.message.clone(),
                    problems => ser(&vf.problems),
                    flagged => vf.flagged,
                }),
                sealed => m.sealed_us.map(|t| chart::local_time(t, off)),
                sealed_generation => m.sealed_generation,
                status => m.offline_status(),
                over_window => m.over_window,
                stale_days => m.stale_days.map(|d| format!("{d:.0}")),
                strip => strip,
                connections => conns,
                connection_count => m.connections.len(),
            }
        })
        .collect();
    p.render(
        StatusCode::OK,
        "backups.html",
        "backups",
        context! {
            media => rows,
            strip_from => chart::local_time(start, off),
            strip_to => chart::local_time(end, off),
            width => chart::WIDTH,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_inputs_become_local_day_bounds() {
        assert_eq!(
            date_bound("2026-10-05", false, 9 * 3600),
            "2026-10-05T00:00:00+09:00"
        );
        assert_eq!(
            date_bound("2026-10-05", true, 9 * 3600),
            "2026-10-05T23:59:59.999999+09:00"
        );
        assert_eq!(
            date_bound("2026-10-05", false, -5 * 3600 - 1800),
            "2026-10-05T00:00:00-05:30"
        );
        assert_eq!(date_bound("yesterday", false, 0), "yesterday");
    }
}

pub(super) async fn report_page(
    State(_st): State<AppState>,
    Extension(ui): Extension<Arc<Ui>>,
    Extension(authed): Extension<Authed>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let p = page(&ui, &headers, &authed, &uri);
    p.render(StatusCode::OK, "report.html", "report", context! {})
}

#[derive(serde::Deserialize)]
pub(super) struct ReportQuery {
    format: Option<String>,
    lang: Option<String>,
    /// `1`: show the HTML report in the browser instead of downloading it.
    view: Option<String>,
}

/// The survey report ([`crate::report`]): HTML (shown or downloaded), the ledger CSV or
/// JSON, in Japanese or English.
pub(super) async fn report_file(
    State(st): State<AppState>,
    Extension(ui): Extension<Arc<Ui>>,
    Extension(authed): Extension<Authed>,
    headers: HeaderMap,
    uri: Uri,
    axum::extract::Query(q): axum::extract::Query<ReportQuery>,
) -> Response {
    use setten_agent::inventory::output::Lang as ReportLang;
    use setten_agent::report::Format;
    let p = page(&ui, &headers, &authed, &uri);
    let format = match q.format.as_deref().map(Format::parse) {
        None => Format::Html,
        Some(Some(f @ (Format::Html | Format::Csv | Format::Json))) => f,
        Some(_) => return p.error(StatusCode::BAD_REQUEST, "report.bad_format", None),
    };
    let lang = match q.lang.as_deref() {
        Some("en") => ReportLang::En,
        Some("ja") => ReportLang::Ja,
        None => match p.lang() {
            super::Lang::En => ReportLang::En,
            super::Lang::Ja => ReportLang::Ja,
        },
        Some(_) => return p.error(StatusCode::BAD_REQUEST, "report.bad_format", None),
    };
    let inline = format == Format::Html && q.view.as_deref() == Some("1");
    let st2 = st.clone();
    let out = match tokio::task::spawn_blocking(move || crate::report::render(&st2, lang, format))
        .await
    {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            tracing::error!("ui report: {e}");
            return p.error(StatusCode::SERVICE_UNAVAILABLE, "report.failed", None);
        }
        Err(e) => return store_error(&p, &crate::store::StoreError::Backend(e.to_string())),
    };
    tracing::info!(user = %authed.session.user.name, file = %out.filename, "report downloaded");
    let disposition = format!(
        "{}; filename=\"{}\"",
        if inline { "inline" } else { "attachment" },
        out.filename
    );
    let mut r = (StatusCode::OK, out.bytes).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(out.content_type),
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    // The report is one self-contained file: inline CSS and SVG, no script, no fetch.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'",
        ),
    );
    r
}

fn alert_lang(l: super::Lang) -> crate::alerts::config::Lang {
    match l {
        super::Lang::Ja => crate::alerts::config::Lang::Ja,
        super::Lang::En => crate::alerts::config::Lang::En,
    }
}

fn alert_view(a: &crate::alerts::Alert, lang: super::Lang, off: i32) -> Value {
    let t = a.content.texts(alert_lang(lang));
    let point = a
        .content
        .facts
        .get("point")
        .and_then(serde_json::Value::as_str)
        .filter(|p| p.starts_with("cp-") && p.len() <= 19)
        .map(str::to_owned);
    let delivered = a
        .deliveries
        .iter()
        .filter(|d| d.state == "delivered")
        .count();
    context! {
        id => a.id,
        rule => a.rule.clone(),
        severity => a.severity.as_str(),
        subject => a.subject.clone(),
        title => t.title.clone(),
        what => t.what.clone(),
        place => t.place.clone(),
        action => t.action.clone(),
        raised => chart::local_time(a.raised_us, off),
        last_trigger => chart::local_time(a.last_trigger_us, off),
        repeats => a.repeats,
        repeats_before => a.repeats_before,
        acked => a.acked_us.map(|t| chart::local_time(t, off)),
        acked_by => a.acked_by.clone(),
        ack_note => a.ack_note.clone(),
        escalated => a.escalated_us.map(|t| chart::local_time(t, off)),
        point => point,
        deliveries_total => a.deliveries.len(),
        deliveries_done => delivered,
    }
}

#[derive(serde::Deserialize)]
pub(super) struct AlertsQuery {
    state: Option<String>,
}

/// Alerts, newest first: open ones by default.
pub(super) async fn alerts_page(
    State(st): State<AppState>,
    Extension(ui): Extension<Arc<Ui>>,
    Extension(authed): Extension<Authed>,
    headers: HeaderMap,
    uri: Uri,
    axum::extract::Query(q): axum::extract::Query<AlertsQuery>,
) -> Response {
    use crate::alerts::{AlertFilter, AlertState};
    let p = page(&ui, &headers, &authed, &uri);
    let off = st.merged().policy().utc_offset_secs;
    let (state, key) = match q.state.as_deref() {
        Some("acked") => (AlertState::Acked, "acked"),
        Some("all") => (AlertState::All, "all"),
        _ => (AlertState::Open, "open"),
    };
    let store = st.store().clone();
    let list = match tokio::task::spawn_blocking(move || {
        crate::alerts::list(
            &*store,
            &AlertFilter {
                state,
                limit: Some(ALERTS_SHOWN),
                ..AlertFilter::default()
            },
        )
    })
    .await
    {
        Ok(Ok(l)) => l,
        Ok(Err(e)) => return store_error(&p, &e),
        Err(e) => return store_error(&p, &crate::store::StoreError::Backend(e.to_string())),
    };
    let rows: Vec<Value> = list.iter().map(|a| alert_view(a, p.lang(), off)).collect();
    p.render(
        StatusCode::OK,
        "alerts.html",
        "alerts",
        context! { alerts => rows, state => key, limit => ALERTS_SHOWN },
    )
}

/// Alerts listed on one page at most.
const ALERTS_SHOWN: usize = 200;

fn alert_id(id: &str) -> Option<i64> {
    id.parse::<i64>().ok().filter(|n| *n > 0)
}

/// One alert with its evidence and deliveries.
pub(super) async fn alert_page(
    State(st): State<AppState>,
    Extension(ui): Extension<Arc<Ui>>,
    Extension(authed): Extension<Authed>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Response {
    let p = page(&ui, &headers, &authed, &uri);
    let off = st.merged().policy().utc_offset_secs;
    let Some(n) = alert_id(&id) else {
        return p.error(StatusCode::NOT_FOUND, "err.no_alert", None);
    };
    let store = st.store().clone();
    let a = match tokio::task::spawn_blocking(move || crate::alerts::get(&*store, n)).await {
        Ok(Ok(Some(a))) => a,
        Ok(Ok(None)) => return p.error(StatusCode::NOT_FOUND, "err.no_alert", None),
        Ok(Err(e)) => return store_error(&p, &e),
        Err(e) => return store_error(&p, &crate::store::StoreError::Backend(e.to_string())),
    };
    let en = p.lang() == super::Lang::En;
    let evidence: Vec<Value> = a
        .content
        .evidence
        .iter()
        .map(|e| context! { label => if en { e.en.clone() } else { e.ja.clone() }, value => e.value.clone() })
        .collect();
    let deliveries: Vec<Value> = a
        .deliveries
        .iter()
        .map(|d| {
            context! {
                channel => d.channel.clone(),
                escalation => d.escalation,
                state => d.state.clone(),
                attempts => d.attempts,
                delivered => d.delivered_us.map(|t| chart::local_time(t, off)),
                error => d.last_error.clone(),
            }
        })
        .collect();
    p.render(
        StatusCode::OK,
        "alert.html",
        "alerts",
        context! { a => alert_view(&a, p.lang(), off), evidence => evidence, deliveries => deliveries },
    )
}

#[derive(serde::Deserialize)]
pub(super) struct AckForm {
    note: Option<String>,
}

/// Acknowledges an alert (admins only); the CSRF token and origin were checked by
/// [`super::require_session`].
pub(super) async fn ack(
    State(st): State<AppState>,
    Extension(ui): Extension<Arc<Ui>>,
    Extension(authed): Extension<Authed>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    axum::Form(f): axum::Form<AckForm>,
) -> Response {
    let p = page(&ui, &headers, &authed, &uri);
    if !authed.is_admin() {
        tracing::warn!(user = %authed.session.user.name, alert = %id.chars().take(20).collect::<String>(), "acknowledgement refused: not an admin");
        return p.error(StatusCode::FORBIDDEN, "err.forbidden", None);
    }
    let Some(n) = alert_id(&id) else {
        return p.error(StatusCode::NOT_FOUND, "err.no_alert", None);
    };
    let store = st.store().clone();
    let by = authed.session.user.name.clone();
    let done = tokio::task::spawn_blocking(move || {
        crate::alerts::acknowledge(&*store, n, &by, f.note.as_deref())
    })
    .await;
    match done {
        Ok(Ok(a)) => {
            tracing::info!(user = %authed.session.user.name, alert = a.id, "alert acknowledged");
            super::redirect(&format!("/ui/alerts/{}", a.id))
        }
        Ok(Err(crate::alerts::AckError::NotFound(_))) => {
            p.error(StatusCode::NOT_FOUND, "err.no_alert", None)
        }
        Ok(Err(crate::alerts::AckError::Store(e))) => store_error(&p, &e),
        Ok(Err(crate::alerts::AckError::NoName)) | Err(_) => {
            p.error(StatusCode::INTERNAL_SERVER_ERROR, "err.store", None)
        }
    }
}
