//! `/metrics` in the Prometheus text format: request counts by route and
//! status, refused credentials by code, tokens issued, and keys by status.
//! Labels are route templates and codes only: never an id, a URI or a secret.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shared by every request.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    refusals: Mutex<BTreeMap<&'static str, u64>>,
    pub tokens_issued: AtomicU64,
}

impl Metrics {
    pub fn count_request(&self, method: &str, route: &str, status: u16) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((method.to_owned(), route.to_owned(), status)).or_default() += 1;
        }
    }

    pub fn count_refusal(&self, code: &'static str) {
        if let Ok(mut m) = self.refusals.lock() {
            *m.entry(code).or_default() += 1;
        }
    }

    /// The exposition text; `keys` is (status, count) from the in-memory index.
    pub fn render(&self, keys: &[(&str, u64)]) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP keyward_http_requests_total HTTP requests by method, route and status.");
        let _ = writeln!(out, "# TYPE keyward_http_requests_total counter");
        if let Ok(m) = self.requests.lock() {
            for ((method, route, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "keyward_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                    escape(route)
                );
            }
        }
        let _ = writeln!(out, "# HELP keyward_auth_refusals_total Refused credentials by code.");
        let _ = writeln!(out, "# TYPE keyward_auth_refusals_total counter");
        if let Ok(m) = self.refusals.lock() {
            for (code, n) in m.iter() {
                let _ = writeln!(out, "keyward_auth_refusals_total{{code=\"{code}\"}} {n}");
            }
        }
        let _ = writeln!(out, "# HELP keyward_tokens_issued_total Access tokens issued.");
        let _ = writeln!(out, "# TYPE keyward_tokens_issued_total counter");
        let _ = writeln!(out, "keyward_tokens_issued_total {}", self.tokens_issued.load(Ordering::Relaxed));
        let _ = writeln!(out, "# HELP keyward_keys API keys by status.");
        let _ = writeln!(out, "# TYPE keyward_keys gauge");
        for (status, n) in keys {
            let _ = writeln!(out, "keyward_keys{{status=\"{status}\"}} {n}");
        }
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.count_request("GET", "/v1/keys/{id}", 200);
        m.count_request("GET", "/v1/keys/{id}", 200);
        m.count_refusal("key_locked");
        m.tokens_issued.fetch_add(3, Ordering::Relaxed);
        let text = m.render(&[("active", 4), ("locked", 1)]);
        assert!(text.contains("keyward_http_requests_total{method=\"GET\",route=\"/v1/keys/{id}\",status=\"200\"} 2"));
        assert!(text.contains("keyward_auth_refusals_total{code=\"key_locked\"} 1"));
        assert!(text.contains("keyward_tokens_issued_total 3"));
        assert!(text.contains("keyward_keys{status=\"locked\"} 1"));
    }
}
