//! The hot path: judging a credential against the in-memory index, with
//! 1,000 keys loaded from a real SQLite store. `cargo bench -p keyward-server`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use criterion::{Criterion, criterion_group, criterion_main};
use keyward_core::audit::AuditEvent;
use keyward_core::clock::{Clock, SystemClock};
use keyward_core::crypto::{Keyring, MasterKey};
use keyward_core::hawk::{self, Algorithm, MacInput, MacKind, RequestInfo};
use keyward_core::ids::{KeyId, OrgId, RoleId, UserId};
use keyward_core::key::{KeyLimits, KeySpec};
use keyward_core::model::{Org, OrgSettings, User, UserKind, UserStatus};
use keyward_core::secret::Secret;
use keyward_core::store::Store;
use keyward_core::token::{AccessClaims, TokenSigner};
use keyward_server::index::{Credential, HawkRequest, KeyIndex};
use keyward_server::nonce::NonceCache;
use keyward_store::sqlite::SqliteStore;
use std::net::IpAddr;
use std::sync::Arc;

const KEYS: usize = 1_000;

struct Fixture {
    index: KeyIndex,
    id: String,
    secret: Secret,
    _dir: tempfile::TempDir,
}

fn fixture(rt: &tokio::runtime::Runtime) -> Fixture {
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("bench.db")).await.unwrap();
        let keyring = Arc::new(Keyring::new(&MasterKey::generate()));
        let now = SystemClock.now();
        let org =
            Org { id: OrgId::generate(), name: "bench".into(), settings: OrgSettings::default(), created_at: now };
        let owner = User {
            id: UserId::generate(),
            org_id: org.id.clone(),
            name: "owner".into(),
            email: None,
            kind: UserKind::Service,
            roles: vec![RoleId::from_trusted("org_admin")],
            status: UserStatus::Active,
            created_at: now,
            token_epoch: 0,
        };
        let event = |target: &str| AuditEvent {
            at: now,
            org_id: org.id.to_string(),
            actor_id: "bench".into(),
            actor_key_id: None,
            source_ip: None,
            action: "key.create".into(),
            target_type: "key".into(),
            target_id: target.into(),
            outcome: "success".into(),
            details: serde_json::json!({}),
        };
        let record = |id: KeyId, secret: &Secret| {
            let spec = KeySpec {
                id: Some(id),
                secret: Some(Secret::from_presented(secret.expose().to_owned())),
                network_restrictions: vec!["127.0.0.0/8".parse().unwrap()],
                ..KeySpec::named("k", owner.roles.clone())
            };
            spec.into_record(&owner, &org.settings, &owner.id, now, |id, s| keyring.seal(id.as_str(), s)).0
        };
        let first_secret = Secret::generate();
        let first = record(KeyId::generate(), &first_secret);
        store.bootstrap(&org, &owner, &first, &[event(first.id.as_str())]).await.unwrap();
        let limits = KeyLimits { max_per_user: 100_000, role_caps: vec![] };
        for _ in 1..KEYS {
            let k = record(KeyId::generate(), &Secret::generate());
            store.insert_key(&k, &limits, &event(k.id.as_str())).await.unwrap();
        }
        let index = KeyIndex::new(keyring);
        index.reload(&store).await.unwrap();
        Fixture { index, id: first.id.to_string(), secret: first_secret, _dir: dir }
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let f = fixture(&rt);
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    let now = SystemClock.now();

    let basic = Credential::IdAndSecret(f.id.clone(), f.secret.clone());
    c.bench_function("authenticate basic id:secret", |b| {
        b.iter(|| f.index.authenticate(&basic, now, ip, true).unwrap())
    });
    let bearer = Credential::Secret(f.secret.clone());
    c.bench_function("authenticate bearer secret", |b| {
        b.iter(|| f.index.authenticate(&bearer, now, ip, true).unwrap())
    });
    // What every write pays to reach the directory: a shared handle, not a copy.
    c.bench_function("index.directory() (users and roles, shared)", |b| b.iter(|| f.index.directory()));
    let key_id = KeyId::from_trusted(f.id.clone());
    // `/v1/me`'s key, from the index rather than the store.
    c.bench_function("index.key() (the record /v1/me shows)", |b| b.iter(|| f.index.key(&key_id).unwrap()));

    let signer = TokenSigner::generate();
    let vk = signer.verifying_key();
    let key = f.index.key(&KeyId::from_trusted(f.id.clone())).unwrap();
    let claims = AccessClaims {
        iss: "http://bench".into(),
        sub: key.record.owner_id.to_string(),
        aud: "http://bench".into(),
        client_id: f.id.clone(),
        iat: now.timestamp(),
        exp: now.timestamp() + 3600,
        jti: "j".into(),
        scope: "keyward:keys:read".into(),
        org_id: key.record.org_id.to_string(),
        sv: key.record.secret.digest.version(),
        kep: key.record.token_epoch,
        uep: 0,
    };
    let token = signer.sign(&claims);
    c.bench_function("authenticate access token (verify + index)", |b| {
        b.iter(|| {
            let claims = keyward_core::token::verify(&token, |_| Some(vk), "http://bench", now).unwrap();
            f.index.authenticate_token(&claims, now, ip).unwrap()
        })
    });

    let mut nonces = NonceCache::default();
    let mut n: u64 = 0;
    c.bench_function("hawk GET: client signs, server parses and authenticates", |b| {
        b.iter(|| {
            n += 1;
            // Every request here is signed in the same second; start afresh before its
            // overflow filter fills (see the false-positive rates in nonce.rs).
            if n.is_multiple_of(50_000) {
                nonces = NonceCache::default();
            }
            let ts = now.timestamp().to_string();
            let nonce = format!("n{n}");
            let input = MacInput {
                ts: &ts,
                nonce: &nonce,
                method: "GET",
                resource: "/v1/me",
                host: "127.0.0.1",
                port: 8080,
                ..MacInput::default()
            };
            let mac = hawk::mac(
                Algorithm::Sha256,
                f.secret.expose().as_bytes(),
                &hawk::normalized_string(MacKind::Header, &input),
            );
            let header =
                hawk::parse_header(&format!("Hawk id=\"{}\", ts=\"{ts}\", nonce=\"{nonce}\", mac=\"{mac}\"", f.id))
                    .unwrap();
            let request = HawkRequest {
                header: &header,
                info: RequestInfo {
                    method: "GET",
                    resource: "/v1/me",
                    host: "127.0.0.1",
                    port: 8080,
                    content_type: None,
                    payload: None,
                },
            };
            f.index.authenticate_hawk(&request, now, ip, &nonces).unwrap()
        })
    });
}

/// The replay check alone, one key at full speed in one second of `ts`: the exact set
/// first, then the overflow filter.
fn bench_nonces(c: &mut Criterion) {
    let nonces = NonceCache::default();
    let mut n: u64 = 0;
    c.bench_function("nonce cache: first use of a fresh nonce", |b| {
        b.iter(|| {
            n += 1;
            // A new second every 100,000 nonces, as a client at 100,000 requests a second.
            let ts = 1_000_000 + i64::try_from(n / 100_000).unwrap();
            assert!(nonces.first_use("kw_bench", &n.to_string(), ts, ts));
        })
    });
}

criterion_group!(benches, bench, bench_nonces);
criterion_main!(benches);
