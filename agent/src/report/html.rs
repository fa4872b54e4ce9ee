//! The HTML report: one self-contained file (inline CSS and SVG; no script, no external
//! resource of any kind), print-ready on A4 through CSS paged media.
//!
//! The template (`templates/report.html`) is embedded and rendered with minijinja with
//! HTML auto-escaping on (the template's `.html` name turns it on), so every string from
//! the network — SNI, certificate names, host names, banners — is escaped wherever it
//! lands, including SVG text and attributes.

use super::catalog::Catalog;
use super::{Report, ReportError};
use crate::inventory::output::Lang;
use minijinja::{context, Environment};
use std::sync::OnceLock;

const TEMPLATE: &str = include_str!("templates/report.html");
const STYLE: &str = include_str!("templates/report.css");

fn env() -> &'static Result<Environment<'static>, String> {
    static ENV: OnceLock<Result<Environment<'static>, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut e = Environment::new();
        // The default callback escapes HTML for names ending in .html; say so explicitly.
        e.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        e.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        e.add_template("report.html", TEMPLATE)
            .map_err(|err| err.to_string())?;
        Ok(e)
    })
}

/// Renders the report as HTML.
pub fn render(r: &Report) -> Result<String, ReportError> {
    let e = env()
        .as_ref()
        .map_err(|m| ReportError::Template(m.clone()))?;
    let lang = if r.lang == "en" { Lang::En } else { Lang::Ja };
    let t = minijinja::Value::from_serialize(&Catalog::of(lang).table);
    let tmpl = e
        .get_template("report.html")
        .map_err(|err| ReportError::Template(err.to_string()))?;
    tmpl.render(context! {
        r => minijinja::Value::from_serialize(r),
        t => t,
        // The stylesheet is ours (embedded), not data: it is inserted unescaped.
        style => minijinja::Value::from_safe_string(STYLE.to_owned()),
    })
    .map_err(|err| ReportError::Template(format!("{err:#}")))
}
