//! UI strings: one TOML catalog per language (`collector/ui/i18n/ja.toml`, `en.toml`),
//! built into the binary. Templates read them as `t.section.key`. Both catalogs must
//! have the same keys (a test checks it, and that every `t.…` a template uses exists).

use std::collections::BTreeSet;

/// A display language.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Lang {
    /// Japanese (the default).
    #[default]
    Ja,
    /// English.
    En,
}

impl Lang {
    /// `ja` or `en`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Ja => "ja",
            Lang::En => "en",
        }
    }

    /// From `ja` or `en`.
    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "ja" => Some(Lang::Ja),
            "en" => Some(Lang::En),
            _ => None,
        }
    }
}

const JA: &str = include_str!("../../ui/i18n/ja.toml");
const EN: &str = include_str!("../../ui/i18n/en.toml");

/// Both catalogs, parsed.
#[derive(Debug)]
pub struct Catalogs {
    ja: minijinja::Value,
    en: minijinja::Value,
    ja_table: toml::Table,
    en_table: toml::Table,
}

impl Catalogs {
    /// Parses the built-in catalogs (they are part of the program: a parse error is a
    /// build defect the tests catch).
    pub fn load() -> Result<Catalogs, String> {
        let ja: toml::Table = toml::from_str(JA).map_err(|e| format!("ja.toml: {e}"))?;
        let en: toml::Table = toml::from_str(EN).map_err(|e| format!("en.toml: {e}"))?;
        Ok(Catalogs {
            ja: minijinja::Value::from_serialize(&ja),
            en: minijinja::Value::from_serialize(&en),
            ja_table: ja,
            en_table: en,
        })
    }

    /// The catalog of a language, for templates.
    pub fn get(&self, lang: Lang) -> &minijinja::Value {
        match lang {
            Lang::Ja => &self.ja,
            Lang::En => &self.en,
        }
    }

    /// One string by dotted key (the key itself when missing).
    pub fn text(&self, lang: Lang, key: &str) -> String {
        let t = match lang {
            Lang::Ja => &self.ja_table,
            Lang::En => &self.en_table,
        };
        let mut v: Option<&toml::Value> = None;
        let mut table = Some(t);
        for part in key.split('.') {
            v = table.and_then(|t| t.get(part));
            table = v.and_then(toml::Value::as_table);
        }
        v.and_then(toml::Value::as_str)
            .map_or_else(|| key.to_owned(), str::to_owned)
    }
}

/// Dotted keys of a catalog.
pub fn keys(t: &toml::Table) -> BTreeSet<String> {
    fn walk(prefix: &str, t: &toml::Table, out: &mut BTreeSet<String>) {
        for (k, v) in t {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(inner) => walk(&key, inner, out),
                _ => {
                    out.insert(key);
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk("", t, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_catalogs_have_the_same_keys_and_only_strings() {
        let c = Catalogs::load().unwrap();
        let ja = keys(&c.ja_table);
        let en = keys(&c.en_table);
        let only_ja: Vec<_> = ja.difference(&en).collect();
        let only_en: Vec<_> = en.difference(&ja).collect();
        assert!(
            only_ja.is_empty() && only_en.is_empty(),
            "only in ja.toml: {only_ja:?}; only in en.toml: {only_en:?}"
        );
        assert!(ja.len() > 50, "{} keys", ja.len());
        for k in &ja {
            for l in [Lang::Ja, Lang::En] {
                let s = c.text(l, k);
                assert!(s != *k && !s.trim().is_empty(), "{k} ({})", l.as_str());
            }
        }
        assert_eq!(c.text(Lang::Ja, "nav.inventory"), "外部接続点");
        assert_eq!(c.text(Lang::En, "nav.inventory"), "Connection points");
    }

    #[test]
    fn every_key_a_template_uses_exists() {
        let c = Catalogs::load().unwrap();
        let ja = keys(&c.ja_table);
        let mut missing = Vec::new();
        for (name, src) in super::super::TEMPLATES {
            let b = src.as_bytes();
            let mut i = 0;
            while let Some(pos) = src[i..].find("t.") {
                let start = i + pos;
                i = start + 2;
                // A whole identifier `t`, not the end of another one (`at.`, `cnt.`).
                if start > 0
                    && b.get(start - 1)
                        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'.')
                {
                    continue;
                }
                let key: String = src[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
                    .collect();
                let key = key.trim_end_matches('.');
                let prefix = format!("{key}.");
                if !key.is_empty() && !ja.iter().any(|k| k == key || k.starts_with(&prefix)) {
                    missing.push(format!("{name}: t.{key}"));
                }
            }
        }
        assert!(missing.is_empty(), "{missing:?}");
    }
}
