//! The report's words: one TOML catalog per language (`catalog/ja.toml`,
//! `catalog/en.toml`), embedded in the binary. Templates read it as `t.section.key`;
//! code looks keys up by dotted path ([`Catalog::get`]). Recommendations per ledger
//! status, service family and service are data here too (`advice.*`); per-risk advice
//! comes from `rules/risks.toml`, where the risk severities live.

use crate::inventory::output::Lang;
use std::sync::OnceLock;

const JA: &str = include_str!("catalog/ja.toml");
const EN: &str = include_str!("catalog/en.toml");

/// A loaded catalog.
#[derive(Debug)]
pub struct Catalog {
    /// The whole table (handed to templates as `t`).
    pub table: toml::Table,
}

impl Catalog {
    fn load(src: &str) -> Catalog {
        // The catalogs are part of the binary and checked by tests; a parse failure here
        // is a build defect, so an empty table (every string shows its key) is enough.
        let table = src.parse::<toml::Table>().unwrap_or_default();
        Catalog { table }
    }

    /// The catalog of a language.
    pub fn of(lang: Lang) -> &'static Catalog {
        static JA_CAT: OnceLock<Catalog> = OnceLock::new();
        static EN_CAT: OnceLock<Catalog> = OnceLock::new();
        match lang {
            Lang::Ja => JA_CAT.get_or_init(|| Catalog::load(JA)),
            Lang::En => EN_CAT.get_or_init(|| Catalog::load(EN)),
        }
    }

    /// A string by dotted path, if present.
    pub fn try_get(&self, path: &str) -> Option<&str> {
        let mut parts = path.split('.').peekable();
        let mut t = &self.table;
        while let Some(p) = parts.next() {
            let v = t.get(p)?;
            if parts.peek().is_none() {
                return v.as_str();
            }
            t = v.as_table()?;
        }
        None
    }

    /// A string by dotted path; the path itself when missing (visible, never a panic).
    pub fn get<'a>(&'a self, path: &'a str) -> &'a str {
        self.try_get(path).unwrap_or(path)
    }

    /// A string with `{name}` placeholders filled in.
    pub fn fill(&self, path: &str, args: &[(&str, &str)]) -> String {
        let mut s = self.get(path).to_owned();
        for (k, v) in args {
            s = s.replace(&format!("{{{k}}}"), v);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(t: &toml::Table, prefix: &str, out: &mut Vec<String>) {
        for (k, v) in t {
            let p = format!("{prefix}{k}");
            match v {
                toml::Value::Table(sub) => keys(sub, &format!("{p}."), out),
                toml::Value::String(_) => out.push(p),
                other => panic!("{p}: not a string: {other:?}"),
            }
        }
    }

    #[test]
    fn both_catalogs_parse_and_have_the_same_keys() {
        let ja: toml::Table = JA.parse().expect("ja.toml");
        let en: toml::Table = EN.parse().expect("en.toml");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        keys(&ja, "", &mut a);
        keys(&en, "", &mut b);
        a.sort();
        b.sort();
        assert_eq!(a, b);
        assert!(a.len() > 150, "{}", a.len());
    }

    #[test]
    fn lookups_and_placeholders() {
        let c = Catalog::of(Lang::Ja);
        assert_eq!(c.get("checklist.met"), "満たしている");
        assert_eq!(c.get("no.such.key"), "no.such.key");
        assert_eq!(
            Catalog::of(Lang::En).fill("backup.hours", &[("hours", "3.5")]),
            "3.5 h"
        );
    }
}
