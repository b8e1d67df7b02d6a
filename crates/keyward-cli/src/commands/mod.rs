//! The subcommands, one module per resource; helpers they share.

pub mod admin;
pub mod audit;
pub mod import;
pub mod keys;
pub mod login;
pub mod orgs;
pub mod roles;
pub mod users;

use crate::Common;
use crate::client::Client;
use crate::failure::Failure;
use crate::profile;
use clap::Args;
use std::io::{BufRead, IsTerminal, Write};

/// The client for the profile `common` names.
pub fn client(common: &Common) -> Result<Client, Failure> {
    Client::for_profile(&profile::load(&common.profile)?)
}

/// Asks before a destructive action: `--yes` skips the question; without a terminal to ask on
/// the action is refused, so a script never deletes by accident.
pub fn confirm(common: &Common, what: &str) -> Result<(), Failure> {
    if common.yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Usage(format!(
            "{what}: refused without confirmation; pass --yes to do it without a terminal"
        )));
    }
    eprint!("{what}? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(Failure::Other(anyhow::anyhow!("not confirmed; nothing was done")))
    }
}

/// An argument as one path segment: percent-encoded, so a `/`, `?` or `#` in it stays inside
/// the segment. (`.` and `..` cannot be; as no id is either, they reach a 404.)
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Paging flags of every list.
#[derive(Args, Clone, Default)]
pub struct Paging {
    /// Page number, from 1.
    #[arg(long)]
    pub page: Option<u32>,
    /// Items per page: 10, 25, 50 or 100.
    #[arg(long)]
    pub per_page: Option<u32>,
}

/// Query pairs from optional values; absent ones are left out.
pub struct Query(pub Vec<(&'static str, String)>);

impl Query {
    pub fn new() -> Self {
        Self(Vec::new())
    }

    pub fn opt(mut self, name: &'static str, value: Option<impl ToString>) -> Self {
        if let Some(v) = value {
            self.0.push((name, v.to_string()));
        }
        self
    }

    pub fn paging(self, p: &Paging) -> Self {
        self.opt("page", p.page).opt("per_page", p.per_page)
    }
}

pub fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s).map(|t| t.to_utc()).map_err(|e| format!("not an RFC 3339 time: {e}"))
}

pub fn rfc3339(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
