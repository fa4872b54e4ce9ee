//! The web UI over real HTTP on loopback, against a real SQLite store: every page needs a
//! login, every form its CSRF token and this server's origin, logins are throttled,
//! sessions rotate and end, and what the network says is escaped.

mod common;

use common::*;
use reqwest::blocking::{Client, Response};
use reqwest::header::{HeaderMap, COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use serde_json::json;
use setten_agent::findings::Body;
use setten_collector::store::UserRole;
use setten_collector::token::Role;

const PASSWORD: &str = "correct horse battery staple";

fn no_redirects(c: &Running) -> Client {
    let mut b = Client::builder().redirect(reqwest::redirect::Policy::none());
    if c.url("").starts_with("https") {
        let pem = std::fs::read(c.data.join(setten_collector::tls::CERT_FILE)).unwrap();
        b = b
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .tls_built_in_root_certs(false);
    }
    b.build().unwrap()
}

fn add_user(c: &Running, name: &str, role: UserRole) {
    setten_collector::ui::auth::add_user(&**c.state.store(), name, role, PASSWORD).unwrap();
}

/// The value of cookie `name` set by a response, with its attributes.
fn set_cookie(r: &Response, name: &str) -> Option<String> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn cookie_value(set: &str) -> String {
    set.split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned()
}

/// The hidden `csrf` field of a page.
fn csrf_field(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..at + 64].to_owned()
}

struct Browser<'a> {
    c: &'a Running,
    http: Client,
    session: Option<String>,
    origin: String,
}

impl<'a> Browser<'a> {
    fn new(c: &'a Running) -> Browser<'a> {
        let origin = c.url("").trim_end_matches('/').to_owned();
        Browser {
            c,
            http: no_redirects(c),
            session: None,
            origin,
        }
    }

    fn get(&self, path: &str) -> Response {
        let mut r = self.http.get(self.c.url(path));
        if let Some(s) = &self.session {
            r = r.header(COOKIE, format!("setten_session={s}"));
        }
        r.send().unwrap()
    }

    fn post(&self, path: &str, form: &[(&str, &str)], headers: HeaderMap) -> Response {
        let mut r = self.http.post(self.c.url(path)).form(form).headers(headers);
        if let Some(s) = &self.session {
            r = r.header(COOKIE, format!("setten_session={s}"));
        }
        r.send().unwrap()
    }

    fn origin(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ORIGIN, self.origin.parse().unwrap());
        h
    }

    /// Logs in through the form; returns the answer to the POST.
    fn try_login(&mut self, name: &str, password: &str) -> Response {
        let page = self.http.get(self.c.url("/ui/login")).send().unwrap();
        assert_eq!(page.status(), 200);
        let login_cookie = cookie_value(&set_cookie(&page, "setten_login").unwrap());
        let html = page.text().unwrap();
        let token = csrf_field(&html);
        assert_eq!(token, login_cookie);
        let mut h = self.origin();
        let mut cookie = format!("setten_login={login_cookie}");
        if let Some(s) = &self.session {
            cookie.push_str(&format!("; setten_session={s}"));
        }
        h.insert(COOKIE, cookie.parse().unwrap());
        self.http
            .post(self.c.url("/ui/login"))
            .headers(h)
            .form(&[
                ("csrf", token.as_str()),
                ("name", name),
                ("password", password),
                ("next", "/ui/hosts"),
            ])
            .send()
            .unwrap()
    }

    fn login(&mut self, name: &str) {
        let r = self.try_login(name, PASSWORD);
        assert_eq!(r.status(), 303, "login of {name}");
        assert_eq!(r.headers()[LOCATION], "/ui/hosts");
        let set = set_cookie(&r, "setten_session").expect("a session cookie");
        self.session = Some(cookie_value(&set));
    }
}

const PAGES: &[&str] = &[
    "/ui/",
    "/ui/?service=ssh&sort=last",
    "/ui/hosts",
    "/ui/agents",
    "/ui/backups",
    "/ui/report",
    "/ui/report/file?format=csv&lang=ja",
    "/ui/alerts",
    "/ui/alerts/1",
    "/ui/no-such-page",
    "/ui/points/cp-0123456789abcdef",
];

#[test]
fn every_page_needs_a_login_and_every_api_a_token() {
    let d = tempfile::tempdir().unwrap();
    let c = start(d.path(), false, unlimited());
    let b = Browser::new(&c);
    for p in PAGES {
        let r = b.get(p);
        assert_eq!(r.status(), 303, "{p}");
        let to = r.headers()[LOCATION].to_str().unwrap().to_owned();
        assert!(to.starts_with("/ui/login?next=%2Fui%2F"), "{p} → {to}");
    }
    // A forged or stale session cookie is no better than none.
    let mut forged = Browser::new(&c);
    forged.session = Some("00".repeat(32));
    assert_eq!(forged.get("/ui/").status(), 303);
    // POST without a session: to the login page, nothing done.
    let r = b.post("/ui/logout", &[("csrf", "x")], b.origin());
    assert_eq!(r.status(), 303);
    // `/` leads to the UI; the login page itself is open and carries the headers.
    assert_eq!(b.get("/").headers()[LOCATION], "/ui/");
    let r = b.get("/ui/login");
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert!(h["content-security-policy"]
        .to_str()
        .unwrap()
        .starts_with("default-src 'self'"));
    assert!(h["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "same-origin");
    let html = r.text().unwrap();
    assert!(html.contains("<html lang=\"ja\">") && html.contains("ログイン"));
    assert!(!html.contains("<script"), "no script at all");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external resources"
    );
    // The API still wants its bearer token.
    for p in [
        "/api/v1/connection-points",
        "/api/v1/hosts",
        "/api/v1/agents",
        "/metrics",
    ] {
        let r = c.client().get(c.url(p)).send().unwrap();
        assert_eq!(r.status(), 401, "{p}");
        // A UI session cookie is not an API credential.
    }
    add_user(&c, "sato", UserRole::Viewer);
    let mut b = Browser::new(&c);
    b.login("sato");
    let r = c
        .client()
        .get(c.url("/api/v1/connection-points"))
        .header(
            COOKIE,
            format!("setten_session={}", b.session.clone().unwrap()),
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[test]
fn login_sets_a_strict_cookie_rotates_the_session_and_logout_ends_it() {
    let d = tempfile::tempdir().unwrap();
    let c = start(d.path(), false, unlimited());
    add_user(&c, "sato", UserRole::Admin);
    let mut b = Browser::new(&c);
    let r = b.try_login("sato", PASSWORD);
    assert_eq!(r.status(), 303);
    let set = set_cookie(&r, "setten_session").unwrap();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"));
    assert!(!set.contains("Secure"), "plain HTTP on loopback: {set}");
    let first = cookie_value(&set);
    assert_eq!(first.len(), 64);
    assert!(first.bytes().all(|b| b.is_ascii_hexdigit()));
    b.session = Some(first.clone());
    for p in PAGES.iter().filter(|p| {
        !p.contains("/points/")
            && !p.contains("/file")
            && !p.contains("/alerts/")
            && !p.contains("no-such")
    }) {
        let r = b.get(p);
        assert_eq!(r.status(), 200, "{p}");
        assert_eq!(r.headers()["cache-control"], "no-store");
    }
    assert_eq!(b.get("/ui/points/cp-0123456789abcdef").status(), 404);
    let r = b.get("/ui/no-such-page");
    assert_eq!(r.status(), 404);
    assert!(r.text().unwrap().contains("ページが見つかりません"));
    // The store keeps only the hash.
    let db = std::fs::read(d.path().join("setten.db")).unwrap();
    assert!(!db.windows(64).any(|w| w == first.as_bytes()));

    // Logging in again (with the old cookie) gives a new id and ends the old one.
    b.login("sato");
    let second = b.session.clone().unwrap();
    assert_ne!(first, second);
    let mut old = Browser::new(&c);
    old.session = Some(first);
    assert_eq!(old.get("/ui/").status(), 303, "the old id no longer works");

    // Logout needs the token and the origin like any form.
    let html = b.get("/ui/").text().unwrap();
    let token = csrf_field(&html);
    assert_eq!(b.post("/ui/logout", &[], b.origin()).status(), 403);
    assert_eq!(
        b.post("/ui/logout", &[("csrf", &"0".repeat(64))], b.origin())
            .status(),
        403
    );
    let mut evil = HeaderMap::new();
    evil.insert(ORIGIN, "http://evil.example".parse().unwrap());
    assert_eq!(
        b.post("/ui/logout", &[("csrf", &token)], evil).status(),
        403
    );
    assert_eq!(
        b.post("/ui/logout", &[("csrf", &token)], HeaderMap::new())
            .status(),
        403,
        "no Origin nor Referer"
    );
    assert_eq!(b.get("/ui/").status(), 200, "refused posts did nothing");
    let r = b.post("/ui/logout", &[("csrf", &token)], b.origin());
    assert_eq!(r.status(), 303);
    assert!(set_cookie(&r, "setten_session")
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(b.get("/ui/").status(), 303, "logged out");
}

#[test]
fn the_login_form_needs_its_token_and_wrong_passwords_are_throttled() {
    let d = tempfile::tempdir().unwrap();
    let c = start(d.path(), false, unlimited());
    add_user(&c, "sato", UserRole::Viewer);
    let b = Browser::new(&c);
    // No double-submit token: refused before the password is looked at.
    let r = b.post(
        "/ui/login",
        &[("name", "sato"), ("password", PASSWORD)],
        b.origin(),
    );
    assert_eq!(r.status(), 403);
    assert!(set_cookie(&r, "setten_session").is_none());

    let mut b = Browser::new(&c);
    let r = b.try_login("sato", "wrong password!!");
    assert_eq!(r.status(), 401);
    assert!(set_cookie(&r, "setten_session").is_none());
    assert!(r
        .text()
        .unwrap()
        .contains("ユーザー名またはパスワードが違います"));
    // An unknown name gets the same answer.
    assert_eq!(b.try_login("nobody", "wrong password!!").status(), 401);
    for _ in 0..4 {
        assert_eq!(b.try_login("sato", "wrong password!!").status(), 401);
    }
    // Five failures for the name: even the right password is refused now.
    let r = b.try_login("sato", PASSWORD);
    assert_eq!(r.status(), 429);
    assert!(set_cookie(&r, "setten_session").is_none());
    assert!(r.text().unwrap().contains("しばらく受け付けません"));
}

#[test]
fn pages_show_the_inventory_and_escape_what_the_network_says() {
    let d = tempfile::tempdir().unwrap();
    let c = start(d.path(), false, unlimited());
    let token = c.enrol("mirror-1", Role::Agent);
    add_user(&c, "sato", UserRole::Viewer);
    let mut hostile = ssh_session("10.20.10.50", "203.0.113.50", 40000, 0);
    hostile.far_names = vec!["<script>alert(1)</script>.example".into()];
    hostile.evidence[0].value = "SSH-2.0-<img src=x onerror=alert(2)>".into();
    let day2 = ssh_session("10.20.10.50", "203.0.113.50", 40001, 86_400);
    let other = ssh_session("10.20.10.51", "198.51.100.7", 40002, 3_600);
    let backup = |v: serde_json::Value| match v {
        serde_json::Value::Object(m) => Body::Backup(m),
        _ => unreachable!(),
    };
    let bodies = vec![
        session_body(hostile),
        session_body(day2),
        session_body(other),
        health_body(json!({"dropped": 12, "cpu_percent": 3.5, "rss_bytes": 52_428_800})),
        backup(json!({"event":"mount","medium":"<b>weekly</b>","at_us":T0,"fs_label":"BK1"})),
        backup(
            json!({"event":"verify","medium":"<b>weekly</b>","at_us":T0 + 60_000_000,"result":"differences","mode":"full",
            "counts":{"files":3,"ok":2,"modified":1,"missing":0,"added":0,"unreadable":0},
            "problems":[{"path":"db/<x>.bak","status":"modified","offset":0}]}),
        ),
        backup(
            json!({"event":"unmount","medium":"<b>weekly</b>","at_us":T0 + 600_000_000,"connected_seconds":600.0}),
        ),
    ];
    let r = c.post(&token, "/api/v1/findings", batch("mirror-1", 1, bodies));
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    let mut b = Browser::new(&c);
    b.login("sato");

    let html = b.get("/ui/").text().unwrap();
    assert!(html.contains("id=\"count-points\">2<"), "two points");
    // No ledger imported: nothing is "unregistered" yet.
    assert!(html.contains("id=\"count-unregistered\">0<"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;.example"));
    assert!(!html.contains("<script>alert(1)"));
    // Filtering by sensor and period.
    let html = b
        .get("/ui/?agent=mirror-1&since=2026-10-06&until=2026-10-06")
        .text()
        .unwrap();
    assert!(
        html.contains("id=\"count-shown\">1<"),
        "only the point active on 10-06"
    );
    let html = b.get("/ui/?agent=nobody").text().unwrap();
    assert!(html.contains("id=\"count-shown\">0<"));
    let r = b.get("/ui/?risk=scary");
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("is not a risk id"));

    // The point's page: evidence escaped, activity per day over two days.
    let v = c.state.merged().view(&**c.state.store()).unwrap();
    let p = v
        .points
        .iter()
        .find(|p| p.internal.ip.to_string() == "10.20.10.50")
        .unwrap();
    let html = b.get(&format!("/ui/points/{}", p.id)).text().unwrap();
    assert!(html.contains("SSH-2.0-&lt;img src=x onerror=alert(2)&gt;"));
    assert!(!html.contains("<img src=x"));
    assert!(
        html.contains("<title>2026-10-05: 1</title>")
            && html.contains("<title>2026-10-06: 1</title>"),
        "per-day bars"
    );
    assert!(
        html.contains("<title>09:00: 2</title>"),
        "both sessions at 09:00 local"
    );

    // English on request, kept in a cookie.
    let r = b
        .http
        .get(c.url("/ui/lang/en?next=/ui/hosts"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION], "/ui/hosts");
    let lang = set_cookie(&r, "setten_lang").unwrap();
    let html = b
        .http
        .get(c.url("/ui/hosts"))
        .header(
            COOKIE,
            format!(
                "setten_session={}; {}",
                b.session.clone().unwrap(),
                lang.split(';').next().unwrap()
            ),
        )
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(html.contains("<html lang=\"en\">") && html.contains("Internal hosts"));
    assert!(html.contains("10.20.10.51"));

    let html = b.get("/ui/agents").text().unwrap();
    assert!(
        html.contains("mirror-1")
            && html.contains(">12<")
            && html.contains("3.5")
            && html.contains(">50<"),
        "{html}"
    );
    let html = b.get("/ui/backups").text().unwrap();
    assert!(html.contains("&lt;b&gt;weekly&lt;&#x2f;b&gt;") && !html.contains("<b>weekly"));
    assert!(html.contains("差異あり") && html.contains("db&#x2f;&lt;x&gt;.bak"));
    assert!(html.contains("オフライン"), "unmounted after the backup");
}

#[test]
fn over_https_the_session_cookie_is_secure() {
    let d = tempfile::tempdir().unwrap();
    let c = start(d.path(), true, unlimited());
    add_user(&c, "sato", UserRole::Viewer);
    let mut b = Browser::new(&c);
    let r = b.try_login("sato", PASSWORD);
    assert_eq!(r.status(), 303);
    let set = set_cookie(&r, "setten_session").unwrap();
    assert!(set.ends_with("; Secure"), "{set}");
    // An http:// origin is not this https server.
    b.origin = b.origin.replace("https://", "http://");
    assert_eq!(b.try_login("sato", PASSWORD).status(), 403);
}

#[test]
fn the_survey_report_downloads_in_every_format_and_language() {
    let d = tempfile::tempdir().unwrap();
    let c = start(d.path(), false, unlimited());
    let token = c.enrol("mirror-1", Role::Agent);
    add_user(&c, "ito", UserRole::Viewer);
    let r = c.post(
        &token,
        "/api/v1/findings",
        batch(
            "mirror-1",
            1,
            vec![session_body(ssh_session(
                "10.20.10.50",
                "203.0.113.50",
                40000,
                0,
            ))],
        ),
    );
    assert_eq!(r.status(), 200);
    let mut b = Browser::new(&c);
    b.login("ito");
    let html = b.get("/ui/report").text().unwrap();
    assert!(html.contains("/ui/report/file?format=csv&amp;lang=ja"));

    // A viewer may download it: the HTML in the browser, with the report's own policy.
    let r = b.get("/ui/report/file?format=html&lang=ja&view=1");
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    let disp = h["content-disposition"].to_str().unwrap();
    assert!(
        disp.starts_with("inline; filename=\"setten-report-") && disp.ends_with(".html\""),
        "{disp}"
    );
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.starts_with("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(h["x-frame-options"], "DENY");
    let body = r.text().unwrap();
    assert!(body.contains("外部接続点 現地調査報告書") && body.contains("203.0.113.50"));

    let r = b.get("/ui/report/file?format=html&lang=en");
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment;"));
    assert!(r.text().unwrap().contains("<html lang=\"en\""));

    let r = b.get("/ui/report/file?format=csv&lang=ja");
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .ends_with(".csv\""));
    let bytes = r.bytes().unwrap();
    assert_eq!(&bytes[..3], b"\xEF\xBB\xBF", "UTF-8 with BOM for Excel");
    assert!(String::from_utf8_lossy(&bytes).contains("10.20.10.50"));

    let r = b.get("/ui/report/file?format=json");
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().unwrap();
    assert!(v.is_object());

    for bad in ["format=pdf", "format=exe", "lang=fr"] {
        assert_eq!(
            b.get(&format!("/ui/report/file?{bad}")).status(),
            400,
            "{bad}"
        );
    }
}

/// RDP from the Internet to an internal host: a point every rule set alerts on.
fn inbound_rdp() -> Body {
    let mut s = ssh_session("10.20.20.15", "198.51.100.9", 3389, 0);
    s.direction = setten_agent::inventory::Direction::Inbound;
    std::mem::swap(&mut s.client, &mut s.server);
    s.client.port = 50000;
    s.service = setten_agent::classify::Service::Rdp;
    s.protocol = "rdp".into();
    s.evidence = vec![setten_agent::classify::Evidence::new(
        "setten.rdp.x224-cookie",
        "rdp.x224",
        "Cookie: mstshash=<script>alert(3)</script>",
    )];
    s.versions.clear();
    session_body(s)
}

#[test]
fn admins_acknowledge_alerts_and_viewers_cannot() {
    use setten_collector::alerts::{self, AlertFilter};
    let d = tempfile::tempdir().unwrap();
    let c = start(d.path(), false, unlimited());
    let token = c.enrol("mirror-1", Role::Agent);
    add_user(&c, "sato", UserRole::Admin);
    add_user(&c, "ito", UserRole::Viewer);
    let r = c.post(
        &token,
        "/api/v1/findings",
        batch("mirror-1", 1, vec![inbound_rdp()]),
    );
    assert_eq!(r.status(), 200);
    let store = c.state.store().clone();
    let start = std::time::Instant::now();
    let alert = loop {
        let open = alerts::list(&*store, &AlertFilter::default()).unwrap();
        if let Some(a) = open
            .into_iter()
            .find(|a| a.rule == "alert.point.inbound_internet")
        {
            break a;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "no alert raised"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let path = format!("/ui/alerts/{}/ack", alert.id);

    // A viewer sees it, without the form, and is refused even with a valid token.
    let mut viewer = Browser::new(&c);
    viewer.login("ito");
    let html = viewer.get("/ui/alerts").text().unwrap();
    assert!(html.contains(&format!("data-id=\"{}\"", alert.id)));
    assert!(!html.contains(&path), "no acknowledge form for a viewer");
    let inv = viewer.get("/ui/").text().unwrap();
    assert!(
        inv.contains("id=\"count-alerts\">"),
        "open alerts counted on the inventory"
    );
    let token_v = csrf_field(
        &viewer
            .get(&format!("/ui/alerts/{}", alert.id))
            .text()
            .unwrap(),
    );
    let r = viewer.post(
        &path,
        &[("csrf", &token_v), ("note", "me")],
        viewer.origin(),
    );
    assert_eq!(r.status(), 403);
    assert!(r.text().unwrap().contains("管理者のみ"));
    assert!(alerts::get(&*store, alert.id)
        .unwrap()
        .unwrap()
        .acked_us
        .is_none());

    // An admin: not without the token, then yes.
    let mut admin = Browser::new(&c);
    admin.login("sato");
    let page = admin
        .get(&format!("/ui/alerts/{}", alert.id))
        .text()
        .unwrap();
    assert!(page.contains(&path));
    let token_a = csrf_field(&page);
    assert_eq!(
        admin.post(&path, &[("note", "x")], admin.origin()).status(),
        403
    );
    assert_eq!(
        admin
            .post(&path, &[("csrf", &token_v), ("note", "x")], admin.origin())
            .status(),
        403,
        "another session's token"
    );
    assert!(alerts::get(&*store, alert.id)
        .unwrap()
        .unwrap()
        .acked_us
        .is_none());
    let r = admin.post(
        &path,
        &[("csrf", &token_a), ("note", "<i>called the vendor</i>")],
        admin.origin(),
    );
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()[LOCATION].to_str().unwrap(),
        format!("/ui/alerts/{}", alert.id)
    );
    let a = alerts::get(&*store, alert.id).unwrap().unwrap();
    assert_eq!(a.acked_by.as_deref(), Some("sato"));
    assert_eq!(a.ack_note.as_deref(), Some("<i>called the vendor</i>"));
    let page = admin
        .get(&format!("/ui/alerts/{}", alert.id))
        .text()
        .unwrap();
    assert!(page.contains("&lt;i&gt;called the vendor&lt;&#x2f;i&gt;"));
    assert!(!page.contains(&path), "no form once acknowledged");
    let open = admin.get("/ui/alerts").text().unwrap();
    assert!(
        !open.contains(&format!("data-id=\"{}\"", alert.id)),
        "gone from the open list"
    );
    assert!(admin
        .get("/ui/alerts?state=acked")
        .text()
        .unwrap()
        .contains(&format!("data-id=\"{}\"", alert.id)));
    assert_eq!(admin.get("/ui/alerts/999999").status(), 404);
    assert_eq!(admin.get("/ui/alerts/x").status(), 404);
}

#[test]
fn idle_and_old_sessions_end() {
    use setten_collector::ui::auth::{ABSOLUTE, IDLE};
    let d = tempfile::tempdir().unwrap();
    let c = start(d.path(), false, unlimited());
    add_user(&c, "sato", UserRole::Viewer);
    let db = rusqlite::Connection::open(d.path().join("setten.db")).unwrap();
    let age = |column: &str, by: i64| {
        db.execute(
            &format!("UPDATE ui_sessions SET {column} = {column} - ?1"),
            [by],
        )
        .unwrap();
    };
    for (column, by) in [
        ("last_us", IDLE + 1_000_000),
        ("created_us", ABSOLUTE + 1_000_000),
    ] {
        let mut b = Browser::new(&c);
        b.login("sato");
        assert_eq!(b.get("/ui/").status(), 200);
        // Almost idle or old: still fine.
        age(column, by - 2_000_000);
        assert_eq!(b.get("/ui/hosts").status(), 200, "{column}");
        if column == "last_us" {
            // That request renewed it: idle time counts from the last request.
            let last: i64 = db
                .query_row("SELECT last_us FROM ui_sessions", [], |r| r.get(0))
                .unwrap();
            assert!(setten_collector::now_us() - last < 60_000_000);
        }
        age(column, by);
        let r = b.get("/ui/hosts");
        assert_eq!(r.status(), 303, "{column}");
        let n: i64 = db
            .query_row("SELECT count(*) FROM ui_sessions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0, "the expired session is deleted");
    }
}
