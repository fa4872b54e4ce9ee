//! Ingest: a batch of findings from bytes to the store, validated as a whole first.
//!
//! Used by `POST /api/v1/findings` and by `setten-collector import`, so a finding is
//! held to the same rules however it arrives. Nothing is stored unless every finding of
//! the batch is valid; errors name the field by its JSON path
//! (`findings[3].body.data.client.ip`), found with `serde_path_to_error`.

use crate::store::{AgentRecord, IngestBatch, Ingested, NewFinding, Store, StoreError};
use serde::Deserialize;
use setten_agent::findings::{Batch, Body, MAX_BATCH_FINDINGS, SCHEMA};
use std::collections::HashSet;

/// Why a batch was refused.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The batch is malformed or invalid (HTTP 400).
    #[error("{message}")]
    Invalid {
        /// The JSON path of the field at fault, when one is.
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// The batch names another agent than the credential (HTTP 403).
    #[error("{message}")]
    WrongAgent {
        /// What is wrong.
        message: String,
    },
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IngestError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> IngestError {
        IngestError::Invalid {
            field: Some(field.into()),
            message: message.into(),
        }
    }
}

/// A batch that passed validation, ready to store.
#[derive(Debug)]
pub struct Checked {
    /// The batch as parsed.
    pub batch: Batch,
    /// Its findings as the store takes them, in the same order.
    pub rows: Vec<NewFinding>,
    /// The newest health report (agent time, JSON), if the batch has one.
    pub health: Option<(i64, String)>,
}

/// Parses a batch, naming the field at fault.
pub fn parse_batch(bytes: &[u8]) -> Result<Batch, IngestError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result: Result<Batch, _> = serde_path_to_error::deserialize(&mut de);
    let batch = match result {
        Ok(b) => b,
        Err(e) => {
            // A batch of another schema may fail anywhere; say what matters first.
            if let Some(s) = other_schema(bytes) {
                return Err(schema_error(&s));
            }
            let path = e.path().to_string();
            let inner = e.into_inner();
            if !inner.is_syntax() && !inner.is_eof() {
                if let Some((field, message)) = refine_body_error(bytes, &path, &inner) {
                    return Err(IngestError::Invalid {
                        field: Some(field),
                        message,
                    });
                }
            }
            let field = (path != ".").then_some(path);
            let message = if inner.is_syntax() || inner.is_eof() {
                format!("malformed JSON: {inner}")
            } else {
                match &field {
                    Some(f) => format!("{f}: {inner}"),
                    None => format!("the batch: {inner}"),
                }
            };
            return Err(IngestError::Invalid { field, message });
        }
    };
    de.end().map_err(|e| IngestError::Invalid {
        field: None,
        message: format!("malformed JSON: {e}"),
    })?;
    Ok(batch)
}

/// Serde reads an adjacently tagged body whose `data` comes before its `kind` through a
/// buffer, and the error path then stops at `findings[i].body`. Such a body is read
/// again, `kind` first, to name the field inside it.
fn refine_body_error(
    bytes: &[u8],
    path: &str,
    outer: &serde_json::Error,
) -> Option<(String, String)> {
    let index: usize = path
        .strip_prefix("findings[")?
        .strip_suffix("].body")?
        .parse()
        .ok()?;
    let doc: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let body = doc.get("findings")?.get(index)?.get("body")?.as_object()?;
    let text = format!(
        r#"{{"kind":{},"data":{}}}"#,
        body.get("kind")?,
        body.get("data")?
    );
    let mut de = serde_json::Deserializer::from_str(&text);
    let e = serde_path_to_error::deserialize::<_, Body>(&mut de).err()?;
    let inner_path = e.path().to_string();
    if inner_path == "." {
        return None;
    }
    let inner = e.into_inner();
    let full = inner.to_string();
    let position = format!(" at line {} column {}", inner.line(), inner.column());
    let what = full.strip_suffix(&position).unwrap_or(&full);
    let field = format!("{path}.{inner_path}");
    Some((
        field.clone(),
        format!(
            "{field}: {what} (in the body ending at line {} column {})",
            outer.line(),
            outer.column()
        ),
    ))
}

/// The `schema` of a document that is not this collector's, if it says one.
fn other_schema(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Head {
        schema: Option<serde_json::Value>,
    }
    let h: Head = serde_json::from_slice(bytes).ok()?;
    match h.schema? {
        serde_json::Value::String(s) if s == SCHEMA => None,
        serde_json::Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

fn schema_error(found: &str) -> IngestError {
    let shown: String = found.chars().take(64).collect();
    IngestError::invalid(
        "schema",
        format!(
            "schema: `{}` is not supported; this collector reads `{SCHEMA}`",
            shown.escape_debug()
        ),
    )
}

/// Checks a parsed batch for `agent` and prepares its rows.
pub fn check(batch: Batch, agent: &str) -> Result<Checked, IngestError> {
    if batch.schema != SCHEMA {
        return Err(schema_error(&batch.schema));
    }
    if batch.agent != agent {
        let shown: String = batch.agent.chars().take(64).collect();
        return Err(IngestError::WrongAgent {
            message: format!(
                "agent: the batch is for agent `{}` but the credential is agent `{agent}`",
                shown.escape_debug()
            ),
        });
    }
    if batch.findings.len() > MAX_BATCH_FINDINGS {
        return Err(IngestError::invalid(
            "findings",
            format!(
                "findings: {} findings in one batch; at most {MAX_BATCH_FINDINGS} are accepted, send several batches",
                batch.findings.len()
            ),
        ));
    }
    let mut seen: HashSet<u64> = HashSet::with_capacity(batch.findings.len());
    let mut rows = Vec::with_capacity(batch.findings.len());
    let mut health: Option<(u64, i64, String)> = None;
    for (i, f) in batch.findings.iter().enumerate() {
        let seq = i64::try_from(f.seq)
            .ok()
            .filter(|s| *s >= 1)
            .ok_or_else(|| {
                IngestError::invalid(
                    format!("findings[{i}].seq"),
                    format!(
                        "findings[{i}].seq: {} is out of range; sequence numbers run from 1 to {}",
                        f.seq,
                        i64::MAX
                    ),
                )
            })?;
        if !seen.insert(f.seq) {
            return Err(IngestError::invalid(
                format!("findings[{i}].seq"),
                format!("findings[{i}].seq: {} appears twice in the batch", f.seq),
            ));
        }
        let at_us = i64::try_from(f.at_us).map_err(|_| {
            IngestError::invalid(
                format!("findings[{i}].at_us"),
                format!("findings[{i}].at_us: {} is out of range", f.at_us),
            )
        })?;
        let body = serde_json::to_string(&f.body).map_err(|e| {
            IngestError::invalid(
                format!("findings[{i}].body"),
                format!("findings[{i}].body: {e}"),
            )
        })?;
        if let Body::Health(h) = &f.body {
            if health.as_ref().is_none_or(|(s, _, _)| f.seq > *s) {
                let json = serde_json::to_string(h).unwrap_or_else(|_| "{}".into());
                health = Some((f.seq, at_us, json));
            }
        }
        rows.push(NewFinding {
            seq,
            at_us,
            kind: f.body.kind(),
            body,
        });
    }
    Ok(Checked {
        batch,
        rows,
        health: health.map(|(_, at, json)| (at, json)),
    })
}

/// Parses, checks and stores a batch from `agent`, all or nothing. The caller has
/// authenticated `agent` and checked its role. Returns the batch as parsed and what the
/// store did.
pub fn ingest(
    store: &dyn Store,
    agent: &AgentRecord,
    bytes: &[u8],
    received_us: i64,
) -> Result<(Batch, Ingested), IngestError> {
    let Checked {
        batch,
        rows,
        health,
    } = check(parse_batch(bytes)?, &agent.name)?;
    let done = store.ingest(IngestBatch {
        agent_id: agent.id,
        findings: rows,
        health,
        received_us,
    })?;
    Ok((batch, done))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(e: IngestError) -> (Option<String>, String) {
        match e {
            IngestError::Invalid { field, message } => (field, message),
            other => panic!("{other:?}"),
        }
    }

    const SESSION: &str = r#"{"transport":6,"client":{"ip":"10.0.0.5","port":50000},"server":{"ip":"203.0.113.9","port":22},"direction":"outbound","service":"ssh","protocol":"ssh","vendor":null,"product":null,"evidence":[],"weak":null,"non_standard_port":false,"first_us":1,"last_us":2,"bytes":3,"packets":4,"vlan":0,"far_names":[],"internal_mac":null,"versions":[]}"#;

    fn batch(findings: &str) -> String {
        format!(r#"{{"schema":"{SCHEMA}","agent":"m1","findings":[{findings}]}}"#)
    }

    #[test]
    fn a_bad_field_is_named_by_its_path() {
        let bad = SESSION.replace("10.0.0.5", "10.0.0.300");
        let text = batch(&format!(
            r#"{{"seq":1,"at_us":1,"body":{{"kind":"session","data":{bad}}}}}"#
        ));
        let (field, msg) = field_of(parse_batch(text.as_bytes()).unwrap_err());
        assert_eq!(
            field.as_deref(),
            Some("findings[0].body.data.client.ip"),
            "{msg}"
        );
        assert!(
            msg.starts_with("findings[0].body.data.client.ip: "),
            "{msg}"
        );
        assert!(msg.contains("column"), "{msg}");
    }

    #[test]
    fn a_bad_field_is_named_when_data_comes_before_kind() {
        let bad = SESSION.replace("10.0.0.5", "10.0.0.300");
        let text = batch(&format!(
            r#"{{"seq":1,"at_us":1,"body":{{"data":{bad},"kind":"session"}}}}"#
        ));
        let (field, msg) = field_of(parse_batch(text.as_bytes()).unwrap_err());
        assert_eq!(
            field.as_deref(),
            Some("findings[0].body.data.client.ip"),
            "{msg}"
        );
        assert!(
            msg.contains("invalid IP address syntax (in the body ending at line 1 column"),
            "{msg}"
        );
    }

    #[test]
    fn a_good_batch_passes_and_keeps_kinds() {
        let text = batch(&format!(
            r#"{{"seq":1,"at_us":1,"body":{{"kind":"session","data":{SESSION}}}}},
               {{"seq":2,"at_us":5,"body":{{"kind":"health","data":{{"drops":0}}}}}}"#
        ));
        let c = check(parse_batch(text.as_bytes()).unwrap(), "m1").unwrap();
        let kinds: Vec<_> = c.rows.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, ["session", "health"]);
        assert_eq!(c.health, Some((5, r#"{"drops":0}"#.to_owned())));
        // The stored body reads back as the same finding.
        let back: Body = serde_json::from_str(&c.rows[0].body).unwrap();
        assert_eq!(back, c.batch.findings[0].body);
    }

    #[test]
    fn malformed_json_names_the_position() {
        let (_, msg) = field_of(parse_batch(b"{\"schema\": \"x\",,}").unwrap_err());
        assert!(msg.starts_with("malformed JSON: "), "{msg}");
        assert!(msg.contains("line 1 column 16"), "{msg}");
        let (_, msg) = field_of(parse_batch(b"{} {}").unwrap_err());
        assert!(
            msg.contains("missing field") || msg.contains("trailing"),
            "{msg}"
        );
    }

    #[test]
    fn schema_agent_count_and_seq_are_checked() {
        let other = r#"{"schema":"setten.findings/9","agent":"m1","findings":[{"what":1}]}"#;
        let (field, msg) = field_of(parse_batch(other.as_bytes()).unwrap_err());
        assert_eq!(field.as_deref(), Some("schema"));
        assert!(msg.contains("setten.findings/9"), "{msg}");

        let b = parse_batch(batch("").as_bytes()).unwrap();
        assert!(matches!(
            check(b, "m2"),
            Err(IngestError::WrongAgent { .. })
        ));

        let hb = |seq: &str| {
            format!(r#"{{"seq":{seq},"at_us":1,"body":{{"kind":"health","data":{{}}}}}}"#)
        };
        let zero = parse_batch(batch(&hb("0")).as_bytes()).unwrap();
        let (field, _) = field_of(check(zero, "m1").unwrap_err());
        assert_eq!(field.as_deref(), Some("findings[0].seq"));
        let huge = parse_batch(batch(&hb(&u64::MAX.to_string())).as_bytes()).unwrap();
        let (field, _) = field_of(check(huge, "m1").unwrap_err());
        assert_eq!(field.as_deref(), Some("findings[0].seq"));
        let twice = parse_batch(batch(&format!("{},{}", hb("4"), hb("4"))).as_bytes()).unwrap();
        let (field, msg) = field_of(check(twice, "m1").unwrap_err());
        assert_eq!(field.as_deref(), Some("findings[1].seq"), "{msg}");

        let many: Vec<String> = (1..=MAX_BATCH_FINDINGS + 1)
            .map(|i| hb(&i.to_string()))
            .collect();
        let big = parse_batch(batch(&many.join(",")).as_bytes()).unwrap();
        let (field, msg) = field_of(check(big, "m1").unwrap_err());
        assert_eq!(field.as_deref(), Some("findings"), "{msg}");
    }
}
