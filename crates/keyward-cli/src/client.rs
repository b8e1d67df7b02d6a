//! The HTTP client of the API subcommands: every request signed with Hawk (sha256), every
//! answer's `Server-Authorization` checked before its body is believed.

use crate::failure::Failure;
use crate::profile::Profile;
use keyward_core::clock::{Clock, SystemClock};
use keyward_core::hawk::{self, Algorithm, HawkHeader, MacInput, MacKind, RequestInfo, ResponseInfo};
use keyward_core::secret::{Secret, random_base62};
use reqwest::{Method, Url};
use serde_json::Value;
use std::sync::atomic::{AtomicI64, Ordering};

const JSON: &str = "application/json";

/// What a request was signed with, for checking the answer's signature.
struct Signed {
    header: HawkHeader,
    method: String,
    resource: String,
}

/// A signed connection to one Keyward instance as one key.
pub struct Client {
    http: reqwest::Client,
    base: Url,
    host: String,
    port: u16,
    key_id: String,
    secret: Secret,
    /// Server time minus local time, learnt from a stale-timestamp challenge.
    offset: AtomicI64,
}

impl Client {
    /// A client for `url` signing as `key_id` with `secret`.
    pub fn new(url: &str, key_id: &str, secret: Secret) -> Result<Self, Failure> {
        let base = Url::parse(url).map_err(|e| Failure::Usage(format!("--url: not a URL: {e}")))?;
        match base.scheme() {
            "http" => {}
            // The workspace's reqwest is built without TLS for now; say so rather than fail obscurely.
            "https" => {
                return Err(Failure::Usage(
                    "this build of keyward speaks plain http:// only; https:// comes with TLS support".into(),
                ));
            }
            _ => return Err(Failure::Usage("--url must be an http:// URL".into())),
        }
        let host = base.host_str().ok_or_else(|| Failure::Usage("--url has no host".into()))?.to_owned();
        let port = base.port_or_known_default().ok_or_else(|| Failure::Usage("--url has no port".into()))?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("keyward-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::Other(anyhow::anyhow!("cannot build the HTTP client: {e}")))?;
        Ok(Self { http, base, host, port, key_id: key_id.to_owned(), secret, offset: AtomicI64::new(0) })
    }

    /// A client for a saved profile.
    pub fn for_profile(profile: &Profile) -> Result<Self, Failure> {
        Self::new(&profile.url, &profile.key_id, Secret::from_presented(profile.secret.expose()))
    }

    pub fn base(&self) -> &str {
        self.base.as_str()
    }

    /// `path` (starting with `/`) and query pairs joined onto the base URL.
    fn url(&self, path: &str, query: &[(&str, String)]) -> Result<Url, Failure> {
        let prefix = self.base.path().trim_end_matches('/');
        let mut url = self.base.clone();
        url.set_path(&format!("{prefix}{path}"));
        if query.is_empty() {
            url.set_query(None);
        } else {
            let q = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(query.iter().map(|(k, v)| (k, v)))
                .finish();
            url.set_query(Some(&q));
        }
        Ok(url)
    }

    fn now(&self) -> i64 {
        SystemClock.now().timestamp() + self.offset.load(Ordering::Relaxed)
    }

    /// The Hawk header for one request, and the parsed form the response is checked against.
    fn sign(&self, method: &str, resource: &str, hash: Option<String>) -> (HawkHeader, String) {
        let ts = self.now().to_string();
        let nonce = random_base62(16);
        let input = MacInput {
            ts: &ts,
            nonce: &nonce,
            method,
            resource,
            host: &self.host,
            port: self.port,
            hash: hash.as_deref(),
            ..MacInput::default()
        };
        let mac = hawk::mac(
            Algorithm::Sha256,
            self.secret.expose().as_bytes(),
            &hawk::normalized_string(MacKind::Header, &input),
        );
        let mut value = format!(r#"Hawk id="{}", ts="{ts}", nonce="{nonce}""#, self.key_id);
        if let Some(hash) = &hash {
            value.push_str(&format!(r#", hash="{hash}""#));
        }
        value.push_str(&format!(r#", mac="{mac}""#));
        let header = HawkHeader { id: self.key_id.clone(), ts, nonce, mac, hash, ext: None, app: None, dlg: None };
        (header, value)
    }

    /// Sends one signed request; a stale-timestamp challenge is answered once by resyncing.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<(reqwest::Response, Signed), Failure> {
        let url = self.url(path, query)?;
        let resource = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let payload = match body {
            Some(b) => Some(serde_json::to_vec(b).map_err(|e| Failure::Other(e.into()))?),
            None => None,
        };
        for attempt in 0..2 {
            // Always a payload hash (of the empty body too), so orgs that require one take every request.
            let hash = Some(match &payload {
                Some(p) => hawk::payload_hash(Algorithm::Sha256, Some(JSON), p),
                None => hawk::payload_hash(Algorithm::Sha256, None, b""),
            });
            let (header, authorization) = self.sign(method.as_str(), &resource, hash);
            let mut req = self.http.request(method.clone(), url.clone()).header("authorization", authorization);
            if let Some(p) = &payload {
                req = req.header("content-type", JSON).body(p.clone());
            }
            let resp =
                req.send().await.map_err(|e| Failure::Other(anyhow::anyhow!("cannot reach {}: {e}", self.base)))?;
            if attempt == 0
                && resp.status().as_u16() == 401
                && let Some(server_ts) = self.stale_challenge(&resp)
            {
                self.offset.store(server_ts - SystemClock.now().timestamp(), Ordering::Relaxed);
                continue;
            }
            return Ok((resp, Signed { header, method: method.as_str().to_owned(), resource: resource.clone() }));
        }
        Err(Failure::Other(anyhow::anyhow!("the server keeps refusing the request's time stamp")))
    }

    /// The server's time from a `Hawk ts=…, tsm=…` challenge, if its `tsm` proves it knows our key.
    fn stale_challenge(&self, resp: &reqwest::Response) -> Option<i64> {
        let value = resp.headers().get("www-authenticate")?.to_str().ok()?;
        let attr = |name: &str| {
            let start = value.find(&format!("{name}=\""))? + name.len() + 2;
            value[start..].split('"').next()
        };
        let ts: i64 = attr("ts")?.parse().ok()?;
        let tsm = attr("tsm")?;
        (hawk::timestamp_mac(Algorithm::Sha256, self.secret.expose().as_bytes(), ts) == tsm).then_some(ts)
    }

    /// Checks `Server-Authorization` against the body. A success must be signed; a refusal
    /// may come unsigned (the server cannot sign for a key it did not accept, and a refusal
    /// makes nothing happen), but a signature that is there must match.
    fn check_signature(
        &self,
        signed: &Signed,
        status: u16,
        content_type: Option<&str>,
        payload: Option<&[u8]>,
        received: Option<&str>,
    ) -> Result<(), Failure> {
        let Some(received) = received else {
            if !(200..300).contains(&status) {
                return Ok(());
            }
            return Err(Failure::Other(anyhow::anyhow!(
                "the server's answer ({status}) is not signed (no Server-Authorization); not trusting it"
            )));
        };
        let request = RequestInfo {
            method: &signed.method,
            resource: &signed.resource,
            host: &self.host,
            port: self.port,
            content_type: None,
            payload: None,
        };
        let response = ResponseInfo { content_type, payload, ext: None };
        let expected =
            hawk::server_authorization_header(&signed.header, self.secret.expose().as_bytes(), &request, &response)
                .map_err(|e| Failure::Other(anyhow::anyhow!("cannot check the server's signature: {e}")))?;
        if expected != received {
            return Err(Failure::Other(anyhow::anyhow!(
                "the server's signature (Server-Authorization) does not match its answer; not trusting it"
            )));
        }
        Ok(())
    }

    /// A JSON request; a 2xx answer comes back, anything else is a [`Failure::Api`].
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        let (resp, signed) = self.send(method, path, query, body).await?;
        let status = resp.status().as_u16();
        let content_type = header_str(&resp, "content-type");
        let signature = header_str(&resp, "server-authorization");
        let bytes = resp.bytes().await.map_err(|e| Failure::Other(anyhow::anyhow!("cannot read the answer: {e}")))?;
        self.check_signature(&signed, status, content_type.as_deref(), Some(&bytes), signature.as_deref())?;
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        if (200..300).contains(&status) { Ok(body) } else { Err(Failure::Api { status, body }) }
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, Failure> {
        self.call(Method::GET, path, query, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.call(Method::POST, path, &[], Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.call(Method::PATCH, path, &[], Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<(), Failure> {
        self.call(Method::DELETE, path, &[], None).await.map(|_| ())
    }

    /// A streamed GET (the audit export) copied to `out`; its signature covers no payload hash.
    pub async fn stream(
        &self,
        path: &str,
        query: &[(&str, String)],
        out: &mut impl std::io::Write,
    ) -> Result<(), Failure> {
        let (mut resp, signed) = self.send(Method::GET, path, query, None).await?;
        let status = resp.status().as_u16();
        let content_type = header_str(&resp, "content-type");
        let signature = header_str(&resp, "server-authorization");
        if !(200..300).contains(&status) {
            let bytes =
                resp.bytes().await.map_err(|e| Failure::Other(anyhow::anyhow!("cannot read the answer: {e}")))?;
            self.check_signature(&signed, status, content_type.as_deref(), Some(&bytes), signature.as_deref())?;
            return Err(Failure::Api { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) });
        }
        self.check_signature(&signed, status, content_type.as_deref(), None, signature.as_deref())?;
        while let Some(chunk) =
            resp.chunk().await.map_err(|e| Failure::Other(anyhow::anyhow!("the export broke off: {e}")))?
        {
            match out.write_all(&chunk) {
                Ok(()) => {}
                // The reader has seen enough (`| head`): stop, as a pipeline expects.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                Err(e) => return Err(Failure::Other(anyhow::anyhow!("cannot write to stdout: {e}"))),
            }
        }
        Ok(())
    }

    /// `POST /v1/oauth/token`: the token endpoint authenticates its client with Basic, not Hawk.
    pub async fn token(&self, scope: Option<&str>) -> Result<Value, Failure> {
        let url = self.url("/v1/oauth/token", &[])?;
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        // RFC 6749 §2.3.1: the id and secret are form-encoded before base64.
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let resp = self
            .http
            .post(url)
            .basic_auth(enc(&self.key_id), Some(enc(self.secret.expose())))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| Failure::Other(anyhow::anyhow!("cannot reach {}: {e}", self.base)))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| Failure::Other(anyhow::anyhow!("cannot read the answer: {e}")))?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status == 200 { Ok(body) } else { Err(Failure::Api { status, body }) }
    }
}

fn header_str(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}
