//! Extractors: JSON bodies whose errors name the field, and the client's address.

use crate::problem::{ApiError, BadRequest};
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::{Extensions, HeaderMap, header, request::Parts};
use ipnet::IpNet;
use serde::de::DeserializeOwned;
use std::net::{IpAddr, SocketAddr};

/// A JSON body; malformed JSON is a 400, a wrong or unknown field a 422 naming it.
/// An empty body reads as `{}` so calls with only optional fields need none.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let is_json = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_none_or(|ct| {
            let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            mime == "application/json" || mime.ends_with("+json")
        });
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(body_rejection)?;
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &bytes };
        parse_json(bytes).map(ApiJson)
    }
}

/// Why a body could not be read: too large (413), too slow (408), or broken off (400).
pub fn body_rejection(e: axum::extract::rejection::BytesRejection) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::PayloadTooLarge;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = source {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return ApiError::RequestTimeout;
        }
        source = err.source();
    }
    ApiError::BadRequest { code: BadRequest::InvalidBody, detail: format!("the request body could not be read: {e}") }
}

/// Parses one JSON document, naming the offending field on a type error; anything after
/// the document is malformed JSON too.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let message = inner.to_string();
                let field = if path == "." { unknown_field(&message).unwrap_or_else(|| "body".into()) } else { path };
                ApiError::field(field, without_value(strip_position(&message)))
            }
            _ => invalid_json(&inner),
        }
    })?;
    de.end().map_err(|e| invalid_json(&e))?;
    Ok(value)
}

fn invalid_json(e: &serde_json::Error) -> ApiError {
    // Syntax errors name a position and what was expected, never the text found there.
    ApiError::BadRequest { code: BadRequest::InvalidJson, detail: format!("the body is not valid JSON: {e}") }
}

/// serde's messages quote the rejected value ("invalid type: string \"kws_…\", expected u32"),
/// and that value may be a secret pasted into the wrong field: keep only its kind and what
/// was expected.
fn without_value(msg: String) -> String {
    const EXPECTED: &str = ", expected ";
    let expected = msg.rfind(EXPECTED).map(|at| &msg[at + EXPECTED.len()..]);
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            // The kind is what precedes the quoted value: "string", "integer", "floating point", …
            let kind = rest.split(['"', '`', ',']).next().unwrap_or("").trim();
            let kind = if kind.is_empty() { "a value" } else { kind };
            return match expected {
                Some(expected) => format!("{prefix}{kind}, expected {expected}"),
                None => format!("{prefix}{kind}"),
            };
        }
    }
    if msg.starts_with("unknown variant ") {
        return match expected {
            Some(expected) => format!("unknown variant, expected {expected}"),
            None => "unknown variant".into(),
        };
    }
    msg
}

/// serde names an unknown field only in its message: "unknown field `x`, expected …".
fn unknown_field(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("unknown field `")?;
    rest.split('`').next().map(str::to_owned)
}

fn strip_position(msg: &str) -> String {
    msg.split(" at line ").next().unwrap_or(msg).to_owned()
}

/// The client's address: the socket peer, or, when the peer is a trusted
/// proxy, the nearest untrusted address in `X-Forwarded-For`.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(ClientIp(client_ip(&parts.headers, &parts.extensions, &state.config.trusted_proxies)))
    }
}

/// Whether the socket peer is one of the trusted proxies.
pub fn is_trusted_peer(extensions: &Extensions, trusted: &[IpNet]) -> bool {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(addr)| trusted.iter().any(|n| n.contains(&addr.ip())))
}

pub fn client_ip(headers: &HeaderMap, extensions: &Extensions, trusted: &[IpNet]) -> IpAddr {
    let peer =
        extensions.get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::from([127, 0, 0, 1]), |ConnectInfo(addr)| addr.ip());
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    // Bytes that are not text stay in place as unreadable hops rather than hiding the whole line.
    let hops: Vec<Option<IpAddr>> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split(',')
                .map(|s| s.trim().parse::<IpAddr>().ok())
                .collect::<Vec<_>>()
        })
        .collect();
    // Walk from the nearest hop back: entries our proxies appended are trustworthy, and the
    // first one that is not a trusted proxy is the client. Anything the client wrote lies
    // further left and is never reached. An unreadable entry there means an unknown client:
    // 0.0.0.0, which no key's network restriction contains.
    for hop in hops.iter().rev() {
        match hop {
            Some(ip) if is_trusted(ip) => continue,
            Some(ip) => return *ip,
            None => return IpAddr::from([0, 0, 0, 0]),
        }
    }
    hops.first().copied().flatten().unwrap_or(peer)
}

/// The schema of the `per_page` query parameter: 10, 25, 50 or 100.
pub struct PerPage;

impl utoipa::PartialSchema for PerPage {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::Integer)
            .enum_values(Some([10, 25, 50, 100]))
            .default(Some(25.into()))
            .into()
    }
}

impl utoipa::ToSchema for PerPage {}

/// The paging of a list, for lists whose other parameters are not a struct of their own.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// From 1.
    #[param(value_type = Option<u32>, minimum = 1)]
    pub page: Option<String>,
    /// 10, 25, 50 or 100 (default 25).
    #[param(value_type = Option<PerPage>, inline)]
    pub per_page: Option<String>,
}

impl PageParams {
    /// The page asked for; a list that names neither `page` nor `per_page` comes whole, as one page of `all`.
    pub fn or_whole(&self, all: usize) -> Result<(u32, u32), ApiError> {
        if self.page.is_none() && self.per_page.is_none() {
            return Ok((1, u32::try_from(all).unwrap_or(u32::MAX).max(1)));
        }
        let mut errors = Vec::new();
        let paging = parse_paging(self.page.as_deref(), self.per_page.as_deref(), &mut errors);
        if errors.is_empty() { Ok(paging) } else { Err(ApiError::InvalidQuery(errors)) }
    }
}

/// Parses `page` (from 1) and `per_page` (10, 25, 50 or 100; default 25), adding any problem to `errors`.
pub fn parse_paging(
    page: Option<&str>,
    per_page: Option<&str>,
    errors: &mut Vec<keyward_core::FieldError>,
) -> (u32, u32) {
    let page = match page.map(str::parse::<u32>) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        Some(_) => {
            errors.push(keyward_core::FieldError::new("page", "must be a whole number from 1"));
            1
        }
    };
    let per_page = match per_page.map(str::parse::<u32>) {
        None => 25,
        Some(Ok(n @ (10 | 25 | 50 | 100))) => n,
        Some(_) => {
            errors.push(keyward_core::FieldError::new("per_page", "must be 10, 25, 50 or 100"));
            25
        }
    };
    (page, per_page)
}

/// The query parameters of `query` that are not in `declared`, or that appear twice, as
/// field errors. A Hawk `bewit` may accompany any GET. A name that is not a short plain
/// parameter name (it could be a pasted secret) is reported as `query`, never echoed.
pub fn undeclared_query_parameters(query: &str, declared: &[&str], is_get: bool) -> Vec<keyward_core::FieldError> {
    let mut seen: Vec<String> = Vec::new();
    let mut errors = Vec::new();
    for (name, _) in form_urlencoded::parse(query.as_bytes()) {
        let known = declared.contains(&name.as_ref()) || (is_get && name == "bewit");
        let plain = !name.is_empty()
            && name.len() <= 24
            && !name.starts_with("kws_")
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        let field = if plain { name.clone().into_owned() } else { "query".to_owned() };
        if !known {
            errors.push(keyward_core::FieldError::new(field, "is not a parameter of this endpoint"));
        } else if seen.iter().any(|s| *s == name) {
            errors.push(keyward_core::FieldError::new(field, "is given more than once"));
        } else {
            seen.push(name.into_owned());
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: Option<String>,
        reauth_timeout_s: Option<u32>,
        status: Option<Status>,
        ids: Option<Vec<u32>>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Status {
        Active,
    }

    fn rejection(body: &str) -> String {
        match parse_json::<Body>(body.as_bytes()) {
            Ok(b) => panic!("accepted {body}: {b:?}"),
            Err(e) => format!("{}: {e:?}", e.code()),
        }
    }

    #[test]
    fn a_rejected_value_is_never_repeated() {
        let secret = "kws_2h4kQ9x7VbN3mR8tY6uW1zA5cE0dF4gH7jK9lP2qS3vX";
        for body in [
            format!(r#"{{"reauth_timeout_s": "{secret}"}}"#),
            format!(r#"{{"status": "{secret}"}}"#),
            format!(r#"{{"ids": ["{secret}"]}}"#),
            format!(r#"{{"name": ["{secret}"]}}"#),
            format!(r#"{{"name": "x"}} "{secret}""#),
        ] {
            let e = rejection(&body);
            assert!(!e.contains("kws_"), "{e}");
        }
        let e = rejection(&format!(r#"{{"reauth_timeout_s": "{secret}"}}"#));
        assert!(e.contains("reauth_timeout_s") && e.contains("invalid type: string, expected u32"), "{e}");
        let e = rejection(&format!(r#"{{"status": "{secret}"}}"#));
        assert!(e.contains("unknown variant, expected `active`"), "{e}");
    }

    #[test]
    fn anything_after_the_document_is_invalid_json() {
        for body in [r#"{"name": "x"}garbage"#, r#"{"name": "x"} {}"#, r#"{"name": "x"}]"#] {
            let e = rejection(body);
            assert!(e.contains("invalid_json"), "{body}: {e}");
        }
        assert!(parse_json::<Body>(b"{\"name\": \"x\"} \n").is_ok(), "trailing whitespace is fine");
    }

    fn ip_for(xff: &str, peer: &str, trusted: &[&str]) -> IpAddr {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", xff.parse().unwrap());
        let mut ext = Extensions::new();
        ext.insert(ConnectInfo(SocketAddr::new(peer.parse().unwrap(), 1234)));
        let trusted: Vec<IpNet> = trusted.iter().map(|t| t.parse().unwrap()).collect();
        client_ip(&headers, &ext, &trusted)
    }

    #[test]
    fn only_declared_query_parameters_pass_and_each_other_one_is_named() {
        let declared = ["status", "page"];
        let fields = |q: &str, get: bool| -> Vec<(String, String)> {
            undeclared_query_parameters(q, &declared, get).into_iter().map(|e| (e.field, e.message)).collect()
        };
        assert!(fields("status=active&page=2", true).is_empty());
        assert!(fields("", true).is_empty());
        assert!(fields("bewit=abc&page=1", true).is_empty(), "a bewit may accompany a GET");
        assert_eq!(fields("bewit=abc", false)[0].0, "bewit", "but nothing else");
        assert_eq!(
            fields("target_type=key", true),
            [("target_type".into(), "is not a parameter of this endpoint".into())]
        );
        assert_eq!(fields("page=1&page=2", true), [("page".into(), "is given more than once".into())]);
        assert_eq!(fields("a=1&status=x&b", true).iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        // Anything that is not a short plain name is never echoed: it could be a secret.
        for odd in ["kws_abc", "Secret", "a%20b", "x".repeat(25).as_str(), "%E2%9C%93"] {
            assert_eq!(fields(odd, true)[0].0, "query", "{odd}");
        }
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let t = ["10.0.0.0/8"];
        assert_eq!(ip_for("203.0.113.9", "10.0.0.2", &t).to_string(), "203.0.113.9");
        assert_eq!(ip_for("203.0.113.9", "192.0.2.1", &t).to_string(), "192.0.2.1", "untrusted peers cannot forward");
        assert_eq!(
            ip_for("1.2.3.4, 203.0.113.9", "10.0.0.2", &t).to_string(),
            "203.0.113.9",
            "client-written hops are ignored"
        );
        assert_eq!(
            ip_for("203.0.113.9, 10.0.0.7", "10.0.0.2", &t).to_string(),
            "203.0.113.9",
            "proxy chains are walked"
        );
        assert_eq!(ip_for("garbage, 203.0.113.9", "10.0.0.2", &t).to_string(), "203.0.113.9");
        assert_eq!(ip_for("unknown", "10.0.0.2", &t).to_string(), "0.0.0.0", "an unreadable client is nobody");
        assert_eq!(ip_for("203.0.113.9, junk", "10.0.0.2", &t).to_string(), "0.0.0.0");
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", axum::http::HeaderValue::from_bytes(b"\x80, 203.0.113.9").unwrap());
        let mut ext = Extensions::new();
        ext.insert(ConnectInfo(SocketAddr::new("10.0.0.2".parse().unwrap(), 1)));
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(client_ip(&headers, &ext, &trusted).to_string(), "203.0.113.9", "non-text bytes hide nothing");
        headers.insert("x-forwarded-for", axum::http::HeaderValue::from_bytes(b"203.0.113.9\xff").unwrap());
        assert_eq!(client_ip(&headers, &ext, &trusted).to_string(), "0.0.0.0");
    }
}
