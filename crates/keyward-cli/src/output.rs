//! What the API subcommands print: aligned tables for people, the API's JSON with `--json`.

use serde_json::Value;
use std::io::Write;

/// Writes one line to stdout; a closed pipe (`keyward keys list | head`) ends the program
/// quietly instead of panicking as `println!` would.
pub fn line(text: impl std::fmt::Display) {
    if let Err(e) = writeln!(std::io::stdout().lock(), "{text}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("keyward: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

/// `println!` through [`line`].
macro_rules! outln {
    () => {
        $crate::output::line("")
    };
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

/// Prints a value as pretty JSON.
pub fn json(value: &Value) {
    outln!("{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
}

/// A JSON value as one table cell: strings bare, lists comma-joined, null as `-`.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "-".into(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        Value::Object(o) if o.contains_key("scope") && o.contains_key("resource") => {
            format!("{}:{}:{}", cell(&o["scope"]), cell(&o["resource"]), cell(&o["access"]))
        }
        other => other.to_string(),
    }
}

/// Columns padded to their widest cell, two spaces apart; control characters shown escaped
/// so a name cannot move the terminal's cursor.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let clean = |s: &str| {
        s.chars().flat_map(|c| if c.is_control() { c.escape_default().collect() } else { vec![c] }).collect::<String>()
    };
    let rows: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(|c| clean(c)).collect()).collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}  "));
            }
        }
        outln!("{}", out.trim_end());
    };
    line(headers.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Rows of `items` with one column per field.
pub fn list(items: &Value, columns: &[(&str, &str)]) {
    let rows: Vec<Vec<String>> = items
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| columns.iter().map(|(_, field)| cell(&item[*field])).collect())
        .collect();
    let headers: Vec<&str> = columns.iter().map(|(h, _)| *h).collect();
    table(&headers, &rows);
}

/// One object as `field  value` lines: `id` and `name` first, the rest alphabetically.
pub fn object(value: &Value) {
    let mut rows: Vec<Vec<String>> =
        value.as_object().into_iter().flatten().map(|(k, v)| vec![k.clone(), cell(v)]).collect();
    rows.sort_by_key(|r| (r[0] != "id", r[0] != "name", r[0].clone()));
    table(&["FIELD", "VALUE"], &rows);
}

/// The paging line under a list.
pub fn page_footer(page: &Value) {
    let shown = page["items"].as_array().map_or(0, Vec::len);
    outln!("{shown} of {} (page {}, {} per page)", cell(&page["total"]), cell(&page["page"]), cell(&page["per_page"]));
}

/// A new secret: on stdout alone on its line, so scripts can take it; the warning on stderr.
pub fn new_secret(secret: &Value) {
    eprintln!("keyward: warning: the secret below is shown once and never again; store it now");
    outln!("secret: {}", cell(secret));
}
