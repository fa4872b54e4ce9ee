//! The alert rules (`rules/alerts.toml`): which conditions raise an alert, how severe,
//! and the Japanese and English texts. Loaded and checked like the agent's rule files
//! (`setten_agent::rules`): unknown keys, unknown or missing rule ids, unknown
//! placeholders and parameters a rule does not take are refused with the file, line and
//! key named. The file's own header documents every key.

use super::Severity;
use serde::Deserialize;
use setten_agent::rules::RulesError;
use std::collections::BTreeMap;
use std::path::Path;

/// The built-in rules, embedded at build time.
pub const DEFAULT_RULES: &str = include_str!("../../../rules/alerts.toml");
/// The file name in a rules directory.
pub const FILE_NAME: &str = "alerts.toml";
/// Largest rules file read.
const MAX_FILE_BYTES: u64 = 1 << 20;
/// Longest template accepted, in bytes.
const MAX_TEMPLATE_BYTES: usize = 2048;

/// What a rule is about, which decides its placeholders and parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// A connection point.
    Point,
    /// A backup medium.
    Backup,
    /// An agent.
    Agent,
    /// An agent's capture.
    Capture,
}

impl Family {
    /// The placeholders its templates may use.
    pub fn vars(self) -> &'static [&'static str] {
        match self {
            Family::Point => &[
                "point", "host", "service", "port", "far", "vendor", "detail",
            ],
            Family::Backup => &[
                "medium",
                "agent",
                "result",
                "message",
                "generation",
                "days",
                "hours",
            ],
            Family::Agent => &["agent", "minutes", "last_seen"],
            Family::Capture => &["agent", "drop_rate", "threshold"],
        }
    }
}

/// The rules the collector implements: id, family, the parameters each takes.
pub const KNOWN: &[(&str, Family, &[&str])] = &[
    (
        ids::POINT_UNREGISTERED,
        Family::Point,
        &["include_no_ledger"],
    ),
    (ids::POINT_INBOUND_INTERNET, Family::Point, &[]),
    (ids::POINT_MANY_SOURCES, Family::Point, &[]),
    (ids::POINT_WEAK, Family::Point, &[]),
    (ids::POINT_OUTSIDE_WINDOW, Family::Point, &[]),
    (ids::BACKUP_VERIFY_FAILED, Family::Backup, &[]),
    (ids::BACKUP_OVER_WINDOW, Family::Backup, &[]),
    (ids::BACKUP_NOT_VERIFIED, Family::Backup, &["days"]),
    (ids::BACKUP_FLAGGED, Family::Backup, &[]),
    (ids::AGENT_SILENT, Family::Agent, &["minutes"]),
    (ids::CAPTURE_DROPS, Family::Capture, &["drop_rate"]),
];

/// Stable rule ids.
pub mod ids {
    /// A new connection point the ledger does not list.
    pub const POINT_UNREGISTERED: &str = "alert.point.unregistered";
    /// Remote access started from the Internet.
    pub const POINT_INBOUND_INTERNET: &str = "alert.point.inbound_internet";
    /// An inbound point open to many external sources.
    pub const POINT_MANY_SOURCES: &str = "alert.point.many_sources";
    /// A legacy or weak protocol (telnet, PPTP, RDP standard security, …).
    pub const POINT_WEAK: &str = "alert.point.weak";
    /// A maintenance connection active outside its window.
    pub const POINT_OUTSIDE_WINDOW: &str = "alert.point.outside_window";
    /// A backup verification failed or found differences.
    pub const BACKUP_VERIFY_FAILED: &str = "alert.backup.verify_failed";
    /// A medium stayed connected past its window.
    pub const BACKUP_OVER_WINDOW: &str = "alert.backup.over_window";
    /// A medium not verified for N days.
    pub const BACKUP_NOT_VERIFIED: &str = "alert.backup.not_verified";
    /// A generation flagged as suspicious at seal.
    pub const BACKUP_FLAGGED: &str = "alert.backup.flagged";
    /// An agent silent for N minutes.
    pub const AGENT_SILENT: &str = "alert.agent.silent";
    /// Capture drops above a threshold.
    pub const CAPTURE_DROPS: &str = "alert.capture.drops";
}

/// Texts in one language.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Texts {
    /// One line.
    pub title: String,
    /// What happened.
    pub what: String,
    /// Where.
    pub place: String,
    /// The first thing to do.
    pub action: String,
}

impl Texts {
    /// The texts with `{name}` replaced from `vars` (absent ones become "-").
    pub fn render(&self, vars: &BTreeMap<&str, String>) -> Texts {
        Texts {
            title: fill(&self.title, vars),
            what: fill(&self.what, vars),
            place: fill(&self.place, vars),
            action: fill(&self.action, vars),
        }
    }
}

/// One rule.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertRule {
    /// Stable id.
    pub id: &'static str,
    /// What it is about.
    pub family: Family,
    /// Severity.
    pub severity: Severity,
    /// Whether it raises alerts.
    pub enabled: bool,
    /// Own throttle window, seconds (else the collector's).
    pub throttle_seconds: Option<u64>,
    /// One alert per subject for good.
    pub once: bool,
    /// Japanese texts.
    pub ja: Texts,
    /// English texts.
    pub en: Texts,
    /// `include_no_ledger`.
    pub include_no_ledger: bool,
    /// `days`.
    pub days: f64,
    /// `minutes`.
    pub minutes: f64,
    /// `drop_rate`.
    pub drop_rate: Option<f64>,
}

/// The loaded rules, one per id of [`KNOWN`].
#[derive(Clone, Debug, PartialEq)]
pub struct AlertRules {
    rules: Vec<AlertRule>,
}

impl AlertRules {
    /// The built-in rules.
    pub fn defaults() -> AlertRules {
        AlertRules::parse(Path::new("rules/alerts.toml"), DEFAULT_RULES)
            .expect("the built-in alert rules load")
    }

    /// `alerts.toml` of a rules directory, or the built-in rules when the directory has
    /// none.
    pub fn load_dir(dir: &Path) -> Result<AlertRules, RulesError> {
        let path = dir.join(FILE_NAME);
        if !path.exists() {
            return Ok(AlertRules::defaults());
        }
        AlertRules::load(&path)
    }

    /// Reads one file.
    pub fn load(path: &Path) -> Result<AlertRules, RulesError> {
        use std::io::Read;
        let err = |message: String| RulesError {
            file: path.to_owned(),
            line: None,
            key: None,
            message,
        };
        let f = std::fs::File::open(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let mut bytes = Vec::new();
        f.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| err(format!("cannot read: {e}")))?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(err(format!("larger than {MAX_FILE_BYTES} bytes")));
        }
        let text = String::from_utf8(bytes).map_err(|e| err(format!("not UTF-8: {e}")))?;
        AlertRules::parse(path, &text)
    }

    /// Parses a file's text.
    pub fn parse(file: &Path, text: &str) -> Result<AlertRules, RulesError> {
        let line_of = |offset: usize| text.get(..offset).map(|t| t.lines().count().max(1));
        let doc: FileDoc = toml::from_str(text).map_err(|e| RulesError {
            file: file.to_owned(),
            line: e.span().and_then(|s| line_of(s.start + 1)),
            key: None,
            message: e.message().trim().to_owned(),
        })?;
        let mut rules: Vec<AlertRule> = Vec::new();
        for spanned in doc.alert {
            let span = spanned.span();
            let d = spanned.into_inner();
            let fail = |key: &str, message: String| RulesError {
                file: file.to_owned(),
                line: line_of(
                    span.start + key_offset(text.get(span.start..).unwrap_or(""), key) + 1,
                ),
                key: Some(key.to_owned()),
                message,
            };
            let Some(&(id, family, params)) = KNOWN.iter().find(|(id, _, _)| *id == d.id) else {
                let names: Vec<&str> = KNOWN.iter().map(|k| k.0).collect();
                return Err(fail(
                    "id",
                    format!("unknown alert rule {:?}; known: {}", d.id, names.join(", ")),
                ));
            };
            if rules.iter().any(|r| r.id == id) {
                return Err(fail("id", format!("rule {id:?} is defined twice")));
            }
            let severity = Severity::parse(&d.severity).ok_or_else(|| {
                fail(
                    "severity",
                    format!(
                        "{:?} is not a severity; use info, warning or critical",
                        d.severity
                    ),
                )
            })?;
            for (key, present) in [
                ("include_no_ledger", d.include_no_ledger.is_some()),
                ("days", d.days.is_some()),
                ("minutes", d.minutes.is_some()),
                ("drop_rate", d.drop_rate.is_some()),
            ] {
                if present && !params.contains(&key) {
                    return Err(fail(
                        key,
                        format!(
                            "{id} does not take `{key}` (it takes: {})",
                            if params.is_empty() {
                                "no parameters".to_owned()
                            } else {
                                params.join(", ")
                            }
                        ),
                    ));
                }
            }
            let positive = |key: &str, v: Option<f64>, default: f64, max: f64| {
                let v = v.unwrap_or(default);
                if v.is_finite() && v > 0.0 && v <= max {
                    Ok(v)
                } else {
                    Err(fail(
                        key,
                        format!("{v} is out of range; use more than 0 and at most {max}"),
                    ))
                }
            };
            let days = positive("days", d.days, 7.0, 3650.0)?;
            let minutes = positive("minutes", d.minutes, 15.0, 10_080.0)?;
            let drop_rate = match d.drop_rate {
                None => None,
                Some(r) if r.is_finite() && (0.0..=1.0).contains(&r) => Some(r),
                Some(r) => {
                    return Err(fail(
                        "drop_rate",
                        format!("{r} is not a share between 0 and 1 (e.g. 0.001 for 0.1 %)"),
                    ))
                }
            };
            if let Some(t) = d.throttle_seconds {
                if t == 0 || t > 30 * 86_400 {
                    return Err(fail(
                        "throttle_seconds",
                        format!("{t} is out of range; use 1 to {} (30 days)", 30 * 86_400),
                    ));
                }
            }
            let vars = family.vars();
            let check = |key: &str, t: &str| -> Result<String, RulesError> {
                if t.trim().is_empty() {
                    return Err(fail(key, "must not be empty".into()));
                }
                if t.len() > MAX_TEMPLATE_BYTES {
                    return Err(fail(key, format!("longer than {MAX_TEMPLATE_BYTES} bytes")));
                }
                for name in placeholders(t).map_err(|m| fail(key, m))? {
                    if !vars.contains(&name) {
                        return Err(fail(
                            key,
                            format!(
                                "unknown placeholder {{{name}}}; {id} knows {}",
                                vars.iter()
                                    .map(|v| format!("{{{v}}}"))
                                    .collect::<Vec<_>>()
                                    .join(" ")
                            ),
                        ));
                    }
                }
                Ok(t.to_owned())
            };
            let ja = Texts {
                title: check("title_ja", &d.title_ja)?,
                what: check("what_ja", &d.what_ja)?,
                place: check("where_ja", &d.where_ja)?,
                action: check("action_ja", &d.action_ja)?,
            };
            let en = Texts {
                title: check("title_en", &d.title_en)?,
                what: check("what_en", &d.what_en)?,
                place: check("where_en", &d.where_en)?,
                action: check("action_en", &d.action_en)?,
            };
            if ja.title.contains('\n') || en.title.contains('\n') {
                return Err(fail("title_ja", "a title is one line".into()));
            }
            rules.push(AlertRule {
                id,
                family,
                severity,
                enabled: d.enabled,
                throttle_seconds: d.throttle_seconds,
                once: d.once.unwrap_or(false),
                ja,
                en,
                include_no_ledger: d.include_no_ledger.unwrap_or(false),
                days,
                minutes,
                drop_rate,
            });
        }
        let missing: Vec<&str> = KNOWN
            .iter()
            .map(|k| k.0)
            .filter(|id| !rules.iter().any(|r| r.id == *id))
            .collect();
        if !missing.is_empty() {
            return Err(RulesError {
                file: file.to_owned(),
                line: None,
                key: Some("id".into()),
                message: format!(
                    "rules missing: {} (every rule must be present; set enabled = false to turn one off)",
                    missing.join(", ")
                ),
            });
        }
        Ok(AlertRules { rules })
    }

    /// The rule of an id (every known id has one).
    pub fn get(&self, id: &str) -> Option<&AlertRule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// Every rule.
    pub fn all(&self) -> &[AlertRule] {
        &self.rules
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    #[serde(default)]
    alert: Vec<toml::Spanned<RuleDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDoc {
    id: String,
    severity: String,
    enabled: bool,
    #[serde(default)]
    throttle_seconds: Option<u64>,
    #[serde(default)]
    once: Option<bool>,
    title_ja: String,
    title_en: String,
    what_ja: String,
    what_en: String,
    where_ja: String,
    where_en: String,
    action_ja: String,
    action_en: String,
    #[serde(default)]
    include_no_ledger: Option<bool>,
    #[serde(default)]
    days: Option<f64>,
    #[serde(default)]
    minutes: Option<f64>,
    #[serde(default)]
    drop_rate: Option<f64>,
}

/// Byte offset of the line assigning `key` within a table's text (0 if not found).
fn key_offset(table: &str, key: &str) -> usize {
    let mut off = 0;
    for (i, line) in table.split_inclusive('\n').enumerate() {
        let t = line.trim_start();
        if i > 0 && t.starts_with('[') {
            return 0;
        }
        if let Some(rest) = t.strip_prefix(key) {
            if rest.trim_start().starts_with('=') {
                return off + (line.len() - t.len());
            }
        }
        off += line.len();
    }
    0
}

/// The `{name}` placeholders of a template (`{{` and `}}` are literal braces).
fn placeholders(t: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(i) = rest.find(['{', '}']) {
        let (c, after) = (rest.as_bytes()[i], &rest[i + 1..]);
        if after.starts_with(c as char) {
            rest = &after[1..];
            continue;
        }
        if c == b'}' {
            return Err("a lone `}` (write `}}` for a brace)".into());
        }
        let end = after
            .find('}')
            .ok_or_else(|| "a `{` without its `}` (write `{{` for a brace)".to_owned())?;
        out.push(&after[..end]);
        rest = &after[end + 1..];
    }
    Ok(out)
}

/// Fills a template checked by [`placeholders`].
fn fill(t: &str, vars: &BTreeMap<&str, String>) -> String {
    let mut out = String::with_capacity(t.len() + 32);
    let mut rest = t;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let c = rest.as_bytes()[i] as char;
        let after = &rest[i + 1..];
        if after.starts_with(c) {
            out.push(c);
            rest = &after[1..];
            continue;
        }
        match (c, after.find('}')) {
            ('{', Some(end)) => {
                let name = &after[..end];
                match vars.get(name) {
                    Some(v) if !v.is_empty() => out.push_str(v),
                    _ => out.push('-'),
                }
                rest = &after[end + 1..];
            }
            _ => {
                out.push(c);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_rules_load_and_cover_every_id() {
        let r = AlertRules::defaults();
        assert_eq!(r.all().len(), KNOWN.len());
        let silent = r.get(ids::AGENT_SILENT).unwrap();
        assert_eq!(silent.minutes, 15.0);
        assert_eq!(
            r.get(ids::POINT_INBOUND_INTERNET).unwrap().severity,
            Severity::Critical
        );
        assert!(r.get(ids::POINT_UNREGISTERED).unwrap().once);
    }

    fn replace(from: &str, to: &str) -> String {
        assert!(DEFAULT_RULES.contains(from), "{from}");
        DEFAULT_RULES.replacen(from, to, 1)
    }

    fn line_of(text: &str, needle: &str) -> usize {
        text[..text.find(needle).unwrap()].matches('\n').count() + 1
    }

    #[test]
    fn errors_name_the_file_line_and_key() {
        let p = Path::new("/etc/setten/rules/alerts.toml");
        let text = replace("minutes = 15\n", "minutes = 15\ncolour = \"red\"\n");
        let e = AlertRules::parse(p, &text).unwrap_err();
        assert_eq!(e.line, Some(line_of(&text, "colour")), "{e}");
        assert!(e.to_string().contains("unknown field `colour`"), "{e}");

        let text = replace("{medium}（エージェント {agent}）", "{medium}（{host}）");
        let e = AlertRules::parse(p, &text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("where_ja"), "{e}");
        assert_eq!(e.line, Some(line_of(&text, "{medium}（{host}）")), "{e}");
        assert!(e.to_string().contains("unknown placeholder {host}"), "{e}");

        let text = replace("days = 7\n", "days = 7\nminutes = 3\n");
        let e = AlertRules::parse(p, &text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("minutes"), "{e}");
        assert!(e.message.contains("does not take `minutes`"), "{e}");

        let text = replace("id = \"alert.agent.silent\"", "id = \"alert.agent.asleep\"");
        let e = AlertRules::parse(p, &text).unwrap_err();
        assert!(e.message.contains("unknown alert rule"), "{e}");

        let text = replace("severity = \"critical\"", "severity = \"high\"");
        let e = AlertRules::parse(p, &text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("severity"), "{e}");

        let start = DEFAULT_RULES
            .find("[[alert]]\nid = \"alert.capture.drops\"")
            .unwrap();
        let e = AlertRules::parse(p, &DEFAULT_RULES[..start]).unwrap_err();
        assert!(
            e.message.contains("rules missing: alert.capture.drops"),
            "{e}"
        );
    }

    #[test]
    fn templates_fill_and_keep_escaped_braces() {
        let mut v = BTreeMap::new();
        v.insert("host", "10.0.0.5 (pacs)".to_owned());
        assert_eq!(fill("{host} {{x}} {service}", &v), "10.0.0.5 (pacs) {x} -");
        assert_eq!(placeholders("a {b} {{c}} }}").unwrap(), ["b"]);
        assert!(placeholders("a {b").is_err());
        assert!(placeholders("a } b").is_err());
    }
}
