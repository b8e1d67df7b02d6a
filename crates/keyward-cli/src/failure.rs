//! How a command fails: the exit code and what the user reads on stderr.

use serde_json::Value;

/// A command's failure; `main` prints it and exits with [`Failure::exit_code`].
#[derive(Debug)]
pub enum Failure {
    /// The command line asks for something impossible, or confirmation is missing: exit 2.
    Usage(String),
    /// The API refused: the problem document (or OAuth error) as received: exit 1.
    Api { status: u16, body: Value },
    /// Anything else (network, files, a bad signature): exit 1.
    Other(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Self::Other(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Self::Other(e.into())
    }
}

impl Failure {
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Usage(_) => 2,
            Self::Api { .. } | Self::Other(_) => 1,
        }
    }

    /// The lines printed on stderr.
    pub fn message(&self) -> String {
        match self {
            Self::Usage(m) => format!("keyward: {m}"),
            Self::Other(e) => format!("keyward: {e:#}"),
            Self::Api { status, body } => {
                let (code, detail) = problem_code_detail(body);
                let mut out = match (code, detail) {
                    (Some(code), Some(detail)) => format!("keyward: {code} ({status}): {detail}"),
                    (Some(code), None) => format!("keyward: {code} ({status})"),
                    _ => format!("keyward: the server answered {status}"),
                };
                let errors: Vec<String> = body["errors"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| format!("{}: {}", e["field"].as_str().unwrap_or("?"), e["message"].as_str().unwrap_or("")))
                    .collect();
                // One field error is usually the detail itself; it is not said twice.
                if !(errors.len() == 1 && detail == Some(errors[0].as_str())) {
                    for e in errors {
                        out.push_str(&format!("\n  {e}"));
                    }
                }
                out
            }
        }
    }
}

/// `code` and `detail` of a problem document, or of an RFC 6749 error (`error`, `error_description`).
pub fn problem_code_detail(body: &Value) -> (Option<&str>, Option<&str>) {
    let code = body["code"].as_str().or_else(|| body["error"].as_str());
    let detail = body["detail"].as_str().or_else(|| body["error_description"].as_str());
    (code, detail)
}
