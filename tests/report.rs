//! The 現地調査 report: golden files of the bundled sample in both languages (HTML and
//! the CSV ledger), self-containment, escaping of hostile names, the diagram at 50
//! points, the Shift_JIS ledger, and the PDF printed by a real headless Chromium.

use proptest::prelude::*;
use setten_agent::classify::{Evidence, Service};
use setten_agent::inventory::output::Lang;
use setten_agent::inventory::{ConnectionPoint, Direction, Endpoint, Inventory, PointsCx, Session};
use setten_agent::names::oui::Oui;
use setten_agent::report::{self, CsvEncoding, Format, ReportInput, Source};
use setten_agent::rules::Rules;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// 2026-10-05T00:00:00Z: the report's time in the golden files.
const GENERATED_S: &str = "1791158400";

/// `analyze --report` on the bundled sample with its ledger, as `scripts/demo` runs it.
fn sample_report(dir: &Path, name: &str, extra: &[&str]) -> (Output, PathBuf) {
    let out_path = dir.join(name);
    let out = Command::new(env!("CARGO_BIN_EXE_setten-agent"))
        .current_dir(repo())
        .args(["analyze", "--ledger", "samples/hospital-ledger.csv"])
        .arg("--report")
        .arg(&out_path)
        .args(["--site", "デモ総合病院"])
        .args(extra)
        .arg("samples/hospital-demo.pcap")
        .env("SETTEN_LOG", "warn")
        .env("SETTEN_IEEE_DATA", "tests/fixtures/ieee-data")
        .env("SOURCE_DATE_EPOCH", GENERATED_S)
        .output()
        .expect("run setten-agent");
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (out, out_path)
}

fn read_text(p: &Path) -> String {
    String::from_utf8(std::fs::read(p).unwrap()).expect("utf-8")
}

/// No resource is fetched: no script, image, link or import, and every src/href/url()
/// in the markup and the stylesheet points inside the page. Markup is what lies between
/// `<` and `>` (text is escaped, so it holds neither).
fn assert_self_contained(html: &str) {
    let lower = html.to_ascii_lowercase();
    for tag in lower.split('<').skip(1) {
        let tag = tag.split('>').next().unwrap_or("");
        for bad in [
            "script", "img", "link", "iframe", "object", "embed", "image", "use ",
        ] {
            assert!(!tag.starts_with(bad), "a <{bad}> element: <{tag}>");
        }
        for attr in ["src=", "href=", "url(", "xlink:href", "srcset"] {
            for (i, _) in tag.match_indices(attr) {
                let rest = tag[i + attr.len()..].trim_start_matches(['"', '\'', ' ']);
                assert!(
                    rest.starts_with('#'),
                    "{attr} that is not a fragment: <{tag}>"
                );
            }
        }
    }
    let style: String = lower
        .split("<style>")
        .skip(1)
        .filter_map(|s| s.split("</style>").next())
        .collect();
    assert!(
        !style.contains("url(") && !style.contains("@import"),
        "a stylesheet fetch"
    );
}

/// The sample holds no address of any kind: nothing that could become a fetch.
fn assert_no_urls(html: &str) {
    let lower = html.to_ascii_lowercase();
    assert!(!lower.contains("http://") && !lower.contains("https://"));
}

#[test]
fn the_sample_report_in_japanese_matches_its_golden_file() {
    let d = tempfile::tempdir().unwrap();
    let (_, html) = sample_report(d.path(), "report.html", &[]);
    let html = read_text(&html);
    assert_self_contained(&html);
    assert_no_urls(&html);
    // What a director reads first.
    for s in [
        "<html lang=\"ja\">",
        "デモ総合病院",
        "外部接続点 現地調査報告書",
        "台帳に未登録",
        "size: A4",
        "counter(pages)",
        "break-before: page",
        "Noto Sans CJK JP",
        "2-①",
        "3-②",
        "判断材料なし",
        "要対応",
    ] {
        assert!(html.contains(s), "missing {s}");
    }
    insta::assert_snapshot!("sample_report_ja_html", html);
}

#[test]
fn the_sample_report_in_english_matches_its_golden_file() {
    let d = tempfile::tempdir().unwrap();
    let (_, html) = sample_report(d.path(), "report.html", &["--lang", "en"]);
    let html = read_text(&html);
    assert_self_contained(&html);
    assert_no_urls(&html);
    assert!(html.contains("<html lang=\"en\">"));
    assert!(html.contains("External Connection Point Survey Report"));
    assert!(!html.contains("外部接続点 現地調査報告書"));
    insta::assert_snapshot!("sample_report_en_html", html);
}

#[test]
fn the_sample_ledger_csv_matches_its_golden_files_in_both_languages() {
    let d = tempfile::tempdir().unwrap();
    for (lang, name) in [
        ("ja", "sample_ledger_ja_csv"),
        ("en", "sample_ledger_en_csv"),
    ] {
        let (_, p) = sample_report(d.path(), "ledger.csv", &["--lang", lang]);
        let bytes = std::fs::read(&p).unwrap();
        assert!(bytes.starts_with("\u{feff}".as_bytes()), "BOM");
        let text = String::from_utf8(bytes).unwrap();
        let mut rd = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
        let header = rd.headers().unwrap().clone();
        let rows: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
        // 7 points and 7 internal hosts (samples/README.md).
        assert_eq!(rows.len(), 14, "{text}");
        assert!(rows.iter().all(|r| r.len() == header.len()));
        let kind = |k: &str| rows.iter().filter(|r| &r[0] == k).count();
        if lang == "ja" {
            assert_eq!(&header[0], "種別");
            assert_eq!((kind("外部接続点"), kind("院内機器")), (7, 7));
        } else {
            assert_eq!(&header[2], "internal_ip");
            assert_eq!((kind("connection point"), kind("internal host")), (7, 7));
        }
        assert!(text.contains("\r\n"));
        insta::assert_snapshot!(name, text);
    }
}

#[test]
fn the_report_format_follows_the_extension_and_json_carries_its_schema() {
    let d = tempfile::tempdir().unwrap();
    let (_, p) = sample_report(d.path(), "report.json", &[]);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
    assert_eq!(v["schema"], "setten.report/1");
    assert_eq!(v["generated_at"], "2026-10-05T00:00:00.000000Z");
    assert_eq!(v["points"].as_array().unwrap().len(), 7);
    assert_eq!(v["summary"]["unregistered"], 3);
    let ids: Vec<&str> = v["checklist"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["2-①", "2-②", "2-⑥", "2-⑨", "2-⑰", "3-②"]);
    // --report-format wins over the extension.
    let (_, p) = sample_report(d.path(), "out.txt", &["--report-format", "csv"]);
    assert!(std::fs::read(p).unwrap().starts_with("\u{feff}".as_bytes()));
}

#[test]
fn the_sample_ledger_in_shift_jis_reads_back_with_the_same_text() {
    let d = tempfile::tempdir().unwrap();
    let (_, utf8) = sample_report(d.path(), "a.csv", &[]);
    let (_, sjis) = sample_report(d.path(), "b.csv", &["--report-encoding", "shift_jis"]);
    let bytes = std::fs::read(sjis).unwrap();
    let (text, _, bad) = encoding_rs::SHIFT_JIS.decode(&bytes);
    assert!(!bad);
    assert_eq!(
        text,
        read_text(&utf8).trim_start_matches('\u{feff}'),
        "same content in both encodings"
    );
}

// ---------------------------------------------------------------------------------------
// Library-level: points built through the inventory's own API.

const T0: u64 = 1_791_158_400_000_000;

fn ip(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn session(inside: IpAddr, far: IpAddr, service: Service, dport: u16, i: u64) -> Session {
    Session {
        transport: 6,
        client: Endpoint {
            ip: inside,
            port: 50000,
        },
        server: Endpoint {
            ip: far,
            port: dport,
        },
        direction: Direction::Outbound,
        service,
        protocol: service.as_str().into(),
        vendor: None,
        product: None,
        evidence: vec![Evidence::new(
            format!("setten.{}.test", service.as_str()),
            "test",
            "x",
        )],
        weak: None,
        non_standard_port: false,
        first_us: T0 + i * 3_600_000_000,
        last_us: T0 + i * 3_600_000_000 + 600_000_000,
        bytes: 1000,
        packets: 10,
        vlan: 0,
        far_names: Vec::new(),
        internal_mac: None,
        versions: Vec::new(),
        agents: Vec::new(),
    }
}

fn points_of(sessions: Vec<Session>) -> Vec<ConnectionPoint> {
    let rules = Rules::defaults().unwrap();
    let mut inv = Inventory::new();
    for s in sessions {
        inv.add_session(s, &rules.policy);
    }
    inv.points(&PointsCx {
        policy: &rules.policy,
        ledger: None,
        oui: &Oui::default(),
    })
    .points
}

fn report_of(points: &[ConnectionPoint], lang: Lang) -> report::Report {
    let rules = Rules::defaults().unwrap();
    report::build(
        &ReportInput {
            points,
            unseen: &[],
            ledger_given: false,
            quality: None,
            sensors: Vec::new(),
            backups: Vec::new(),
            policy: &rules.policy,
            site: Some("<b>site</b>".into()),
            generated_us: T0,
            tool: "setten test".into(),
            source: Source::Captures,
        },
        lang,
    )
}

/// `n` points over `n / 3` internal hosts and `n / 2` far hosts.
fn many_points(n: u8) -> Vec<ConnectionPoint> {
    let services = [Service::Ssh, Service::Rdp, Service::Openvpn, Service::Vnc];
    let sessions = (0..n)
        .map(|i| {
            let s = services[usize::from(i) % services.len()];
            session(
                ip(10, 0, 0, i / 3 + 1),
                ip(203, 0, 113, i / 2 + 1),
                s,
                22,
                u64::from(i),
            )
        })
        .collect();
    points_of(sessions)
}

#[test]
fn the_diagram_stays_readable_with_50_points() {
    let pts = many_points(50);
    assert_eq!(pts.len(), 50);
    let r = report_of(&pts, Lang::Ja);
    let d = &r.diagram;
    for kind in ["host", "point", "far"] {
        let mut ys: Vec<u32> = d
            .nodes
            .iter()
            .filter(|n| n.kind == kind)
            .map(|n| n.y)
            .collect();
        assert!(!ys.is_empty());
        let before = ys.len();
        ys.sort_unstable();
        ys.dedup();
        assert_eq!(ys.len(), before, "{kind}: two boxes on one row");
        for w in ys.windows(2) {
            assert!(
                w[1] - w[0] >= report::diagram::NODE_H,
                "{kind}: boxes at {} and {} overlap",
                w[0],
                w[1]
            );
        }
        assert!(ys.iter().all(|y| y + report::diagram::NODE_H <= d.height));
    }
    assert_eq!(d.nodes.iter().filter(|n| n.kind == "point").count(), 50);
    assert_eq!(d.nodes.iter().filter(|n| n.kind == "host").count(), 17);
    assert_eq!(d.nodes.iter().filter(|n| n.kind == "far").count(), 25);
    // Columns do not touch horizontally either.
    let right = |k: &str| {
        d.nodes
            .iter()
            .filter(|n| n.kind == k)
            .map(|n| n.x + n.w)
            .max()
            .unwrap()
    };
    let left = |k: &str| {
        d.nodes
            .iter()
            .filter(|n| n.kind == k)
            .map(|n| n.x)
            .min()
            .unwrap()
    };
    assert!(right("host") < left("point") && right("point") < left("far"));
    assert!(right("far") <= d.width);
    // The drawing grows with the points instead of squeezing them.
    let small = report_of(&many_points(10), Lang::Ja).diagram;
    assert!(
        d.height > small.height * 4,
        "{} vs {}",
        d.height,
        small.height
    );
    let html =
        String::from_utf8(report::render(&r, Format::Html, CsvEncoding::Utf8Bom).unwrap()).unwrap();
    assert!(html.contains(&format!("viewBox=\"0 0 {} {}\"", d.width, d.height)));
    assert_eq!(html.matches("<g class=\"node point").count(), 50);
}

fn hostile_points(name: &str) -> Vec<ConnectionPoint> {
    let mut s = session(ip(10, 0, 0, 5), ip(198, 51, 100, 9), Service::Rdp, 3389, 0);
    s.far_names = vec![name.to_owned()];
    s.vendor = Some(name.to_owned());
    s.product = Some(format!("{name} product"));
    s.evidence = vec![Evidence::new("setten.tls.sni", "sni", name)];
    s.versions = vec![name.to_owned()];
    points_of(vec![s])
}

#[test]
fn hostile_names_from_the_network_are_escaped_and_neutralised() {
    let evil = "<script>alert(1)</script>\"><img src=x onerror=alert(2)>";
    let pts = hostile_points(evil);
    for lang in [Lang::Ja, Lang::En] {
        let r = report_of(&pts, lang);
        let html =
            String::from_utf8(report::render(&r, Format::Html, CsvEncoding::Utf8Bom).unwrap())
                .unwrap();
        assert!(!html.contains("<script"), "unescaped script");
        assert!(!html.contains("<img"), "unescaped img");
        assert!(!html.contains("<b>site"), "unescaped site name");
        assert!(html.contains("&lt;script&gt;alert(1)"));
        assert_self_contained(&html);
    }
    // A formula in a host name reaches the CSV as text.
    let pts = hostile_points("=HYPERLINK(\"http://evil.example\",\"x\")");
    let r = report_of(&pts, Lang::Ja);
    let csv =
        String::from_utf8(report::render(&r, Format::Csv, CsvEncoding::Utf8Bom).unwrap()).unwrap();
    let mut rd = csv::Reader::from_reader(csv.trim_start_matches('\u{feff}').as_bytes());
    let header = rd.headers().unwrap().clone();
    let col = header.iter().position(|h| h == "接続先の名前").unwrap();
    let row = rd.records().next().unwrap().unwrap();
    assert_eq!(&row[col], "'=HYPERLINK(\"http://evil.example\",\"x\")");
    for rec in csv.lines() {
        for c in rec.split(',') {
            assert!(!c.starts_with('='), "a formula cell: {rec}");
        }
    }
}

#[test]
fn shift_jis_refuses_what_it_cannot_hold_naming_row_and_column() {
    let pts = hostile_points("vpn-🏥.example.jp");
    let r = report_of(&pts, Lang::Ja);
    let e = report::render(&r, Format::Csv, CsvEncoding::ShiftJis).unwrap_err();
    let m = e.to_string();
    assert!(m.contains("CSV row 2, column `接続先の名前`"), "{m}");
    assert!(m.contains("U+1F3E5"), "{m}");
    // Japanese text is fine.
    let pts = hostile_points("電子カルテ保守.example.jp");
    let r = report_of(&pts, Lang::Ja);
    let b = report::render(&r, Format::Csv, CsvEncoding::ShiftJis).unwrap();
    let (text, _, bad) = encoding_rs::SHIFT_JIS.decode(&b);
    assert!(!bad && text.contains("電子カルテ保守.example.jp"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// The renderers never panic and never let markup through, whatever a name holds.
    #[test]
    fn any_string_in_a_point_renders(name in "\\PC{0,300}", raw in proptest::collection::vec(any::<char>(), 0..80)) {
        let raw: String = raw.into_iter().collect();
        for n in [name.as_str(), raw.as_str()] {
            let pts = hostile_points(n);
            let r = report_of(&pts, Lang::Ja);
            let html = String::from_utf8(report::render(&r, Format::Html, CsvEncoding::Utf8Bom).unwrap()).unwrap();
            prop_assert!(!html.contains("<script"));
            report::render(&r, Format::Csv, CsvEncoding::Utf8Bom).unwrap();
            report::render(&r, Format::Json, CsvEncoding::Utf8Bom).unwrap();
            // Shift_JIS either works or names the cell.
            if let Err(e) = report::render(&r, Format::Csv, CsvEncoding::ShiftJis) {
                prop_assert!(e.to_string().contains("CSV row"));
            }
        }
    }
}

/// The PDF through a real headless Chromium: the Japanese fonts are embedded and the
/// headings come out as text.
#[test]
fn the_sample_report_prints_to_pdf_with_japanese_fonts_embedded() {
    if report::pdf::find_chromium().is_none() {
        eprintln!("SKIPPED: chromium is not installed (CI installs it in .ci/run)");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let (_, pdf) = sample_report(d.path(), "report.pdf", &[]);
    let bytes = std::fs::read(&pdf).unwrap();
    assert!(bytes.starts_with(b"%PDF-"));
    let fonts = Command::new("pdffonts")
        .arg(&pdf)
        .output()
        .expect("pdffonts (poppler-utils)");
    assert!(fonts.status.success());
    let fonts = String::from_utf8_lossy(&fonts.stdout).into_owned();
    let rows: Vec<&str> = fonts.lines().skip(2).collect();
    assert!(!rows.is_empty(), "{fonts}");
    for r in &rows {
        // name type encoding emb sub uni object: every font embedded with a Unicode map.
        let cols: Vec<&str> = r.split_whitespace().collect();
        let n = cols.len();
        assert!(n >= 7, "{r}");
        assert_eq!(
            (cols[n - 5], cols[n - 3]),
            ("yes", "yes"),
            "not embedded or no ToUnicode: {r}"
        );
    }
    // Chromium (Skia) embeds CFF-flavoured OpenType such as Noto Sans CJK as Type 3
    // fonts, which pdffonts lists without a name; their font descriptors carry it.
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("/FontFamily (Noto Sans CJK JP)"),
        "Noto Sans CJK JP not embedded"
    );
    for name in text.split("/FontName /").skip(1) {
        let name: String = name
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '/')
            .collect();
        assert!(name.contains("Noto"), "a fallback font was used: {name}");
    }
    let out = Command::new("pdftotext")
        .arg(&pdf)
        .arg("-")
        .output()
        .expect("pdftotext");
    let t = String::from_utf8(out.stdout).unwrap();
    for h in [
        "外部接続点 現地調査報告書",
        "デモ総合病院",
        "1. 概要",
        "2. ネットワーク構成図（外部接続点）",
        "5. チェックリスト項目との対応",
        "対応してほしいこと",
        "要対応",
    ] {
        assert!(t.contains(h), "missing in the PDF text: {h}");
    }
    assert!(!t.contains('\u{fffd}'));
    // Page numbers from CSS paged media.
    assert!(t.contains("2 / "), "no page numbers");
}
