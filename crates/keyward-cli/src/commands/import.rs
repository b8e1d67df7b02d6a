//! `keyward keys import --file F`: CSV or NDJSON, one `POST /v1/keys/import` per line, and a
//! summary of what was refused. Nothing here ever prints a line's content: it holds a secret.

use crate::Common;
use crate::client::Client;
use crate::failure::Failure;
use crate::output;
use crate::output::outln;
use clap::Args;
use serde_json::{Map, Value, json};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Args)]
pub struct ImportArgs {
    /// The file: NDJSON (one import body per line) or CSV with a header row.
    #[arg(long)]
    pub file: PathBuf,
    /// `csv` or `ndjson`; by default told by the file's extension (`.csv`, else NDJSON).
    #[arg(long)]
    pub format: Option<String>,
}

/// CSV columns; list columns hold items separated by spaces or `;`.
const CSV_COLUMNS: &[&str] = &[
    "id",
    "secret",
    "name",
    "description",
    "comment",
    "owner_id",
    "roles",
    "scopes",
    "expires_at",
    "expires_in_days",
    "network_restrictions",
    "reauth_timeout_s",
];

/// One line to import, or why it could not even be read.
struct Line {
    number: u64,
    body: Result<Value, String>,
}

fn read_ndjson(text: &str) -> Vec<Line> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| Line {
            number: i as u64 + 1,
            body: match serde_json::from_str::<Value>(l) {
                Ok(v) if v.is_object() => Ok(v),
                // serde's message can quote the line, and the line holds a secret.
                _ => Err("not a JSON object".into()),
            },
        })
        .collect()
}

fn read_csv(text: &str) -> Result<Vec<Line>, Failure> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|_| Failure::Usage("the CSV file has no header row".into()))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    if let Some(unknown) = headers.iter().find(|h| !CSV_COLUMNS.contains(&h.as_str())) {
        return Err(Failure::Usage(format!("unknown CSV column `{unknown}`; known: {}", CSV_COLUMNS.join(", "))));
    }
    let mut lines = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let number = match &record {
            Ok(r) => r.position().map_or(i as u64 + 2, |p| p.line()),
            Err(e) => e.position().map_or(i as u64 + 2, |p| p.line()),
        };
        let body = record.map_err(|_| "not a valid CSV record".to_owned()).and_then(|r| csv_body(&headers, &r));
        lines.push(Line { number, body });
    }
    Ok(lines)
}

fn csv_body(headers: &[String], record: &csv::StringRecord) -> Result<Value, String> {
    let mut body = Map::new();
    for (name, cell) in headers.iter().zip(record.iter()) {
        if cell.is_empty() {
            continue;
        }
        let list = || cell.split([' ', ';']).filter(|s| !s.is_empty()).map(str::to_owned).collect::<Vec<_>>();
        let value = match name.as_str() {
            "roles" | "network_restrictions" => json!(list()),
            "scopes" => {
                let mut scopes = Vec::new();
                for s in list() {
                    match s.split(':').collect::<Vec<_>>()[..] {
                        [scope, resource, access] => {
                            scopes.push(json!({"scope": scope, "resource": resource, "access": access}))
                        }
                        _ => return Err("scopes: expected SCOPE:RESOURCE:ACCESS items".into()),
                    }
                }
                json!(scopes)
            }
            "expires_in_days" | "reauth_timeout_s" => {
                json!(cell.trim().parse::<u64>().map_err(|_| format!("{name}: not a whole number"))?)
            }
            "expires_at" if cell.trim() == "null" => Value::Null,
            _ => json!(cell),
        };
        body.insert(name.clone(), value);
    }
    Ok(Value::Object(body))
}

pub async fn import(client: &Client, common: &Common, args: &ImportArgs) -> Result<(), Failure> {
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", args.file.display())))?;
    let csv = match args.format.as_deref() {
        Some("csv") => true,
        Some("ndjson") => false,
        Some(other) => return Err(Failure::Usage(format!("--format must be csv or ndjson, not `{other}`"))),
        None => args.file.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")),
    };
    let lines = if csv { read_csv(&text)? } else { read_ndjson(&text) };
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(lines.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut imported = Vec::new();
    let mut refused = Vec::new();
    for line in lines {
        let id = line.body.as_ref().ok().and_then(|b| b["id"].as_str()).map(str::to_owned);
        let outcome = match line.body {
            Err(detail) => Err(("invalid_line".to_owned(), detail)),
            Ok(body) => match client.post("/v1/keys/import", &body).await {
                Ok(reply) => Ok(reply["key"]["id"].as_str().unwrap_or_default().to_owned()),
                Err(Failure::Api { status, body }) => {
                    let (code, detail) = crate::failure::problem_code_detail(&body);
                    Err((
                        code.unwrap_or("error").to_owned(),
                        detail.map_or_else(|| format!("HTTP {status}"), str::to_owned),
                    ))
                }
                Err(other) => {
                    bar.finish_and_clear();
                    eprintln!("keyward: import stopped at line {} ({} imported so far)", line.number, imported.len());
                    return Err(other);
                }
            },
        };
        match outcome {
            Ok(id) => imported.push(id),
            Err((code, detail)) => refused.push(json!({"line": line.number, "id": id, "code": code, "detail": detail})),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if common.json {
        output::json(&json!({"imported": imported, "refused": refused}));
    } else {
        outln!("imported {} of {} keys", imported.len(), imported.len() + refused.len());
        if !refused.is_empty() {
            let rows: Vec<Vec<String>> = refused
                .iter()
                .map(|r| {
                    vec![
                        output::cell(&r["line"]),
                        output::cell(&r["id"]),
                        output::cell(&r["code"]),
                        output::cell(&r["detail"]),
                    ]
                })
                .collect();
            output::table(&["LINE", "ID", "CODE", "DETAIL"], &rows);
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(Failure::Other(anyhow::anyhow!("{} lines were refused", refused.len())))
    }
}
