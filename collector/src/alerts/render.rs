//! What a delivery says, per channel kind: the plain-text mail, the webhook payloads
//! (setten JSON, Slack, Teams) and the RFC 5424 syslog message. Everything is derived
//! from the stored alert, so a delivery after a restart says the same thing.

use super::config::{Lang, WebhookFormat};
use super::{Alert, Severity};
use serde_json::{json, Value};

/// One delivery to render.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    /// The alert.
    pub alert: &'a Alert,
    /// The delivery's id (0 for a test).
    pub delivery: i64,
    /// Whether it is an escalation.
    pub escalation: bool,
    /// Whether it is a test (`alert test CHANNEL`).
    pub test: bool,
    /// The channel's language.
    pub lang: Lang,
    /// The site's offset from UTC, seconds.
    pub utc_offset_secs: i32,
    /// Now, µs (for "unacknowledged for N minutes").
    pub now_us: i64,
}

/// "30分" / "30 minutes" for a window in seconds.
pub fn span(seconds: u64, lang: Lang) -> String {
    let (n, ja, en) = if seconds % 86_400 == 0 {
        (seconds / 86_400, "日", "day")
    } else if seconds % 3600 == 0 {
        (seconds / 3600, "時間", "hour")
    } else if seconds % 60 == 0 {
        (seconds / 60, "分", "minute")
    } else {
        (seconds, "秒", "second")
    };
    match lang {
        Lang::En => format!("{n} {en}{}", if n == 1 { "" } else { "s" }),
        _ => format!("{n}{ja}"),
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms", `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `2026-10-05 09:00:00 (+09:00)` in the site's time.
pub fn local_time(us: i64, utc_offset_secs: i32) -> String {
    let secs = us.div_euclid(1_000_000) + i64::from(utc_offset_secs);
    let (y, mo, d) = civil(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    let off = utc_offset_secs.abs();
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02} ({}{:02}:{:02})",
        t / 3600,
        t % 3600 / 60,
        t % 60,
        if utc_offset_secs < 0 { '-' } else { '+' },
        off / 3600,
        off % 3600 / 60
    )
}

/// RFC 3339 in UTC with microseconds (RFC 5424 §6.2.3 TIMESTAMP allows up to six
/// fractional digits).
pub fn rfc3339_utc(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let (y, mo, d) = civil(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        t / 3600,
        t % 3600 / 60,
        t % 60,
        us.rem_euclid(1_000_000)
    )
}

impl Message<'_> {
    fn langs(&self) -> &'static [Lang] {
        match self.lang {
            Lang::Ja => &[Lang::Ja],
            Lang::En => &[Lang::En],
            Lang::JaEn => &[Lang::Ja, Lang::En],
        }
    }

    fn primary(&self) -> Lang {
        match self.lang {
            Lang::En => Lang::En,
            _ => Lang::Ja,
        }
    }

    fn severity_label(&self, lang: Lang) -> &'static str {
        match lang {
            Lang::En => self.alert.severity.label_en(),
            _ => self.alert.severity.label_ja(),
        }
    }

    /// The one-line title, with severity (and escalation or test) marks.
    pub fn title(&self) -> String {
        self.title_in(self.primary())
    }

    fn title_in(&self, lang: Lang) -> String {
        let t = &self.alert.content.texts(lang).title;
        let (esc, test) = match lang {
            Lang::En => ("[Escalation] ", "[TEST] "),
            _ => ("【エスカレーション】", "【テスト】"),
        };
        format!(
            "{}{}[setten {}] {t}",
            if self.test { test } else { "" },
            if self.escalation { esc } else { "" },
            self.severity_label(lang)
        )
    }

    /// The repeat line, when triggers were suppressed before this alert.
    pub fn repeats_line(&self, lang: Lang) -> Option<String> {
        let n = self.alert.repeats_before;
        if n == 0 {
            return None;
        }
        let w = self.alert.window_seconds.map(|w| span(w, lang));
        Some(match (lang, w) {
            (Lang::En, Some(w)) => format!(
                "The same alert occurred {n} more time{} since the last message (it is sent at most once per {w}).",
                if n == 1 { "" } else { "s" }
            ),
            (Lang::En, None) => format!("The same alert occurred {n} more times."),
            (_, Some(w)) => format!(
                "※ 前回の通知以降、この{w}間に同じ警報が{n}回ありました（同じ警報は{w}に1回まで通知します）。"
            ),
            (_, None) => format!("※ 同じ警報が{n}回ありました。"),
        })
    }

    fn escalation_line(&self, lang: Lang) -> Option<String> {
        if !self.escalation {
            return None;
        }
        let mins = (self.now_us - self.alert.raised_us).max(0) / 60_000_000;
        Some(match lang {
            Lang::En => format!(
                "Nobody has acknowledged this critical alert for {mins} minutes; acknowledge it once someone is on it."
            ),
            _ => format!(
                "この緊急警報は{mins}分間、誰も確認（ack）していません。対応する方は確認してください。"
            ),
        })
    }

    /// The plain-text body (e-mail), in the channel's language(s).
    pub fn text(&self) -> String {
        let mut out = String::new();
        for (i, &lang) in self.langs().iter().enumerate() {
            if i > 0 {
                out.push_str("\n----------------------------------------\n\n");
            }
            let t = self.alert.content.texts(lang);
            let (what, place, evidence, action, label_id, ack) = match lang {
                Lang::En => (
                    "What happened",
                    "Where",
                    "Evidence",
                    "First thing to do",
                    "Alert",
                    "Acknowledge",
                ),
                _ => (
                    "何が起きたか",
                    "場所",
                    "根拠",
                    "まず行うこと",
                    "警報",
                    "確認（ack）",
                ),
            };
            out.push_str(&self.title_in(lang));
            out.push_str("\n\n");
            if self.test {
                out.push_str(match lang {
                    Lang::En => "This is a test sent by `setten-collector alert test`; nothing happened.\n\n",
                    _ => "これは setten-collector alert test による試験送信です。実際の事象ではありません。\n\n",
                });
            }
            if let Some(l) = self.escalation_line(lang) {
                out.push_str(&l);
                out.push_str("\n\n");
            }
            out.push_str(&format!(
                "■ {what}\n{}\n\n■ {place}\n{}\n\n",
                t.what, t.place
            ));
            if !self.alert.content.evidence.is_empty() {
                out.push_str(&format!("■ {evidence}\n"));
                for e in &self.alert.content.evidence {
                    let label = if lang == Lang::En { &e.en } else { &e.ja };
                    out.push_str(&format!("・{label}: {}\n", e.value));
                }
                out.push('\n');
            }
            out.push_str(&format!("■ {action}\n{}\n\n", t.action));
            if let Some(l) = self.repeats_line(lang) {
                out.push_str(&l);
                out.push_str("\n\n");
            }
            if self.test {
                out.push_str(&format!(
                    "setten-collector alert test ({})\n",
                    local_time(self.now_us, self.utc_offset_secs)
                ));
                continue;
            }
            out.push_str(&format!(
                "{label_id} #{} ({}) {}\n{ack}: setten-collector alert ack {}\n",
                self.alert.id,
                self.alert.rule,
                local_time(self.alert.raised_us, self.utc_offset_secs),
                self.alert.id
            ));
        }
        out
    }

    /// One line for syslog (no line breaks).
    pub fn line(&self) -> String {
        let lang = self.primary();
        let t = self.alert.content.texts(lang);
        let (place, action) = match lang {
            Lang::En => ("Where", "Do"),
            _ => ("場所", "対処"),
        };
        let mut s = format!(
            "{} | {} | {place}: {} | {action}: {}",
            self.title(),
            t.what,
            t.place,
            t.action
        );
        if let Some(r) = self.repeats_line(lang) {
            s.push_str(" | ");
            s.push_str(&r);
        }
        s.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    }

    fn evidence_pairs(&self, lang: Lang) -> Vec<(String, String)> {
        self.alert
            .content
            .evidence
            .iter()
            .map(|e| {
                (
                    if lang == Lang::En {
                        e.en.clone()
                    } else {
                        e.ja.clone()
                    },
                    e.value.clone(),
                )
            })
            .collect()
    }

    /// The webhook body in a format.
    pub fn webhook(&self, format: WebhookFormat) -> Value {
        match format {
            WebhookFormat::Json => self.json(),
            WebhookFormat::Slack => self.slack(),
            WebhookFormat::Teams => self.teams(),
            WebhookFormat::TeamsMessageCard => self.message_card(),
        }
    }

    /// setten's own JSON (`setten.alert/1`).
    pub fn json(&self) -> Value {
        let a = self.alert;
        let lang = self.primary();
        let t = a.content.texts(lang);
        json!({
            "schema": "setten.alert/1",
            "alert": a.id,
            "delivery": self.delivery,
            "key": a.key,
            "rule": a.rule,
            "severity": a.severity.as_str(),
            "subject": a.subject,
            "escalation": self.escalation,
            "test": self.test,
            "raised_at": rfc3339_utc(a.raised_us),
            "repeats_before": a.repeats_before,
            "window_seconds": a.window_seconds,
            "lang": if lang == Lang::En { "en" } else { "ja" },
            "title": self.title(),
            "what": t.what,
            "where": t.place,
            "action": t.action,
            "evidence": self.evidence_pairs(lang).into_iter()
                .map(|(l, v)| json!({"label": l, "value": v})).collect::<Vec<_>>(),
            "repeats_text": self.repeats_line(lang),
            "text": self.text(),
            "ja": a.content.ja,
            "en": a.content.en,
            "facts": a.content.facts,
        })
    }

    /// Slack incoming webhook: `text` (the notification fallback) and Block Kit `blocks`
    /// (https://api.slack.com/messaging/webhooks; block limits from
    /// https://api.slack.com/reference/block-kit/blocks: a header's text at most 150
    /// characters, a section's text at most 3000, at most 10 fields of 2000). `&`, `<`
    /// and `>` are escaped as Slack's formatting reference asks.
    pub fn slack(&self) -> Value {
        let lang = self.primary();
        let t = self.alert.content.texts(lang);
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        let cut = |s: String, n: usize| -> String { s.chars().take(n).collect() };
        let (what, place, action) = match lang {
            Lang::En => ("What happened", "Where", "First thing to do"),
            _ => ("何が起きたか", "場所", "まず行うこと"),
        };
        let mut body = format!(
            "*{what}*\n{}\n*{place}*\n{}\n*{action}*\n{}",
            esc(&t.what),
            esc(&t.place),
            esc(&t.action)
        );
        if let Some(l) = self.escalation_line(lang) {
            body = format!("{}\n{body}", esc(&l));
        }
        if let Some(r) = self.repeats_line(lang) {
            body.push_str(&format!("\n_{}_", esc(&r)));
        }
        let mut blocks = vec![
            json!({"type": "header", "text": {"type": "plain_text", "text": cut(self.title(), 150), "emoji": false}}),
            json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(body, 3000)}}),
        ];
        let fields: Vec<Value> = self
            .evidence_pairs(lang)
            .into_iter()
            .take(10)
            .map(|(l, v)| json!({"type": "mrkdwn", "text": cut(format!("*{}*\n{}", esc(&l), esc(&v)), 2000)}))
            .collect();
        if !fields.is_empty() {
            blocks.push(json!({"type": "section", "fields": fields}));
        }
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": esc(&format!(
            "#{} {} {} · setten-collector alert ack {}",
            self.alert.id, self.alert.rule, local_time(self.alert.raised_us, self.utc_offset_secs), self.alert.id
        ))}]}));
        json!({"text": self.title(), "blocks": blocks})
    }

    /// Microsoft Teams through a Workflows webhook: a message with one Adaptive Card
    /// (https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using
    /// — "Send Adaptive Cards using an Incoming Webhook"; schema 1.4,
    /// https://adaptivecards.io/explorer/).
    pub fn teams(&self) -> Value {
        let lang = self.primary();
        let t = self.alert.content.texts(lang);
        let (place, action) = match lang {
            Lang::En => ("Where", "First thing to do"),
            _ => ("場所", "まず行うこと"),
        };
        let mut body = vec![
            json!({"type": "TextBlock", "text": self.title(), "weight": "Bolder", "size": "Medium", "wrap": true,
                   "color": if self.alert.severity == Severity::Critical { "Attention" } else { "Warning" }}),
        ];
        if let Some(l) = self.escalation_line(lang) {
            body.push(json!({"type": "TextBlock", "text": l, "wrap": true, "color": "Attention"}));
        }
        body.push(json!({"type": "TextBlock", "text": t.what, "wrap": true}));
        let mut facts = vec![json!({"title": place, "value": t.place})];
        facts.extend(
            self.evidence_pairs(lang)
                .into_iter()
                .map(|(l, v)| json!({"title": l, "value": v})),
        );
        body.push(json!({"type": "FactSet", "facts": facts}));
        body.push(json!({"type": "TextBlock", "text": action, "weight": "Bolder", "wrap": true}));
        body.push(json!({"type": "TextBlock", "text": t.action, "wrap": true}));
        if let Some(r) = self.repeats_line(lang) {
            body.push(json!({"type": "TextBlock", "text": r, "wrap": true, "isSubtle": true}));
        }
        body.push(json!({"type": "TextBlock", "isSubtle": true, "wrap": true, "text": format!(
            "#{} {} {}", self.alert.id, self.alert.rule, local_time(self.alert.raised_us, self.utc_offset_secs))}));
        json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": body,
                }
            }]
        })
    }

    /// Microsoft Teams Office 365 connector: a legacy MessageCard
    /// (https://learn.microsoft.com/en-us/outlook/actionable-messages/message-card-reference).
    pub fn message_card(&self) -> Value {
        let lang = self.primary();
        let t = self.alert.content.texts(lang);
        let (place, action) = match lang {
            Lang::En => ("Where", "First thing to do"),
            _ => ("場所", "まず行うこと"),
        };
        let mut facts = vec![json!({"name": place, "value": t.place})];
        facts.extend(
            self.evidence_pairs(lang)
                .into_iter()
                .map(|(l, v)| json!({"name": l, "value": v})),
        );
        let mut text = t.what.clone();
        if let Some(r) = self.repeats_line(lang) {
            text.push_str("\n\n");
            text.push_str(&r);
        }
        json!({
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": self.title(),
            "themeColor": match self.alert.severity { Severity::Critical => "D70000", Severity::Warning => "FFA500", Severity::Info => "0078D7" },
            "title": self.title(),
            "sections": [
                {"text": text, "facts": facts},
                {"title": action, "text": t.action},
            ],
        })
    }

    /// An RFC 5424 syslog message (without transport framing):
    /// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] BOM MSG`.
    ///
    /// PRI = facility × 8 + severity (§6.2.1: critical → 2, warning → 4, info → 6).
    /// The structured data element `setten@32473` uses the private enterprise number
    /// RFC 5612 reserves for documentation; parameter values escape `"`, `\` and `]`
    /// (§6.3.3). MSG is UTF-8 and starts with the BOM (§6.4).
    pub fn syslog(&self, facility: u8, hostname: &str) -> Vec<u8> {
        let sev = match self.alert.severity {
            Severity::Critical => 2,
            Severity::Warning => 4,
            Severity::Info => 6,
        };
        let pri = u32::from(facility) * 8 + sev;
        // HOSTNAME: 1 to 255 printable US-ASCII (§6.2.4).
        let host: String = hostname
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(255)
            .collect();
        let host = if host.is_empty() {
            "-".to_owned()
        } else {
            host
        };
        let msgid = if self.test {
            "TEST"
        } else if self.escalation {
            "ESCALATION"
        } else {
            "ALERT"
        };
        let esc = |v: &str| -> String {
            let mut o = String::with_capacity(v.len());
            for c in v.chars() {
                if matches!(c, '"' | '\\' | ']') {
                    o.push('\\');
                }
                o.push(if c.is_control() { ' ' } else { c });
            }
            o
        };
        let a = self.alert;
        let sd = format!(
            "[setten@32473 alert=\"{}\" delivery=\"{}\" rule=\"{}\" severity=\"{}\" subject=\"{}\" key=\"{}\" repeats=\"{}\"]",
            a.id,
            self.delivery,
            esc(&a.rule),
            a.severity.as_str(),
            esc(&a.subject),
            esc(&a.key),
            a.repeats_before
        );
        let mut out = format!(
            "<{pri}>1 {} {host} setten-collector {} {msgid} {sd} ",
            rfc3339_utc(self.now_us),
            std::process::id()
        )
        .into_bytes();
        out.extend_from_slice(b"\xEF\xBB\xBF");
        out.extend_from_slice(self.line().as_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_render_in_the_site_zone() {
        // 2026-10-05T00:00:00Z = 09:00 in Japan.
        let t0 = 1_791_158_400_000_000;
        assert_eq!(local_time(t0, 9 * 3600), "2026-10-05 09:00:00 (+09:00)");
        assert_eq!(
            local_time(t0, -3600 * 5 - 1800),
            "2026-10-04 18:30:00 (-05:30)"
        );
        assert_eq!(rfc3339_utc(t0 + 1), "2026-10-05T00:00:00.000001Z");
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339_utc(951_782_400_000_000),
            "2000-02-29T00:00:00.000000Z"
        );
    }

    #[test]
    fn windows_read_naturally() {
        assert_eq!(span(1800, Lang::Ja), "30分");
        assert_eq!(span(1800, Lang::En), "30 minutes");
        assert_eq!(span(3600, Lang::En), "1 hour");
        assert_eq!(span(5, Lang::Ja), "5秒");
    }
}
