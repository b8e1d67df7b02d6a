//! Configuration: one struct with documented defaults, layered
//! flags > `KEYWARD_*` environment > TOML file > defaults, validated once.

use clap::Args;
use ipnet::IpNet;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// `keyward serve` flags; each also reads `KEYWARD_<NAME>` from the environment.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "KEYWARD_LISTEN")]
    pub listen: Option<String>,
    /// Directory for the embedded store, the master key and the bootstrap file [default: ./keyward-data].
    #[arg(long, env = "KEYWARD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Store: `sqlite://PATH`, a file path, or `postgres://USER@HOST/DB` [default: SQLite in the data dir].
    #[arg(long, env = "KEYWARD_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Redis URL for state shared between instances (not needed on one machine).
    #[arg(long, env = "KEYWARD_REDIS_URL")]
    pub redis_url: Option<String>,
    /// TOML file with any of these settings (snake_case keys).
    #[arg(long, env = "KEYWARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// The service's public URL (token issuer) [default: http://<listen>].
    #[arg(long, env = "KEYWARD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Comma-separated proxies (IPs or CIDRs) whose X-Forwarded-For is trusted [default: none].
    #[arg(long, env = "KEYWARD_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<String>>,
    /// Log format: `text` or `json` [default: text].
    #[arg(long, env = "KEYWARD_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Seconds a client has to send a request's headers, also the idle keep-alive limit (1–30) [default: 30].
    #[arg(long, env = "KEYWARD_HEADER_TIMEOUT")]
    pub header_timeout: Option<u64>,
    /// Longest pause, in seconds, while a request body arrives (1–3600) [default: 30].
    #[arg(long, env = "KEYWARD_BODY_TIMEOUT")]
    pub body_timeout: Option<u64>,
    /// Connections served at once [default: the open-file limit less 64].
    #[arg(long, env = "KEYWARD_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Per-request log lines: `off`, `sampled` (1 in 1,000) or `on`; server errors and refused
    /// credentials are logged in every mode [default: sampled].
    #[arg(long, env = "KEYWARD_ACCESS_LOG")]
    pub access_log: Option<String>,
}

/// The same settings as read from the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    redis_url: Option<String>,
    public_url: Option<String>,
    trusted_proxies: Option<Vec<String>>,
    log_format: Option<String>,
    header_timeout: Option<u64>,
    body_timeout: Option<u64>,
    max_connections: Option<usize>,
    access_log: Option<String>,
}

/// Where the store lives. Its `Debug` and `Display` mask a password, so it can be logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    Sqlite(PathBuf),
    SqliteUrl(String),
    Postgres(PostgresUrl),
}

impl StoreLocation {
    /// Chooses the backend by the URL's scheme: `sqlite:` or a plain path is SQLite,
    /// `postgres://` and `postgresql://` are PostgreSQL; any other scheme is refused, so a
    /// typo never silently creates a new database somewhere.
    pub fn parse(url: &str) -> Result<Self, String> {
        if url.starts_with("sqlite:") {
            return Ok(Self::SqliteUrl(url.to_owned()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(PostgresUrl(url.to_owned())));
        }
        match url_scheme(url) {
            Some(scheme) => Err(format!(
                "database_url: the scheme `{scheme}:` is not a store this build knows; use sqlite:PATH, a file path \
                 or postgres://USER@HOST/DATABASE"
            )),
            None if url.trim().is_empty() => Err("database_url: is empty".into()),
            None => Ok(Self::Sqlite(PathBuf::from(url))),
        }
    }
}

impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::SqliteUrl(url) => f.write_str(&mask_password(url)),
            Self::Postgres(url) => write!(f, "{url}"),
        }
    }
}

/// A URL's scheme, when it starts with one (`name:` of letters, digits, `+`, `-`, `.`, at least two
/// characters so a Windows drive letter stays a path).
fn url_scheme(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (scheme.len() > 1
        && first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

/// A PostgreSQL connection URL; shown with its password masked.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl(String);

impl PostgresUrl {
    /// The URL itself, password included: only for connecting.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgresUrl({:?})", mask_password(&self.0))
    }
}

impl std::fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&mask_password(&self.0))
    }
}

/// `url` with the password of its user info and any `password=` query parameter replaced by `***`.
#[must_use]
pub fn mask_password(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(start) = out.find("://").map(|i| i + 3) {
        let authority_end = out[start..].find(['/', '?', '#']).map_or(out.len(), |i| start + i);
        if let Some(at) = out[start..authority_end].rfind('@').map(|i| start + i)
            && let Some(colon) = out[start..at].find(':').map(|i| start + i)
        {
            out.replace_range(colon + 1..at, "***");
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let masked: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out = format!("{head}{}", masked.join("&"));
    }
    out
}

/// Which requests get an access-log line. Server errors and refusals (401, 403, 429)
/// always do: they are what an operator looks for, and a flood of them is throttled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLog {
    /// No line for other requests.
    Off,
    /// One request in [`ACCESS_LOG_SAMPLE`]: shows what is served at a volume bounded by
    /// a thousandth of the request rate (the default: at gateway rates a line per
    /// request is hundreds of GB a day, and none at all hides that traffic flows).
    Sampled,
    /// Every request.
    On,
}

/// `sampled` writes one line per this many requests that are not errors or refusals.
pub const ACCESS_LOG_SAMPLE: u64 = 1_000;

/// The validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub store: StoreLocation,
    pub public_url: Option<String>,
    /// Host and port of `public_url`: what Hawk requests must be signed for.
    pub public_authority: Option<(String, u16)>,
    pub trusted_proxies: Vec<IpNet>,
    pub json_logs: bool,
    /// Longest wait for a request's headers, and for the next request on a kept-alive connection.
    pub header_timeout: Duration,
    /// Longest pause while a request body arrives.
    pub body_timeout: Duration,
    /// Connections served at once; `None` sizes it to the open-file limit at start.
    pub max_connections: Option<usize>,
    pub access_log: AccessLog,
}

/// Default for `header_timeout`, and its ceiling: slow clients must not hold connections long.
pub const MAX_HEADER_TIMEOUT_S: u64 = 30;
/// Default for `body_timeout`.
pub const DEFAULT_BODY_TIMEOUT_S: u64 = 30;

/// Every problem found in the configuration, reported together.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

impl Config {
    /// Layers flags and environment (already merged by clap) over the TOML file and defaults.
    pub fn load(args: ServeArgs) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let file = match &args.config {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => toml::from_str::<FileConfig>(&text).unwrap_or_else(|e| {
                    problems.push(format!("config file {}: {}", path.display(), e.message()));
                    FileConfig::default()
                }),
                Err(e) => {
                    problems.push(format!("config file {}: {e}", path.display()));
                    FileConfig::default()
                }
            },
            None => FileConfig::default(),
        };
        let listen_text = args.listen.or(file.listen).unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
            problems.push(format!("listen: `{listen_text}` is not an address such as 127.0.0.1:8080"));
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });
        let data_dir = args.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from("keyward-data"));
        let store = match args.database_url.or(file.database_url) {
            None => StoreLocation::Sqlite(data_dir.join("keyward.db")),
            Some(url) => StoreLocation::parse(&url).unwrap_or_else(|problem| {
                problems.push(problem);
                StoreLocation::Sqlite(data_dir.join("keyward.db"))
            }),
        };
        if args.redis_url.or(file.redis_url).is_some() {
            tracing::warn!("redis_url is set but this build shares nothing through Redis yet; it is ignored");
        }
        let trusted_proxies = args
            .trusted_proxies
            .or(file.trusted_proxies)
            .unwrap_or_default()
            .iter()
            .filter(|s| !s.trim().is_empty())
            .filter_map(|s| {
                let s = s.trim();
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| problems.push(format!("trusted_proxies: `{s}` is not an IP address or CIDR")))
                    .ok()
            })
            .collect();
        let json_logs = match args.log_format.or(file.log_format).as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => {
                problems.push(format!("log_format: `{other}` is not text or json"));
                false
            }
        };
        let access_log = match args.access_log.or(file.access_log).as_deref() {
            None | Some("sampled") => AccessLog::Sampled,
            Some("off") => AccessLog::Off,
            Some("on") => AccessLog::On,
            Some(other) => {
                problems.push(format!("access_log: `{other}` is not off, sampled or on"));
                AccessLog::Sampled
            }
        };
        let public_url = args.public_url.or(file.public_url).map(|u| u.trim_end_matches('/').to_owned());
        let public_authority = public_url
            .as_deref()
            .and_then(|u| parse_authority(u).map_err(|e| problems.push(format!("public_url: `{u}` {e}"))).ok());
        let mut seconds = |name: &str, value: Option<u64>, default: u64, max: u64| match value {
            None => Duration::from_secs(default),
            Some(n) if (1..=max).contains(&n) => Duration::from_secs(n),
            Some(_) => {
                problems.push(format!("{name}: must be a whole number of seconds from 1 to {max}"));
                Duration::from_secs(default)
            }
        };
        let header_timeout = seconds(
            "header_timeout",
            args.header_timeout.or(file.header_timeout),
            MAX_HEADER_TIMEOUT_S,
            MAX_HEADER_TIMEOUT_S,
        );
        let body_timeout =
            seconds("body_timeout", args.body_timeout.or(file.body_timeout), DEFAULT_BODY_TIMEOUT_S, 3600);
        let max_connections = args.max_connections.or(file.max_connections);
        if max_connections == Some(0) {
            problems.push("max_connections: must be at least 1".into());
        }
        if problems.is_empty() {
            Ok(Self {
                listen,
                data_dir,
                store,
                public_url,
                public_authority,
                trusted_proxies,
                json_logs,
                header_timeout,
                body_timeout,
                max_connections,
                access_log,
            })
        } else {
            Err(ConfigError(problems))
        }
    }
}

/// The host (lower-case) and port of an `http(s)://host[:port][/path]` URL.
fn parse_authority(url: &str) -> Result<(String, u16), &'static str> {
    let (default_port, rest) = if let Some(r) = url.strip_prefix("https://") {
        (443, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (80, r)
    } else {
        return Err("must start with http:// or https://");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6.split_once(']').ok_or("has an unclosed [")?;
            (h, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    if host.is_empty() || host.contains('@') {
        return Err("has no host");
    }
    let port = match port {
        Some(p) => p.parse().map_err(|_| "has an invalid port")?,
        None => default_port,
    };
    Ok((host.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/from-file\"\n").unwrap();
        let args = ServeArgs { listen: Some("127.0.0.1:9100".into()), config: Some(file), ..Default::default() };
        let c = Config::load(args).unwrap();
        assert_eq!(c.listen.port(), 9100);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/from-file"));
        let c = Config::load(ServeArgs::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.store, StoreLocation::Sqlite(PathBuf::from("keyward-data/keyward.db")));
    }

    #[test]
    fn every_problem_is_reported_together() {
        let args = ServeArgs {
            listen: Some("nowhere".into()),
            database_url: Some("sqlit:/typo".into()),
            trusted_proxies: Some(vec!["10.0.0.0/8".into(), "proxy.example".into()]),
            log_format: Some("xml".into()),
            ..Default::default()
        };
        let err = Config::load(args).unwrap_err();
        assert_eq!(err.0.len(), 4, "{err}");
    }

    #[test]
    fn the_store_is_chosen_by_the_url_scheme() {
        assert_eq!(
            StoreLocation::parse("sqlite:///var/k.db"),
            Ok(StoreLocation::SqliteUrl("sqlite:///var/k.db".into()))
        );
        assert_eq!(StoreLocation::parse("/var/k.db"), Ok(StoreLocation::Sqlite(PathBuf::from("/var/k.db"))));
        assert_eq!(StoreLocation::parse("data/k.db"), Ok(StoreLocation::Sqlite(PathBuf::from("data/k.db"))));
        for url in ["postgres://kw@db/keyward", "postgresql://kw:pw@db:5433/keyward?sslmode=require"] {
            assert!(matches!(StoreLocation::parse(url), Ok(StoreLocation::Postgres(u)) if u.expose() == url));
        }
        let err = StoreLocation::parse("mysql://root:hunter2@db/keyward").unwrap_err();
        assert!(err.contains("`mysql:`"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        assert!(StoreLocation::parse("sqlit:/typo").unwrap_err().contains("`sqlit:`"));
        assert!(StoreLocation::parse("").is_err());
    }

    #[test]
    fn a_postgres_password_never_shows() {
        let url = "postgres://kw:s3cr%40t@db.example:5432/keyward?sslmode=require&password=other";
        let Ok(store) = StoreLocation::parse(url) else { panic!("a postgres url") };
        for shown in [store.to_string(), format!("{store:?}")] {
            assert!(!shown.contains("s3cr") && !shown.contains("other"), "{shown}");
            assert!(shown.contains("kw:***@db.example:5432/keyward") && shown.contains("password=***"), "{shown}");
        }
        assert_eq!(mask_password("postgres://kw@db/keyward"), "postgres://kw@db/keyward");
        assert_eq!(mask_password("postgres://db/keyward?user=kw"), "postgres://db/keyward?user=kw");
    }

    #[test]
    fn the_public_url_gives_the_authority_hawk_requests_are_signed_for() {
        assert_eq!(parse_authority("https://Keys.Example.com"), Ok(("keys.example.com".into(), 443)));
        assert_eq!(parse_authority("http://10.0.0.1:8080/base"), Ok(("10.0.0.1".into(), 8080)));
        assert_eq!(parse_authority("http://[::1]:9000"), Ok(("::1".into(), 9000)));
        assert!(parse_authority("keys.example.com").is_err());
        assert!(parse_authority("https://:80").is_err());
        assert!(parse_authority("https://h:port").is_err());
    }

    #[test]
    fn connection_limits_are_bounded() {
        let c = Config::load(ServeArgs::default()).unwrap();
        assert_eq!(c.header_timeout, Duration::from_secs(30));
        assert_eq!(c.body_timeout, Duration::from_secs(30));
        assert_eq!(c.max_connections, None);
        let args = ServeArgs { header_timeout: Some(2), max_connections: Some(5), ..Default::default() };
        let c = Config::load(args).unwrap();
        assert_eq!((c.header_timeout, c.max_connections), (Duration::from_secs(2), Some(5)));
        let args = ServeArgs {
            header_timeout: Some(31),
            body_timeout: Some(0),
            max_connections: Some(0),
            ..Default::default()
        };
        assert_eq!(Config::load(args).unwrap_err().0.len(), 3);
    }

    #[test]
    fn the_access_log_is_sampled_unless_told_otherwise() {
        assert_eq!(Config::load(ServeArgs::default()).unwrap().access_log, AccessLog::Sampled);
        for (text, mode) in [("off", AccessLog::Off), ("sampled", AccessLog::Sampled), ("on", AccessLog::On)] {
            let c = Config::load(ServeArgs { access_log: Some(text.into()), ..Default::default() }).unwrap();
            assert_eq!(c.access_log, mode);
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k.toml");
        std::fs::write(&file, "access_log = \"on\"\n").unwrap();
        assert_eq!(
            Config::load(ServeArgs { config: Some(file), ..Default::default() }).unwrap().access_log,
            AccessLog::On
        );
        let err = Config::load(ServeArgs { access_log: Some("all".into()), ..Default::default() }).unwrap_err();
        assert!(err.to_string().contains("access_log"), "{err}");
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k.toml");
        std::fs::write(&file, "lisen = \"127.0.0.1:9000\"\n").unwrap();
        let err = Config::load(ServeArgs { config: Some(file), ..Default::default() }).unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
    }
}
