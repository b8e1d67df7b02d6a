//! The behaviour every `Store` backend must show, written once against
//! `&dyn Store`. Each `pub async fn` below checks one behaviour on a fresh,
//! empty store; `store_suite_tests!(fresh)` turns every one of them into a
//! `#[tokio::test]` for a backend, where `fresh().await` returns
//! `(guard, store)` and the guard lives as long as the test.
//!
//! Conventions: times are whole seconds in March 2026 (`at(day, hour)`),
//! audit queries always set a `limit`, and anything whose order the trait
//! leaves open (`all_keys`, `list_roles`, …) is sorted before comparing.

use chrono::{Duration, TimeZone, Utc};
use keyward_core::Conflict;
use keyward_core::audit::{AuditEntry, AuditEvent, ChainVerifier, GENESIS_HASH, chain_hash};
use keyward_core::clock::Timestamp;
use keyward_core::crypto::{SealedSecret, SecretDigest};
use keyward_core::ids::{KeyId, OrgId, RoleId, UserId};
use keyward_core::key::KeyLimits;
use keyward_core::model::{
    GraceSecret, KeyRecord, KeyStatus, NetworkRestriction, Org, OrgSettings, Role, ScopeDef, ScopeGrant, User,
    UserKind, UserStatus,
};
use keyward_core::permission::{Access, Permission};
use keyward_core::store::{AuditQuery, KeyPage, KeyQuery, KeySort, KeyUsage, StatusCounts, Store, StoreError};
use serde_json::json;
use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt::Debug;
use std::net::IpAddr;

/// One `#[tokio::test]` per suite function, each on a store from `$fresh().await`.
macro_rules! store_suite_tests {
    ($fresh:path) => {
        store_suite_tests!(@each $fresh;
            org_round_trips_every_field,
            org_update_changes_every_field,
            user_round_trips_and_update_replaces_name_email_roles_and_status,
            role_round_trips_permissions_with_wildcards_and_max_keys,
            role_update_replaces_name_description_permissions_and_max_keys,
            scope_round_trips_name_description_and_resources,
            key_round_trips_every_field,
            key_update_replaces_every_field,
            an_update_from_a_stale_read_is_refused_and_changes_nothing,
            bootstrap_creates_org_user_and_key_once,
            init_meta_keeps_the_first_value,
            swap_meta_swaps_only_when_the_expected_value_matches,
            key_id_is_taken_by_a_live_key_and_by_a_deleted_one,
            same_secret_digest_is_secret_in_use_on_insert_and_update,
            deleted_keys_free_their_secret_digest,
            duplicate_role_name_in_an_org_is_role_name_taken,
            duplicate_scope_in_an_org_is_scope_exists,
            insert_key_refuses_past_max_per_user_and_writes_nothing,
            insert_key_refuses_past_a_role_cap_and_writes_nothing,
            deleted_keys_do_not_count_toward_limits,
            update_key_with_limits_checks_the_roles_it_adds,
            list_keys_q_matches_id_name_description_and_comment_case_insensitively,
            list_keys_q_treats_percent_underscore_and_backslash_literally,
            list_keys_status_filter_uses_now_and_counts_ignore_it,
            list_keys_filters_by_owner_role_and_org,
            list_keys_sorts_by_every_column_both_ways_with_id_tie_break,
            list_keys_pages_with_total,
            delete_key_hides_the_key_and_is_false_the_second_time,
            delete_user_deletes_their_keys_with_one_audit_entry_each,
            delete_role_deletes_keys_carrying_it_and_takes_it_from_users,
            record_key_usage_keeps_the_newest_time_per_key,
            record_key_usage_ignores_deleted_and_unknown_keys,
            every_write_appends_exactly_one_audit_entry,
            audit_entries_chain_per_org_and_verify,
            list_audit_filters_orders_and_pages,
            prune_audit_cuts_at_an_anchor_and_the_chain_goes_on,
            audit_seq_keeps_growing_after_the_newest_entries_are_pruned,
            failed_writes_leave_no_audit_entry,
        );
    };
    (@each $fresh:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (guard, store) = $fresh().await;
                store_suite::$name(&store).await;
                drop(store);
                drop(guard);
            }
        )*
    };
}

// ---------------------------------------------------------------------------
// Test data
// ---------------------------------------------------------------------------

/// 2026-03-`day` `hour`:00:00 UTC.
pub fn at(day: u32, hour: u32) -> Timestamp {
    Utc.with_ymd_and_hms(2026, 3, day, hour, 0, 0).unwrap()
}

pub fn t0() -> Timestamp {
    at(1, 0)
}

pub fn oid(s: &str) -> OrgId {
    OrgId::from_trusted(s)
}

pub fn uid(s: &str) -> UserId {
    UserId::from_trusted(s)
}

pub fn rid(s: &str) -> RoleId {
    RoleId::from_trusted(s)
}

pub fn kid(s: &str) -> KeyId {
    KeyId::from_trusted(s)
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn nets(list: &[&str]) -> Vec<NetworkRestriction> {
    list.iter().map(|n| n.parse().unwrap()).collect()
}

pub fn grant(scope: &str, resource: &str, access: Access) -> ScopeGrant {
    ScopeGrant { scope: scope.into(), resource: resource.into(), access }
}

/// A sealed secret whose 32-byte digest starts with `tag` (distinct tags of at
/// most 32 bytes give distinct digests) and whose ciphertext carries it too.
pub fn sealed(tag: &str) -> SealedSecret {
    assert!(tag.len() <= 32, "tag `{tag}` is longer than a digest");
    let mut digest = [0xA5u8; 32];
    digest[..tag.len()].copy_from_slice(tag.as_bytes());
    let mut ciphertext = vec![0x00, 0x01, 0xFE, 0xFF];
    ciphertext.extend_from_slice(tag.as_bytes());
    SealedSecret { digest: SecretDigest(digest), ciphertext }
}

pub fn org(id: &str) -> Org {
    Org { id: oid(id), name: format!("Org {id}"), settings: OrgSettings::default(), created_at: t0() }
}

pub fn user(id: &str, org: &str) -> User {
    User {
        id: uid(id),
        org_id: oid(org),
        name: format!("User {id}"),
        email: None,
        kind: UserKind::Human,
        roles: vec![],
        status: UserStatus::Active,
        created_at: t0(),
        token_epoch: 0,
    }
}

pub fn role(id: &str, org: &str, name: &str) -> Role {
    Role {
        id: rid(id),
        org_id: Some(oid(org)),
        name: name.into(),
        description: String::new(),
        permissions: vec![Permission::new("billing", "invoices", Access::Read)],
        max_keys: None,
        builtin: false,
    }
}

/// A plain key: no roles, scopes, expiry, networks or usage; secret sealed from its id.
pub fn key(id: &str, owner: &str, org: &str) -> KeyRecord {
    KeyRecord {
        id: kid(id),
        org_id: oid(org),
        owner_id: uid(owner),
        name: id.into(),
        description: String::new(),
        comment: String::new(),
        roles: vec![],
        scopes: vec![],
        expires_at: None,
        locked: false,
        network_restrictions: vec![],
        reauth_timeout_s: 60,
        created_at: t0(),
        created_by: uid(owner),
        updated_at: t0(),
        rolled_at: None,
        last_used_at: None,
        last_used_ip: None,
        imported: false,
        secret: sealed(id),
        previous_secret: None,
        inherits_owner: false,
        token_epoch: 0,
        version: 0,
    }
}

/// A key with every optional field set and every field away from its default.
/// Roles are given sorted by id, the order the store returns them in.
pub fn full_key(id: &str, owner: &str, org: &str) -> KeyRecord {
    KeyRecord {
        name: "Deploy bot".into(),
        description: "Deploys the billing service".into(),
        comment: "ticket OPS-1234".into(),
        roles: vec![rid("org_admin"), rid("role_deploy")],
        scopes: vec![grant("billing", "invoices", Access::Read), grant("billing", "payments", Access::Write)],
        expires_at: Some(at(20, 8)),
        locked: true,
        network_restrictions: nets(&["203.0.113.7", "2001:db8::1", "10.0.0.0/8", "2001:db8:abcd::/48"]),
        reauth_timeout_s: 3600,
        created_at: at(2, 9),
        created_by: uid("usr_creator"),
        updated_at: at(3, 10),
        rolled_at: Some(at(4, 11)),
        last_used_at: Some(at(5, 12)),
        last_used_ip: Some(ip("198.51.100.4")),
        imported: true,
        secret: sealed(&format!("{id}/current")),
        previous_secret: Some(GraceSecret { sealed: sealed(&format!("{id}/previous")), valid_until: at(6, 13) }),
        ..key(id, owner, org)
    }
}

/// An audit event at `t0()`; its target type is the action's prefix.
pub fn ev(org: &str, action: &str, target: &str) -> AuditEvent {
    AuditEvent {
        at: t0(),
        org_id: org.into(),
        actor_id: "usr_actor".into(),
        actor_key_id: None,
        source_ip: None,
        action: action.into(),
        target_type: action.split('.').next().unwrap_or("key").into(),
        target_id: target.into(),
        outcome: "success".into(),
        details: json!({}),
    }
}

pub fn no_limits() -> KeyLimits {
    KeyLimits { max_per_user: 100_000, role_caps: vec![] }
}

pub fn limits(max_per_user: u32, role_caps: &[(&str, u32)]) -> KeyLimits {
    KeyLimits {
        max_per_user,
        role_caps: role_caps
            .iter()
            .map(|(r, n)| keyward_core::key::RoleCap { role: rid(r), name: (*r).to_owned(), max_keys: *n })
            .collect(),
    }
}

pub async fn seed_org(store: &dyn Store, id: &str) -> Org {
    let o = org(id);
    store.insert_org(&o, &ev(id, "org.create", id)).await.unwrap();
    o
}

pub async fn seed_user(store: &dyn Store, u: &User) {
    store.insert_user(u, &ev(u.org_id.as_str(), "user.create", u.id.as_str())).await.unwrap();
}

pub async fn seed_role(store: &dyn Store, r: &Role) {
    let org = r.org_id.as_ref().map_or("", OrgId::as_str);
    store.insert_role(r, &ev(org, "role.create", r.id.as_str())).await.unwrap();
}

pub async fn seed_key(store: &dyn Store, k: &KeyRecord) {
    store.insert_key(k, &no_limits(), &ev(k.org_id.as_str(), "key.create", k.id.as_str())).await.unwrap();
}

/// `org_a` with `usr_a` in it.
pub async fn seed_a(store: &dyn Store) {
    seed_org(store, "org_a").await;
    seed_user(store, &user("usr_a", "org_a")).await;
}

pub async fn delete_key(store: &dyn Store, id: &str, org: &str) -> bool {
    store.delete_key(&kid(id), &ev(org, "key.delete", id)).await.unwrap()
}

/// Every live key, by id.
pub async fn keys_by_id(store: &dyn Store) -> Vec<KeyRecord> {
    let mut keys = store.all_keys().await.unwrap();
    keys.sort_by(|a, b| a.id.cmp(&b.id));
    keys
}

pub fn ids(keys: &[KeyRecord]) -> Vec<String> {
    keys.iter().map(|k| k.id.to_string()).collect()
}

pub fn id_set<'a>(ids: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    ids.into_iter().map(str::to_owned).collect()
}

pub fn key_id_set(ids: &[KeyId]) -> BTreeSet<String> {
    ids.iter().map(ToString::to_string).collect()
}

/// The `Conflict` a write was refused with; anything else fails the test.
pub fn conflict<T: Debug>(result: Result<T, StoreError>) -> Conflict {
    match result {
        Err(StoreError::Conflict(c)) => c,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

pub fn assert_not_found<T: Debug>(result: Result<T, StoreError>) {
    assert!(matches!(result, Err(StoreError::NotFound { .. })), "expected NotFound, got {result:?}");
}

/// A key list query over every org, created_at ascending, one big page.
pub fn key_query(now: Timestamp) -> KeyQuery {
    KeyQuery {
        org_id: None,
        owner_id: None,
        role_id: None,
        q: None,
        status: None,
        sort: KeySort::CreatedAt,
        descending: false,
        page: 1,
        per_page: 1000,
        now,
    }
}

pub async fn list(store: &dyn Store, query: &KeyQuery) -> KeyPage {
    store.list_keys(query).await.unwrap()
}

/// The ids `q` finds, as a set.
pub async fn search(store: &dyn Store, q: &str) -> BTreeSet<String> {
    let page = list(store, &KeyQuery { q: Some(q.into()), ..key_query(t0()) }).await;
    assert_eq!(page.total, page.items.len() as u64, "q={q}");
    page.items.iter().map(|k| k.id.to_string()).collect()
}

/// Every audit entry (all orgs), oldest first.
pub fn all_audit() -> AuditQuery {
    AuditQuery { limit: 100_000, ..Default::default() }
}

pub async fn audit(store: &dyn Store, query: &AuditQuery) -> (Vec<AuditEntry>, u64) {
    store.list_audit(query).await.unwrap()
}

pub async fn audit_total(store: &dyn Store) -> u64 {
    audit(store, &all_audit()).await.1
}

/// One org's entries, oldest first.
pub async fn org_audit(store: &dyn Store, org: &str) -> Vec<AuditEntry> {
    audit(store, &AuditQuery { org_id: Some(oid(org)), ..all_audit() }).await.0
}

/// Checks one org's entries (oldest first) link up from `anchor` and hash right,
/// by hand and with a `ChainVerifier`.
pub fn assert_chain(entries: &[AuditEntry], anchor: &str) {
    let mut prev = anchor.to_owned();
    let mut last_seq = i64::MIN;
    for e in entries {
        assert!(e.seq > last_seq, "seq {} after {last_seq}", e.seq);
        assert_eq!(e.prev_hash, prev, "entry {} does not link to the one before", e.seq);
        assert_eq!(e.hash, chain_hash(e.seq, &e.event, &e.prev_hash), "entry {} has a wrong hash", e.seq);
        prev = e.hash.clone();
        last_seq = e.seq;
    }
    let mut verifier = ChainVerifier::new(anchor);
    entries.iter().for_each(|e| verifier.feed(e));
    assert_eq!((verifier.checked, verifier.first_bad_seq), (entries.len() as u64, None));
}

/// Asserts that exactly `events` were appended since the log held `*before`
/// entries, in that order, and moves `*before` on.
pub async fn expect_appended(store: &dyn Store, before: &mut u64, events: &[AuditEvent]) {
    let (entries, total) = audit(store, &all_audit()).await;
    assert_eq!(total, *before + events.len() as u64, "expected {} new entries", events.len());
    let tail: Vec<&AuditEvent> = entries[entries.len() - events.len()..].iter().map(|e| &e.event).collect();
    assert_eq!(tail, events.iter().collect::<Vec<_>>());
    *before = total;
}

/// The `key.delete` entries' targets.
pub async fn deleted_key_entries(store: &dyn Store) -> Vec<AuditEntry> {
    audit(store, &AuditQuery { action: Some("key.delete".into()), ..all_audit() }).await.0
}

// ---------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------

fn custom_org(id: &str) -> Org {
    Org {
        id: oid(id),
        name: "Custom Org".into(),
        settings: OrgSettings {
            max_keys_per_user: 37,
            default_expiry_days: Some(90),
            allow_direct_secret: false,
            audit_retention_days: Some(400),
            hawk_require_payload_hash: true,
        },
        created_at: at(2, 3),
    }
}

pub async fn org_round_trips_every_field(store: &dyn Store) {
    let custom = custom_org("org_custom");
    let plain = Org { created_at: at(3, 4), ..org("org_plain") };
    store.insert_org(&custom, &ev("org_custom", "org.create", "org_custom")).await.unwrap();
    store.insert_org(&plain, &ev("org_plain", "org.create", "org_plain")).await.unwrap();

    assert_eq!(store.get_org(&custom.id).await.unwrap(), Some(custom.clone()));
    assert_eq!(store.get_org(&plain.id).await.unwrap(), Some(plain.clone()));
    assert_eq!(store.get_org(&oid("org_missing")).await.unwrap(), None);
    let mut orgs = store.list_orgs().await.unwrap();
    orgs.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(orgs, vec![custom, plain]);
}

pub async fn org_update_changes_every_field(store: &dyn Store) {
    let original = custom_org("org_u");
    let bystander = custom_org("org_other");
    store.insert_org(&original, &ev("org_u", "org.create", "org_u")).await.unwrap();
    store.insert_org(&bystander, &ev("org_other", "org.create", "org_other")).await.unwrap();

    // Every setting moves to a value no other setting has.
    let changed = Org {
        name: "Renamed Org".into(),
        settings: OrgSettings {
            max_keys_per_user: 5,
            default_expiry_days: Some(7),
            allow_direct_secret: true,
            audit_retention_days: Some(30),
            hawk_require_payload_hash: false,
        },
        ..original.clone()
    };
    store.update_org(&changed, &ev("org_u", "org.update", "org_u")).await.unwrap();
    assert_eq!(store.get_org(&changed.id).await.unwrap(), Some(changed.clone()));

    // Options back to None, booleans flipped again.
    let cleared = Org {
        name: "Cleared Org".into(),
        settings: OrgSettings {
            max_keys_per_user: 100_000,
            default_expiry_days: None,
            allow_direct_secret: false,
            audit_retention_days: None,
            hawk_require_payload_hash: true,
        },
        ..original.clone()
    };
    store.update_org(&cleared, &ev("org_u", "org.update", "org_u")).await.unwrap();
    assert_eq!(store.get_org(&cleared.id).await.unwrap(), Some(cleared.clone()));

    let mut orgs = store.list_orgs().await.unwrap();
    orgs.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(orgs, vec![bystander, cleared], "the other org is untouched");
}

pub async fn user_round_trips_and_update_replaces_name_email_roles_and_status(store: &dyn Store) {
    seed_org(store, "org_a").await;
    let service = User {
        name: "CI runner".into(),
        email: Some("ci@example.com".into()),
        kind: UserKind::Service,
        roles: vec![rid("org_admin"), rid("role_deploy")],
        created_at: at(2, 1),
        ..user("usr_svc", "org_a")
    };
    let human = User { created_at: at(3, 1), ..user("usr_human", "org_a") };
    seed_user(store, &service).await;
    seed_user(store, &human).await;
    let mut users = store.list_users().await.unwrap();
    users.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(users, vec![human.clone(), service.clone()]);

    let service2 = User {
        name: "CI runner 2".into(),
        email: None,
        roles: vec![rid("auditor"), rid("role_ops")],
        status: UserStatus::Disabled,
        ..service.clone()
    };
    let human2 = User {
        name: "Jane Doe".into(),
        email: Some("jane@example.com".into()),
        roles: vec![rid("role_deploy")],
        ..human.clone()
    };
    store.update_user(&service2, &ev("org_a", "user.update", "usr_svc")).await.unwrap();
    store.update_user(&human2, &ev("org_a", "user.update", "usr_human")).await.unwrap();
    let mut users = store.list_users().await.unwrap();
    users.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(users, vec![human2.clone(), service2]);

    // And back: roles emptied, status active again.
    let service3 = User { roles: vec![], status: UserStatus::Active, ..service.clone() };
    store.update_user(&service3, &ev("org_a", "user.update", "usr_svc")).await.unwrap();
    let mut users = store.list_users().await.unwrap();
    users.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(users, vec![human2, service3]);
}

fn deploy_role() -> Role {
    Role {
        description: "Deploys things".into(),
        permissions: vec![
            Permission::new("*", "*", Access::Read),
            Permission::new("billing", "*", Access::Write),
            Permission::new("*", "reports", Access::Read),
            Permission::new("billing", "invoices", Access::Write),
        ],
        max_keys: Some(3),
        ..role("role_deploy", "org_a", "deployer")
    }
}

async fn sorted_roles(store: &dyn Store) -> Vec<Role> {
    let mut roles = store.list_roles().await.unwrap();
    roles.sort_by(|a, b| a.id.cmp(&b.id));
    roles
}

pub async fn role_round_trips_permissions_with_wildcards_and_max_keys(store: &dyn Store) {
    seed_org(store, "org_a").await;
    let deploy = deploy_role();
    let empty = Role { permissions: vec![], max_keys: None, ..role("role_empty", "org_a", "empty") };
    seed_role(store, &deploy).await;
    seed_role(store, &empty).await;
    assert_eq!(sorted_roles(store).await, vec![deploy, empty]);
}

pub async fn role_update_replaces_name_description_permissions_and_max_keys(store: &dyn Store) {
    seed_org(store, "org_a").await;
    let deploy = deploy_role();
    let other = Role { max_keys: None, ..role("role_other", "org_a", "other") };
    seed_role(store, &deploy).await;
    seed_role(store, &other).await;

    let deploy2 = Role {
        name: "releaser".into(),
        description: "Releases things".into(),
        permissions: vec![Permission::new("crm", "*", Access::Read)],
        max_keys: None,
        ..deploy.clone()
    };
    let other2 = Role {
        name: "other-2".into(),
        description: "now capped".into(),
        permissions: vec![Permission::new("*", "*", Access::Write), Permission::new("crm", "contacts", Access::Read)],
        max_keys: Some(12),
        ..other.clone()
    };
    store.update_role(&deploy2, &ev("org_a", "role.update", "role_deploy")).await.unwrap();
    store.update_role(&other2, &ev("org_a", "role.update", "role_other")).await.unwrap();
    assert_eq!(sorted_roles(store).await, vec![deploy2, other2]);
}

pub async fn scope_round_trips_name_description_and_resources(store: &dyn Store) {
    seed_org(store, "org_a").await;
    seed_org(store, "org_b").await;
    let billing = ScopeDef {
        org_id: oid("org_a"),
        name: "billing".into(),
        description: "Billing API".into(),
        resources: vec!["invoices".into(), "payments".into(), "refunds".into()],
    };
    let crm = ScopeDef { org_id: oid("org_a"), name: "crm".into(), description: String::new(), resources: vec![] };
    let billing_b = ScopeDef {
        org_id: oid("org_b"),
        name: "billing".into(),
        description: "B's billing".into(),
        resources: vec!["ledger".into()],
    };
    for s in [&billing, &crm, &billing_b] {
        store.insert_scope(s, &ev(s.org_id.as_str(), "scope.create", &s.name)).await.unwrap();
    }
    let mut scopes = store.list_scopes().await.unwrap();
    scopes.sort_by(|a, b| (&a.org_id, &a.name).cmp(&(&b.org_id, &b.name)));
    assert_eq!(scopes, vec![billing, crm, billing_b]);
}

pub async fn key_round_trips_every_field(store: &dyn Store) {
    seed_a(store).await;
    let full = full_key("kw_full", "usr_a", "org_a");
    let plain = key("kw_plain", "usr_a", "org_a");
    let v6 = KeyRecord {
        last_used_at: Some(at(7, 7)),
        last_used_ip: Some(ip("2001:db8::42")),
        network_restrictions: nets(&["::ffff:192.0.2.1", "fd00::/8"]),
        previous_secret: Some(GraceSecret { sealed: sealed("kw_v6/prev"), valid_until: at(8, 8) }),
        ..key("kw_v6", "usr_a", "org_a")
    };
    for k in [&full, &plain, &v6] {
        seed_key(store, k).await;
    }
    for k in [&full, &plain, &v6] {
        assert_eq!(store.get_key(&k.id).await.unwrap().as_ref(), Some(k));
    }
    assert_eq!(store.get_key(&kid("kw_missing")).await.unwrap(), None);
    assert_eq!(keys_by_id(store).await, vec![full.clone(), plain.clone(), v6.clone()]);
    let page = list(store, &key_query(t0())).await;
    let mut listed = page.items;
    listed.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(listed, vec![full, plain, v6], "list_keys returns whole records too");
}

pub async fn key_update_replaces_every_field(store: &dyn Store) {
    seed_a(store).await;
    seed_org(store, "org_b").await;
    seed_user(store, &user("usr_b", "org_b")).await;
    let original = full_key("kw_1", "usr_a", "org_a");
    let bystander = full_key("kw_2", "usr_a", "org_a");
    seed_key(store, &original).await;
    seed_key(store, &bystander).await;
    // Last-used columns belong to record_key_usage, and every update bumps the version.
    let stored = |k: &KeyRecord, version: i64| KeyRecord {
        last_used_at: original.last_used_at,
        last_used_ip: original.last_used_ip,
        version,
        ..k.clone()
    };

    // Every field to a new value (a roll: the old current secret becomes the previous one).
    let changed = KeyRecord {
        id: original.id.clone(),
        org_id: oid("org_b"),
        owner_id: uid("usr_b"),
        name: "Renamed".into(),
        description: "Another description".into(),
        comment: "another comment".into(),
        roles: vec![rid("auditor"), rid("role_ops"), rid("role_x")],
        scopes: vec![grant("crm", "contacts", Access::Write)],
        expires_at: Some(at(25, 1)),
        locked: false,
        network_restrictions: nets(&["192.0.2.0/24", "fd00::5"]),
        reauth_timeout_s: 120,
        created_at: at(2, 10),
        created_by: uid("usr_other"),
        updated_at: at(7, 2),
        rolled_at: Some(at(7, 3)),
        last_used_at: Some(at(7, 4)),
        last_used_ip: Some(ip("2001:db8::77")),
        imported: false,
        secret: sealed("kw_1/rolled"),
        previous_secret: Some(GraceSecret { sealed: original.secret.clone(), valid_until: at(8, 5) }),
        inherits_owner: true,
        token_epoch: 3,
        version: 0,
    };
    store.update_key(&changed, None, &ev("org_b", "key.update", "kw_1")).await.unwrap();
    assert_eq!(store.get_key(&changed.id).await.unwrap(), Some(stored(&changed, 1)));

    // Every optional field back to None, lists emptied, booleans flipped.
    let bare = KeyRecord {
        locked: true,
        imported: true,
        reauth_timeout_s: 10,
        updated_at: at(9, 9),
        secret: sealed("kw_1/bare"),
        version: 1,
        ..key("kw_1", "usr_b", "org_b")
    };
    store.update_key(&bare, Some(&no_limits()), &ev("org_b", "key.update", "kw_1")).await.unwrap();
    assert_eq!(store.get_key(&bare.id).await.unwrap(), Some(stored(&bare, 2)));

    // And from bare to full again.
    let again = KeyRecord { version: 2, ..original.clone() };
    store.update_key(&again, None, &ev("org_a", "key.update", "kw_1")).await.unwrap();
    assert_eq!(store.get_key(&original.id).await.unwrap(), Some(stored(&original, 3)));
    assert_eq!(keys_by_id(store).await, vec![stored(&original, 3), bystander], "the other key is untouched");
}

pub async fn an_update_from_a_stale_read_is_refused_and_changes_nothing(store: &dyn Store) {
    seed_a(store).await;
    let k = key("kw_1", "usr_a", "org_a");
    seed_key(store, &k).await;
    let read_by_a = store.get_key(&k.id).await.unwrap().unwrap();
    let read_by_b = read_by_a.clone();
    // A locks the key; B, who read before, tries to write back an unlocked copy with its comment.
    store.update_key(&KeyRecord { locked: true, ..read_by_a }, None, &ev("org_a", "key.lock", "kw_1")).await.unwrap();
    let before = audit_total(store).await;
    let stale = KeyRecord { comment: "stale".into(), ..read_by_b };
    match store.update_key(&stale, None, &ev("org_a", "key.update", "kw_1")).await {
        Err(StoreError::Conflict(Conflict::ConcurrentUpdate)) => {}
        other => panic!("expected concurrent_update, got {other:?}"),
    }
    let now = store.get_key(&k.id).await.unwrap().unwrap();
    assert!(now.locked, "the lock stands");
    assert_eq!(now.comment, "");
    assert_eq!(audit_total(store).await, before, "no entry for a refused write");
    // Deleted keys are still NotFound, not a conflict.
    store.delete_key(&k.id, &ev("org_a", "key.delete", "kw_1")).await.unwrap();
    assert!(matches!(
        store.update_key(&now, None, &ev("org_a", "key.update", "kw_1")).await,
        Err(StoreError::NotFound { .. })
    ));
}

// ---------------------------------------------------------------------------
// Bootstrap and metadata
// ---------------------------------------------------------------------------

pub async fn bootstrap_creates_org_user_and_key_once(store: &dyn Store) {
    let first_org = custom_org("org_first");
    let admin = User { roles: vec![rid("account_admin")], ..user("usr_admin", "org_first") };
    let admin_key = full_key("kw_admin", "usr_admin", "org_first");
    let events = vec![
        ev("org_first", "org.create", "org_first"),
        ev("org_first", "user.create", "usr_admin"),
        ev("org_first", "key.create", "kw_admin"),
    ];
    assert!(store.bootstrap(&first_org, &admin, &admin_key, &events).await.unwrap());
    assert_eq!(store.list_orgs().await.unwrap(), vec![first_org.clone()]);
    assert_eq!(store.list_users().await.unwrap(), vec![admin.clone()]);
    assert_eq!(store.all_keys().await.unwrap(), vec![admin_key.clone()]);
    let entries = org_audit(store, "org_first").await;
    assert_eq!(entries.iter().map(|e| &e.event).collect::<Vec<_>>(), events.iter().collect::<Vec<_>>());
    assert_chain(&entries, GENESIS_HASH);

    let again = store
        .bootstrap(
            &org("org_second"),
            &user("usr_second", "org_second"),
            &key("kw_second", "usr_second", "org_second"),
            &[ev("org_second", "org.create", "org_second")],
        )
        .await
        .unwrap();
    assert!(!again, "a second bootstrap does nothing");
    assert_eq!(store.list_orgs().await.unwrap(), vec![first_org]);
    assert_eq!(store.list_users().await.unwrap(), vec![admin]);
    assert_eq!(store.all_keys().await.unwrap(), vec![admin_key]);
    assert_eq!(audit_total(store).await, 3, "and writes no audit entry");
}

pub async fn init_meta_keeps_the_first_value(store: &dyn Store) {
    assert_eq!(store.get_meta("master_key_check").await.unwrap(), None);
    assert_eq!(store.init_meta("master_key_check", "first").await.unwrap(), "first");
    assert_eq!(store.init_meta("master_key_check", "second").await.unwrap(), "first");
    assert_eq!(store.get_meta("master_key_check").await.unwrap().as_deref(), Some("first"));
    assert_eq!(store.init_meta("other", "x").await.unwrap(), "x", "names are independent");
    assert_eq!(store.get_meta("master_key_check").await.unwrap().as_deref(), Some("first"));
    assert_eq!(audit_total(store).await, 0);
}

pub async fn swap_meta_swaps_only_when_the_expected_value_matches(store: &dyn Store) {
    store.init_meta("signing_keys", "v1").await.unwrap();
    store.init_meta("other", "v1").await.unwrap();
    assert!(!store.swap_meta("signing_keys", "v0", "v2").await.unwrap());
    assert_eq!(store.get_meta("signing_keys").await.unwrap().as_deref(), Some("v1"));
    assert!(store.swap_meta("signing_keys", "v1", "v2").await.unwrap());
    assert_eq!(store.get_meta("signing_keys").await.unwrap().as_deref(), Some("v2"));
    assert!(!store.swap_meta("signing_keys", "v1", "v3").await.unwrap(), "the old value no longer matches");
    assert_eq!(store.get_meta("signing_keys").await.unwrap().as_deref(), Some("v2"));
    assert_eq!(store.get_meta("other").await.unwrap().as_deref(), Some("v1"), "other names are untouched");
    assert!(!store.swap_meta("missing", "v1", "v2").await.unwrap());
    assert_eq!(store.get_meta("missing").await.unwrap(), None, "a swap does not create");
}

// ---------------------------------------------------------------------------
// Uniqueness
// ---------------------------------------------------------------------------

pub async fn key_id_is_taken_by_a_live_key_and_by_a_deleted_one(store: &dyn Store) {
    seed_a(store).await;
    seed_key(store, &key("kw_1", "usr_a", "org_a")).await;
    let before = audit_total(store).await;
    let twin = KeyRecord { name: "twin".into(), secret: sealed("kw_1/other"), ..key("kw_1", "usr_a", "org_a") };
    let ev_twin = ev("org_a", "key.create", "kw_1");
    assert_eq!(conflict(store.insert_key(&twin, &no_limits(), &ev_twin).await), Conflict::KeyIdTaken);
    assert_eq!(store.get_key(&kid("kw_1")).await.unwrap().unwrap().name, "kw_1", "the first key is untouched");

    assert!(delete_key(store, "kw_1", "org_a").await);
    let before_retry = audit_total(store).await;
    assert_eq!(before_retry, before + 1);
    assert_eq!(
        conflict(store.insert_key(&twin, &no_limits(), &ev_twin).await),
        Conflict::KeyIdTaken,
        "ids are never reused"
    );
    assert_eq!(store.get_key(&kid("kw_1")).await.unwrap(), None);
    assert_eq!(audit_total(store).await, before_retry, "refused inserts leave no audit entry");
}

pub async fn same_secret_digest_is_secret_in_use_on_insert_and_update(store: &dyn Store) {
    seed_a(store).await;
    let first = key("kw_1", "usr_a", "org_a");
    seed_key(store, &first).await;
    let before = audit_total(store).await;

    let copy = KeyRecord { secret: first.secret.clone(), ..key("kw_2", "usr_a", "org_a") };
    let result = store.insert_key(&copy, &no_limits(), &ev("org_a", "key.create", "kw_2")).await;
    assert_eq!(conflict(result), Conflict::SecretInUse);
    assert_eq!(store.get_key(&kid("kw_2")).await.unwrap(), None);

    // Same digest, other ciphertext: the digest is what must be unique.
    let same_digest = KeyRecord {
        secret: SealedSecret { digest: first.secret.digest, ciphertext: vec![9, 9, 9] },
        ..key("kw_3", "usr_a", "org_a")
    };
    let result = store.insert_key(&same_digest, &no_limits(), &ev("org_a", "key.create", "kw_3")).await;
    assert_eq!(conflict(result), Conflict::SecretInUse);
    assert_eq!(audit_total(store).await, before);

    let second = key("kw_2", "usr_a", "org_a");
    seed_key(store, &second).await;
    let before = audit_total(store).await;
    let rolled_onto_first = KeyRecord { secret: first.secret.clone(), ..second.clone() };
    let result = store.update_key(&rolled_onto_first, None, &ev("org_a", "key.roll", "kw_2")).await;
    assert_eq!(conflict(result), Conflict::SecretInUse);
    assert_eq!(store.get_key(&kid("kw_2")).await.unwrap(), Some(second), "the refused update changed nothing");
    assert_eq!(audit_total(store).await, before);
}

pub async fn deleted_keys_free_their_secret_digest(store: &dyn Store) {
    seed_a(store).await;
    let first = key("kw_1", "usr_a", "org_a");
    seed_key(store, &first).await;
    assert!(delete_key(store, "kw_1", "org_a").await);
    let reuse = KeyRecord { secret: first.secret.clone(), ..key("kw_2", "usr_a", "org_a") };
    seed_key(store, &reuse).await;
    assert_eq!(store.get_key(&kid("kw_2")).await.unwrap(), Some(reuse));
}

pub async fn duplicate_role_name_in_an_org_is_role_name_taken(store: &dyn Store) {
    seed_org(store, "org_a").await;
    seed_org(store, "org_b").await;
    seed_role(store, &role("role_1", "org_a", "deployer")).await;
    seed_role(store, &role("role_3", "org_a", "other")).await;
    let before = audit_total(store).await;

    let dup = role("role_2", "org_a", "deployer");
    assert_eq!(conflict(store.insert_role(&dup, &ev("org_a", "role.create", "role_2")).await), Conflict::RoleNameTaken);
    let rename = role("role_3", "org_a", "deployer");
    assert_eq!(
        conflict(store.update_role(&rename, &ev("org_a", "role.update", "role_3")).await),
        Conflict::RoleNameTaken
    );
    assert_eq!(audit_total(store).await, before);
    let names: Vec<(String, String)> =
        sorted_roles(store).await.into_iter().map(|r| (r.id.to_string(), r.name)).collect();
    assert_eq!(names, vec![("role_1".into(), "deployer".into()), ("role_3".into(), "other".into())]);

    seed_role(store, &role("role_b", "org_b", "deployer")).await;
    assert_eq!(sorted_roles(store).await.len(), 3, "the same name in another org is fine");
}

pub async fn duplicate_scope_in_an_org_is_scope_exists(store: &dyn Store) {
    seed_org(store, "org_a").await;
    seed_org(store, "org_b").await;
    let scope = |org: &str, description: &str| ScopeDef {
        org_id: oid(org),
        name: "billing".into(),
        description: description.into(),
        resources: vec!["invoices".into()],
    };
    store.insert_scope(&scope("org_a", "first"), &ev("org_a", "scope.create", "billing")).await.unwrap();
    let before = audit_total(store).await;
    let result = store.insert_scope(&scope("org_a", "second"), &ev("org_a", "scope.create", "billing")).await;
    assert_eq!(conflict(result), Conflict::ScopeExists);
    assert_eq!(audit_total(store).await, before);
    assert_eq!(store.list_scopes().await.unwrap(), vec![scope("org_a", "first")]);
    store.insert_scope(&scope("org_b", "b"), &ev("org_b", "scope.create", "billing")).await.unwrap();
    assert_eq!(store.list_scopes().await.unwrap().len(), 2, "the same name in another org is fine");
}

// ---------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------

pub async fn insert_key_refuses_past_max_per_user_and_writes_nothing(store: &dyn Store) {
    seed_a(store).await;
    seed_user(store, &user("usr_b", "org_a")).await;
    let two = limits(2, &[]);
    for id in ["kw_1", "kw_2"] {
        let k = KeyRecord { roles: vec![rid("role_x")], ..key(id, "usr_a", "org_a") };
        store.insert_key(&k, &two, &ev("org_a", "key.create", id)).await.unwrap();
    }
    let before = audit_total(store).await;
    let third = KeyRecord { roles: vec![rid("role_x")], ..key("kw_3", "usr_a", "org_a") };
    assert!(matches!(
        conflict(store.insert_key(&third, &two, &ev("org_a", "key.create", "kw_3")).await),
        Conflict::KeyLimitReached(_)
    ));
    assert_eq!(ids(&keys_by_id(store).await), ["kw_1", "kw_2"]);
    assert_eq!(store.get_key(&kid("kw_3")).await.unwrap(), None);
    assert_eq!(audit_total(store).await, before, "no audit entry for the refused insert");
    let by_role = list(store, &KeyQuery { role_id: Some(rid("role_x")), ..key_query(t0()) }).await;
    assert_eq!(by_role.total, 2, "no role link was left behind");

    // The refused id was not burnt, and other owners have their own count.
    seed_key(store, &key("kw_b1", "usr_b", "org_a")).await;
    store.insert_key(&key("kw_b2", "usr_b", "org_a"), &two, &ev("org_a", "key.create", "kw_b2")).await.unwrap();
    store.insert_key(&third, &limits(3, &[]), &ev("org_a", "key.create", "kw_3")).await.unwrap();
    assert_eq!(ids(&keys_by_id(store).await), ["kw_1", "kw_2", "kw_3", "kw_b1", "kw_b2"]);
}

pub async fn insert_key_refuses_past_a_role_cap_and_writes_nothing(store: &dyn Store) {
    seed_a(store).await;
    let capped = limits(10, &[("role_deploy", 1)]);
    let with_role = |id: &str, roles: &[&str]| KeyRecord {
        roles: roles.iter().map(|r| rid(r)).collect(),
        ..key(id, "usr_a", "org_a")
    };
    store.insert_key(&with_role("kw_1", &["role_deploy"]), &capped, &ev("org_a", "key.create", "kw_1")).await.unwrap();
    let before = audit_total(store).await;
    let second = with_role("kw_2", &["role_deploy", "role_other"]);
    assert!(matches!(
        conflict(store.insert_key(&second, &capped, &ev("org_a", "key.create", "kw_2")).await),
        Conflict::KeyLimitReached(_)
    ));
    assert_eq!(ids(&keys_by_id(store).await), ["kw_1"]);
    assert_eq!(audit_total(store).await, before);
    let by_role = list(store, &KeyQuery { role_id: Some(rid("role_other")), ..key_query(t0()) }).await;
    assert_eq!(by_role.total, 0, "no role link was left behind");

    // Keys without the capped role are fine.
    let other = with_role("kw_3", &["role_other"]);
    store.insert_key(&other, &capped, &ev("org_a", "key.create", "kw_3")).await.unwrap();
    store.insert_key(&key("kw_4", "usr_a", "org_a"), &capped, &ev("org_a", "key.create", "kw_4")).await.unwrap();
    assert_eq!(ids(&keys_by_id(store).await), ["kw_1", "kw_3", "kw_4"]);
}

pub async fn deleted_keys_do_not_count_toward_limits(store: &dyn Store) {
    seed_a(store).await;
    let lim = limits(2, &[("role_deploy", 1)]);
    let deploy = |id: &str| KeyRecord { roles: vec![rid("role_deploy")], ..key(id, "usr_a", "org_a") };
    store.insert_key(&deploy("kw_1"), &lim, &ev("org_a", "key.create", "kw_1")).await.unwrap();
    store.insert_key(&key("kw_2", "usr_a", "org_a"), &lim, &ev("org_a", "key.create", "kw_2")).await.unwrap();
    assert!(matches!(
        conflict(store.insert_key(&key("kw_3", "usr_a", "org_a"), &lim, &ev("org_a", "key.create", "kw_3")).await),
        Conflict::KeyLimitReached(_)
    ));
    assert!(delete_key(store, "kw_1", "org_a").await);
    store.insert_key(&deploy("kw_3"), &lim, &ev("org_a", "key.create", "kw_3")).await.unwrap();
    assert_eq!(ids(&keys_by_id(store).await), ["kw_2", "kw_3"]);
}

pub async fn update_key_with_limits_checks_the_roles_it_adds(store: &dyn Store) {
    seed_a(store).await;
    let lim = limits(10, &[("role_deploy", 1)]);
    let k1 = KeyRecord { roles: vec![rid("role_deploy")], ..key("kw_1", "usr_a", "org_a") };
    let k2 = key("kw_2", "usr_a", "org_a");
    seed_key(store, &k1).await;
    seed_key(store, &k2).await;
    let before = audit_total(store).await;

    let k2_deploy = KeyRecord { roles: vec![rid("role_deploy")], name: "now deploys".into(), ..k2.clone() };
    let result = store.update_key(&k2_deploy, Some(&lim), &ev("org_a", "key.update", "kw_2")).await;
    assert!(matches!(conflict(result), Conflict::KeyLimitReached(_)));
    assert_eq!(store.get_key(&k2.id).await.unwrap(), Some(k2.clone()), "the refused update changed nothing");
    assert_eq!(audit_total(store).await, before);

    // A key already carrying the role may change within the cap.
    let k1_renamed = KeyRecord { name: "renamed".into(), ..k1.clone() };
    store.update_key(&k1_renamed, Some(&lim), &ev("org_a", "key.update", "kw_1")).await.unwrap();
    // Moving the role from kw_1 to kw_2 keeps the count at the cap (each update made from the latest read).
    let k1_plain = KeyRecord { roles: vec![], version: 1, ..k1_renamed };
    store.update_key(&k1_plain, Some(&lim), &ev("org_a", "key.update", "kw_1")).await.unwrap();
    store.update_key(&k2_deploy, Some(&lim), &ev("org_a", "key.update", "kw_2")).await.unwrap();
    assert_eq!(
        keys_by_id(store).await,
        vec![KeyRecord { version: 2, ..k1_plain }, KeyRecord { version: 1, ..k2_deploy }]
    );
    // A per-user maximum already exceeded refuses updates checked against it.
    let k2_again = KeyRecord { name: "again".into(), version: 1, ..k2 };
    let result = store.update_key(&k2_again, Some(&limits(1, &[])), &ev("org_a", "key.update", "kw_2")).await;
    assert!(matches!(conflict(result), Conflict::KeyLimitReached(_)));
}

// ---------------------------------------------------------------------------
// list_keys
// ---------------------------------------------------------------------------

pub async fn list_keys_q_matches_id_name_description_and_comment_case_insensitively(store: &dyn Store) {
    seed_a(store).await;
    let keys = [
        KeyRecord { name: "Alpha".into(), ..key("kw_alpha", "usr_a", "org_a") },
        KeyRecord { name: "build".into(), description: "Nightly ALPHA runs".into(), ..key("kw_b", "usr_a", "org_a") },
        KeyRecord { name: "x".into(), comment: "see aLpHa".into(), ..key("kw_c", "usr_a", "org_a") },
        KeyRecord { name: "unrelated".into(), ..key("kw_d", "usr_a", "org_a") },
        KeyRecord { name: "Mid alphabet".into(), ..key("kw_e", "usr_a", "org_a") },
    ];
    for k in &keys {
        seed_key(store, k).await;
    }
    let alpha = id_set(["kw_alpha", "kw_b", "kw_c", "kw_e"]);
    assert_eq!(search(store, "alpha").await, alpha);
    assert_eq!(search(store, "ALPHA").await, alpha);
    assert_eq!(search(store, "KW_ALP").await, id_set(["kw_alpha"]), "the id is searched too");
    assert_eq!(search(store, "nightly").await, id_set(["kw_b"]));
    assert_eq!(search(store, "related").await, id_set(["kw_d"]));
    assert_eq!(search(store, "nothing like it").await, id_set([]));
    assert_eq!(search(store, "").await.len(), 5, "an empty q filters nothing");
    let page = list(store, &KeyQuery { q: Some("alpha".into()), ..key_query(t0()) }).await;
    assert_eq!(page.counts.active, 4, "counts honour q");
}

pub async fn list_keys_q_treats_percent_underscore_and_backslash_literally(store: &dyn Store) {
    seed_a(store).await;
    let named = |id: &str, name: &str| KeyRecord { name: name.into(), ..key(id, "usr_a", "org_a") };
    for k in [
        named("k-pct", "100% done"),
        named("k-1000", "1000 done"),
        named("k-ab", "a_b"),
        named("k-axb", "axb"),
        named("k-bs", r"c:\temp"),
        named("k-t", "ctemp"),
    ] {
        seed_key(store, &k).await;
    }
    assert_eq!(search(store, "%").await, id_set(["k-pct"]));
    assert_eq!(search(store, "0% d").await, id_set(["k-pct"]));
    assert_eq!(search(store, "a_b").await, id_set(["k-ab"]));
    assert_eq!(search(store, "_").await, id_set(["k-ab"]));
    assert_eq!(search(store, r"\").await, id_set(["k-bs"]));
    assert_eq!(search(store, r":\t").await, id_set(["k-bs"]));
    assert_eq!(search(store, "done").await, id_set(["k-pct", "k-1000"]));
}

/// Keys whose status at `status_now()` covers every case: expired beats locked,
/// and a disabled owner's key is locked.
fn status_keys() -> Vec<KeyRecord> {
    let now = status_now();
    let k = |id: &str, expires_at: Option<Timestamp>, locked: bool| KeyRecord {
        expires_at,
        locked,
        ..key(id, "usr_a", "org_a")
    };
    vec![
        k("s-active", None, false),
        k("s-later", Some(now + Duration::days(40)), false),
        k("s-soon", Some(now + Duration::days(5)), false),
        k("s-expired", Some(at(5, 0)), false),
        k("s-edge", Some(now), false),
        k("s-locked", None, true),
        k("s-locked-expired", Some(at(5, 0)), true),
        k("s-locked-soon", Some(now + Duration::days(5)), true),
        KeyRecord { owner_id: uid(DISABLED_OWNER), ..k("s-owner-disabled", None, false) },
    ]
}

/// The owner of `s-owner-disabled`.
const DISABLED_OWNER: &str = "usr_disabled";

fn status_now() -> Timestamp {
    at(10, 12)
}

/// The status rule of `KeyRecord::status`, with the owners these fixtures have.
fn status_of(k: &KeyRecord, now: Timestamp) -> KeyStatus {
    k.status(now, k.owner_id.as_str() != DISABLED_OWNER)
}

fn reference_counts(keys: &[KeyRecord], now: Timestamp) -> StatusCounts {
    let n = |s: KeyStatus| keys.iter().filter(|k| status_of(k, now) == s).count() as u64;
    StatusCounts {
        active: n(KeyStatus::Active),
        locked: n(KeyStatus::Locked),
        expired: n(KeyStatus::Expired),
        expiring_30d: keys.iter().filter(|k| k.expiring_soon(now)).count() as u64,
    }
}

pub async fn list_keys_status_filter_uses_now_and_counts_ignore_it(store: &dyn Store) {
    seed_a(store).await;
    seed_user(store, &User { status: UserStatus::Disabled, ..user(DISABLED_OWNER, "org_a") }).await;
    let keys = status_keys();
    for k in &keys {
        seed_key(store, k).await;
    }
    // A deleted key counts nowhere.
    seed_key(store, &key("s-deleted", "usr_a", "org_a")).await;
    assert!(delete_key(store, "s-deleted", "org_a").await);

    let now = status_now();
    let expected = StatusCounts { active: 3, locked: 3, expired: 3, expiring_30d: 2 };
    assert_eq!(reference_counts(&keys, now), expected, "the fixture is what this test thinks it is");
    let later = now + Duration::days(60);
    let expected_later = StatusCounts { active: 1, locked: 2, expired: 6, expiring_30d: 0 };
    assert_eq!(reference_counts(&keys, later), expected_later);

    for (now, counts) in [(now, expected), (later, expected_later)] {
        let all = list(store, &key_query(now)).await;
        assert_eq!(all.counts, counts, "at {now}");
        assert_eq!(all.total, keys.len() as u64);
        for status in [KeyStatus::Active, KeyStatus::Locked, KeyStatus::Expired] {
            let page = list(store, &KeyQuery { status: Some(status), ..key_query(now) }).await;
            let want: BTreeSet<String> =
                keys.iter().filter(|k| status_of(k, now) == status).map(|k| k.id.to_string()).collect();
            let got: BTreeSet<String> = page.items.iter().map(|k| k.id.to_string()).collect();
            assert_eq!(got, want, "{status:?} at {now}");
            assert_eq!(page.total, want.len() as u64, "{status:?} total at {now}");
            assert_eq!(page.counts, counts, "counts ignore the status filter ({status:?} at {now})");
        }
    }
}

pub async fn list_keys_filters_by_owner_role_and_org(store: &dyn Store) {
    seed_a(store).await;
    seed_user(store, &user("usr_b", "org_a")).await;
    seed_org(store, "org_b").await;
    seed_user(store, &user("usr_c", "org_b")).await;
    let with = |id: &str, owner: &str, org: &str, roles: &[&str]| KeyRecord {
        roles: roles.iter().map(|r| rid(r)).collect(),
        ..key(id, owner, org)
    };
    for k in [
        with("f1", "usr_a", "org_a", &["role_x"]),
        KeyRecord { locked: true, ..with("f2", "usr_a", "org_a", &[]) },
        with("f3", "usr_b", "org_a", &["role_x", "role_y"]),
        with("f4", "usr_c", "org_b", &["role_y"]),
    ] {
        seed_key(store, &k).await;
    }
    let ids_of = |page: &KeyPage| page.items.iter().map(|k| k.id.to_string()).collect::<BTreeSet<_>>();
    let base = key_query(t0());

    let page = list(store, &KeyQuery { owner_id: Some(uid("usr_a")), ..base.clone() }).await;
    assert_eq!(ids_of(&page), id_set(["f1", "f2"]));
    assert_eq!((page.total, page.counts.active, page.counts.locked), (2, 1, 1), "counts honour the owner");

    let page = list(store, &KeyQuery { role_id: Some(rid("role_x")), ..base.clone() }).await;
    assert_eq!(ids_of(&page), id_set(["f1", "f3"]));
    assert_eq!(page.total, 2);

    let page = list(store, &KeyQuery { org_id: Some(oid("org_b")), ..base.clone() }).await;
    assert_eq!(ids_of(&page), id_set(["f4"]));
    assert_eq!((page.total, page.counts.active), (1, 1));

    let page = list(store, &KeyQuery { org_id: Some(oid("org_a")), ..base.clone() }).await;
    assert_eq!(ids_of(&page), id_set(["f1", "f2", "f3"]));

    let page = list(store, &base).await;
    assert_eq!(ids_of(&page), id_set(["f1", "f2", "f3", "f4"]), "no org: every org");

    let page =
        list(store, &KeyQuery { org_id: Some(oid("org_a")), role_id: Some(rid("role_y")), ..base.clone() }).await;
    assert_eq!(ids_of(&page), id_set(["f3"]));

    let page = list(store, &KeyQuery { owner_id: Some(uid("usr_a")), q: Some("F2".into()), ..base.clone() }).await;
    assert_eq!(ids_of(&page), id_set(["f2"]));

    let page = list(store, &KeyQuery { owner_id: Some(uid("usr_c")), org_id: Some(oid("org_a")), ..base }).await;
    assert_eq!((page.items.len(), page.total), (0, 0));
    assert_eq!(page.counts, StatusCounts::default());
}

fn status_rank(k: &KeyRecord, now: Timestamp) -> u8 {
    match status_of(k, now) {
        KeyStatus::Active => 0,
        KeyStatus::Locked => 1,
        KeyStatus::Expired => 2,
    }
}

/// The order `list_keys` must return: by the column (names case-insensitively,
/// status active < locked < expired), then by id, both in the query's
/// direction; keys without the timestamp (never expiring, never used) last
/// either way.
fn reference_order(keys: &[KeyRecord], sort: KeySort, desc: bool, now: Timestamp) -> Vec<String> {
    let dir = |o: Ordering| if desc { o.reverse() } else { o };
    let nulls_last = |a: &KeyRecord, b: &KeyRecord, x: Option<Timestamp>, y: Option<Timestamp>| match (x, y) {
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        _ => dir(x.cmp(&y).then_with(|| a.id.cmp(&b.id))),
    };
    let mut sorted: Vec<&KeyRecord> = keys.iter().collect();
    sorted.sort_by(|a, b| match sort {
        KeySort::Name => dir(a.name.to_lowercase().cmp(&b.name.to_lowercase()).then_with(|| a.id.cmp(&b.id))),
        KeySort::CreatedAt => dir(a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id))),
        KeySort::ExpiresAt => nulls_last(a, b, a.expires_at, b.expires_at),
        KeySort::LastUsedAt => nulls_last(a, b, a.last_used_at, b.last_used_at),
        KeySort::Status => dir(status_rank(a, now).cmp(&status_rank(b, now)).then_with(|| a.id.cmp(&b.id))),
    });
    sorted.iter().map(|k| k.id.to_string()).collect()
}

/// id, name, created hour (day 1), expiry day, last-used hour (day 9), locked.
type SortRow<'a> = (&'a str, &'a str, u32, Option<u32>, Option<u32>, bool);

pub async fn list_keys_sorts_by_every_column_both_ways_with_id_tie_break(store: &dyn Store) {
    seed_a(store).await;
    let now = at(10, 12);
    // Ties in every column.
    let rows: [SortRow<'_>; 8] = [
        ("k01", "delta", 1, None, Some(1), false),
        ("k02", "Alpha", 3, Some(20), None, false),
        ("k03", "bravo", 2, Some(15), Some(3), false),
        ("k04", "Bravo", 2, None, Some(1), false),
        ("k05", "charlie", 5, Some(15), None, true),
        ("k06", "echo", 4, Some(5), Some(2), false),
        ("k07", "alpha", 2, Some(25), None, false),
        ("k08", "foxtrot", 6, None, Some(5), true),
    ];
    let keys: Vec<KeyRecord> = rows
        .iter()
        .map(|&(id, name, created, expires, used, locked)| KeyRecord {
            name: name.into(),
            created_at: at(1, created),
            expires_at: expires.map(|d| at(d, 0)),
            last_used_at: used.map(|h| at(9, h)),
            last_used_ip: used.map(|_| ip("192.0.2.1")),
            locked,
            ..key(id, "usr_a", "org_a")
        })
        .collect();
    // Insert in an order unrelated to any sort.
    for i in [4, 0, 7, 2, 5, 1, 6, 3] {
        seed_key(store, &keys[i]).await;
    }
    for sort in [KeySort::Name, KeySort::CreatedAt, KeySort::ExpiresAt, KeySort::LastUsedAt, KeySort::Status] {
        for desc in [false, true] {
            let page = list(store, &KeyQuery { sort, descending: desc, ..key_query(now) }).await;
            assert_eq!(ids(&page.items), reference_order(&keys, sort, desc, now), "sort {sort:?} desc={desc}");
        }
    }
    // Spot checks of the reference itself.
    assert_eq!(reference_order(&keys, KeySort::Name, false, now)[..4], ["k02", "k07", "k03", "k04"]);
    assert_eq!(reference_order(&keys, KeySort::ExpiresAt, true, now)[5..], ["k08", "k04", "k01"]);
    assert_eq!(reference_order(&keys, KeySort::Status, false, now)[5..], ["k05", "k08", "k06"]);
}

pub async fn list_keys_pages_with_total(store: &dyn Store) {
    seed_a(store).await;
    for i in 1..=5u32 {
        let k = KeyRecord { created_at: at(1, i), locked: i == 5, ..key(&format!("p{i}"), "usr_a", "org_a") };
        seed_key(store, &k).await;
    }
    let page = |page: u32, per_page: u32| KeyQuery { page, per_page, ..key_query(t0()) };
    let expected: [(u32, &[&str]); 4] = [(1, &["p1", "p2"]), (2, &["p3", "p4"]), (3, &["p5"]), (4, &[])];
    for (n, want) in expected {
        let got = list(store, &page(n, 2)).await;
        assert_eq!(ids(&got.items), want, "page {n}");
        assert_eq!(got.total, 5, "total ignores paging (page {n})");
        assert_eq!(got.counts, StatusCounts { active: 4, locked: 1, expired: 0, expiring_30d: 0 });
    }
    let desc = list(store, &KeyQuery { descending: true, ..page(1, 2) }).await;
    assert_eq!(ids(&desc.items), ["p5", "p4"]);
    let active = list(store, &KeyQuery { status: Some(KeyStatus::Active), ..page(2, 3) }).await;
    assert_eq!(ids(&active.items), ["p4"]);
    assert_eq!(active.total, 4);
    let one = list(store, &page(3, 1)).await;
    assert_eq!(ids(&one.items), ["p3"]);
}

// ---------------------------------------------------------------------------
// Deletes and cascades
// ---------------------------------------------------------------------------

pub async fn delete_key_hides_the_key_and_is_false_the_second_time(store: &dyn Store) {
    seed_a(store).await;
    seed_key(store, &full_key("kw_1", "usr_a", "org_a")).await;
    seed_key(store, &key("kw_2", "usr_a", "org_a")).await;
    let mut before = audit_total(store).await;
    let delete = ev("org_a", "key.delete", "kw_1");
    assert!(store.delete_key(&kid("kw_1"), &delete).await.unwrap());
    expect_appended(store, &mut before, std::slice::from_ref(&delete)).await;

    assert_eq!(store.get_key(&kid("kw_1")).await.unwrap(), None);
    assert_eq!(ids(&keys_by_id(store).await), ["kw_2"]);
    let page = list(store, &key_query(t0())).await;
    assert_eq!((ids(&page.items), page.total), (vec!["kw_2".to_owned()], 1));
    assert_eq!(page.counts, StatusCounts { active: 1, ..Default::default() });
    let by_role = list(store, &KeyQuery { role_id: Some(rid("role_deploy")), ..key_query(t0()) }).await;
    assert_eq!(by_role.total, 0, "its roles went with it");

    assert!(!store.delete_key(&kid("kw_1"), &delete).await.unwrap(), "the second time");
    assert!(!store.delete_key(&kid("kw_never"), &ev("org_a", "key.delete", "kw_never")).await.unwrap());
    expect_appended(store, &mut before, &[]).await;
    let gone = deleted_key_entries(store).await;
    assert_eq!(gone.iter().map(|e| e.event.target_id.as_str()).collect::<Vec<_>>(), ["kw_1"]);
}

pub async fn delete_user_deletes_their_keys_with_one_audit_entry_each(store: &dyn Store) {
    seed_a(store).await;
    let usr_b = User { roles: vec![rid("role_x")], ..user("usr_b", "org_a") };
    seed_user(store, &usr_b).await;
    seed_key(store, &key("kw_a1", "usr_a", "org_a")).await;
    seed_key(store, &KeyRecord { roles: vec![rid("role_x")], ..key("kw_a2", "usr_a", "org_a") }).await;
    seed_key(store, &key("kw_a3", "usr_a", "org_a")).await;
    assert!(delete_key(store, "kw_a3", "org_a").await);
    seed_key(store, &key("kw_b1", "usr_b", "org_a")).await;
    let before = audit_total(store).await;

    let cause = AuditEvent { at: at(5, 5), actor_id: "usr_admin".into(), ..ev("org_a", "user.delete", "usr_a") };
    let deleted = store.delete_user(&uid("usr_a"), &cause).await.unwrap();
    assert_eq!(key_id_set(&deleted), id_set(["kw_a1", "kw_a2"]), "already deleted keys are not listed");
    assert_eq!(ids(&keys_by_id(store).await), ["kw_b1"]);
    assert_eq!(store.get_key(&kid("kw_a1")).await.unwrap(), None);
    assert_eq!(store.list_users().await.unwrap(), vec![usr_b]);

    let (entries, total) = audit(store, &all_audit()).await;
    assert_eq!(total, before + 3, "the user's entry and one per key");
    let new: Vec<&AuditEntry> = entries[entries.len() - 3..].iter().collect();
    assert_eq!(new.iter().filter(|e| e.event == cause).count(), 1, "the user's own entry");
    let cascades: Vec<&AuditEntry> = new.into_iter().filter(|e| e.event != cause).collect();
    let cascaded: BTreeSet<String> = cascades.iter().map(|e| e.event.target_id.clone()).collect();
    assert_eq!(cascaded, id_set(["kw_a1", "kw_a2"]));
    for e in cascades {
        assert_eq!(
            (e.event.action.as_str(), e.event.target_type.as_str(), e.event.org_id.as_str()),
            ("key.delete", "key", "org_a")
        );
        assert_eq!((e.event.actor_id.as_str(), e.event.at), ("usr_admin", at(5, 5)), "the cause's actor and time");
    }
    let key_deletes: BTreeSet<String> =
        deleted_key_entries(store).await.into_iter().map(|e| e.event.target_id).collect();
    assert_eq!(key_deletes, id_set(["kw_a1", "kw_a2", "kw_a3"]));
    assert_chain(&org_audit(store, "org_a").await, GENESIS_HASH);

    // The deleted keys' ids stay taken; the user is gone.
    let again = key("kw_a1", "usr_b", "org_a");
    let result = store.insert_key(&again, &no_limits(), &ev("org_a", "key.create", "kw_a1")).await;
    assert_eq!(conflict(result), Conflict::KeyIdTaken);
    assert_not_found(store.delete_user(&uid("usr_a"), &cause).await);
}

pub async fn delete_role_deletes_keys_carrying_it_and_takes_it_from_users(store: &dyn Store) {
    seed_org(store, "org_a").await;
    let deploy = role("role_deploy", "org_a", "deployer");
    let other = role("role_other", "org_a", "other");
    seed_role(store, &deploy).await;
    seed_role(store, &other).await;
    let usr_a = User { roles: vec![rid("role_deploy"), rid("role_other")], ..user("usr_a", "org_a") };
    let usr_b = User { roles: vec![rid("role_deploy")], ..user("usr_b", "org_a") };
    seed_user(store, &usr_a).await;
    seed_user(store, &usr_b).await;
    let with = |id: &str, owner: &str, roles: &[&str]| KeyRecord {
        roles: roles.iter().map(|r| rid(r)).collect(),
        ..key(id, owner, "org_a")
    };
    let k3 = with("kw_3", "usr_a", &["role_other"]);
    let k4 = with("kw_4", "usr_b", &[]);
    for k in [
        with("kw_1", "usr_a", &["role_deploy"]),
        with("kw_2", "usr_b", &["role_deploy", "role_other"]),
        k3.clone(),
        k4.clone(),
    ] {
        seed_key(store, &k).await;
    }
    let before = audit_total(store).await;

    let cause = ev("org_a", "role.delete", "role_deploy");
    let deleted = store.delete_role(&rid("role_deploy"), &cause).await.unwrap();
    assert_eq!(key_id_set(&deleted), id_set(["kw_1", "kw_2"]));
    assert_eq!(keys_by_id(store).await, vec![k3, k4]);
    assert_eq!(sorted_roles(store).await, vec![other]);
    let mut users = store.list_users().await.unwrap();
    users.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(users, vec![User { roles: vec![rid("role_other")], ..usr_a }, User { roles: vec![], ..usr_b }]);
    let page = list(store, &KeyQuery { role_id: Some(rid("role_deploy")), ..key_query(t0()) }).await;
    assert_eq!(page.total, 0);

    let (entries, total) = audit(store, &all_audit()).await;
    assert_eq!(total, before + 3);
    assert_eq!(entries[entries.len() - 3..].iter().filter(|e| e.event == cause).count(), 1);
    let key_deletes: BTreeSet<String> =
        deleted_key_entries(store).await.into_iter().map(|e| e.event.target_id).collect();
    assert_eq!(key_deletes, id_set(["kw_1", "kw_2"]));
    assert_chain(&org_audit(store, "org_a").await, GENESIS_HASH);
    assert_not_found(store.delete_role(&rid("role_deploy"), &cause).await);
}

// ---------------------------------------------------------------------------
// Usage
// ---------------------------------------------------------------------------

pub async fn record_key_usage_keeps_the_newest_time_per_key(store: &dyn Store) {
    seed_a(store).await;
    let k1 = key("kw_1", "usr_a", "org_a");
    let k2 = key("kw_2", "usr_a", "org_a");
    let k3 = key("kw_3", "usr_a", "org_a");
    for k in [&k1, &k2, &k3] {
        seed_key(store, k).await;
    }
    let before = audit_total(store).await;
    let usage = |id: &str, at: Timestamp, addr: &str| KeyUsage { key_id: kid(id), at, ip: Some(ip(addr)) };
    store
        .record_key_usage(&[
            usage("kw_1", at(3, 0), "192.0.2.3"),
            usage("kw_1", at(5, 0), "192.0.2.5"),
            usage("kw_1", at(4, 0), "192.0.2.4"),
            usage("kw_2", at(2, 0), "2001:db8::2"),
        ])
        .await
        .unwrap();
    let used = |k: &KeyRecord, at: Timestamp, addr: &str| KeyRecord {
        last_used_at: Some(at),
        last_used_ip: Some(ip(addr)),
        ..k.clone()
    };
    assert_eq!(
        keys_by_id(store).await,
        vec![used(&k1, at(5, 0), "192.0.2.5"), used(&k2, at(2, 0), "2001:db8::2"), k3.clone()],
        "only last_used_* change"
    );

    store.record_key_usage(&[usage("kw_1", at(1, 0), "192.0.2.1")]).await.unwrap();
    assert_eq!(store.get_key(&k1.id).await.unwrap(), Some(used(&k1, at(5, 0), "192.0.2.5")), "older times lose");
    store.record_key_usage(&[usage("kw_1", at(6, 0), "192.0.2.6")]).await.unwrap();
    assert_eq!(store.get_key(&k1.id).await.unwrap(), Some(used(&k1, at(6, 0), "192.0.2.6")));
    store.record_key_usage(&[KeyUsage { key_id: kid("kw_1"), at: at(7, 0), ip: None }]).await.unwrap();
    assert_eq!(
        store.get_key(&k1.id).await.unwrap(),
        Some(used(&k1, at(7, 0), "192.0.2.6")),
        "a use without an address keeps the last known one"
    );
    store.record_key_usage(&[]).await.unwrap();
    assert_eq!(audit_total(store).await, before, "usage is not audited");
}

pub async fn record_key_usage_ignores_deleted_and_unknown_keys(store: &dyn Store) {
    seed_a(store).await;
    let k1 = key("kw_1", "usr_a", "org_a");
    seed_key(store, &k1).await;
    seed_key(store, &key("kw_2", "usr_a", "org_a")).await;
    assert!(delete_key(store, "kw_2", "org_a").await);
    store
        .record_key_usage(&[
            KeyUsage { key_id: kid("kw_2"), at: at(3, 0), ip: Some(ip("192.0.2.2")) },
            KeyUsage { key_id: kid("kw_unknown"), at: at(3, 0), ip: Some(ip("192.0.2.9")) },
            KeyUsage { key_id: kid("kw_1"), at: at(3, 0), ip: Some(ip("192.0.2.1")) },
        ])
        .await
        .unwrap();
    assert_eq!(store.get_key(&kid("kw_2")).await.unwrap(), None, "not brought back");
    assert_eq!(
        keys_by_id(store).await,
        vec![KeyRecord { last_used_at: Some(at(3, 0)), last_used_ip: Some(ip("192.0.2.1")), ..k1 }]
    );
    assert!(!delete_key(store, "kw_2", "org_a").await, "still deleted");
}

// ---------------------------------------------------------------------------
// Audit
// ---------------------------------------------------------------------------

pub async fn every_write_appends_exactly_one_audit_entry(store: &dyn Store) {
    let mut n = 0;
    let mut step = 0;
    let mut next = |action: &str, target: &str| {
        step += 1;
        AuditEvent {
            at: at(2, 0) + Duration::minutes(step),
            actor_key_id: Some("kw_actor".into()),
            source_ip: Some("203.0.113.1".into()),
            details: json!({"step": step, "note": format!("{action} {target}")}),
            ..ev("org_a", action, target)
        }
    };

    let e = next("org.create", "org_a");
    store.insert_org(&org("org_a"), &e).await.unwrap();
    expect_appended(store, &mut n, &[e]).await;
    let e = next("org.update", "org_a");
    store.update_org(&custom_org("org_a"), &e).await.unwrap();
    expect_appended(store, &mut n, &[e]).await;
    let e = next("user.create", "usr_a");
    store.insert_user(&user("usr_a", "org_a"), &e).await.unwrap();
    expect_appended(store, &mut n, &[e]).await;
    let e = next("user.update", "usr_a");
    store.update_user(&User { name: "A".into(), ..user("usr_a", "org_a") }, &e).await.unwrap();
    expect_appended(store, &mut n, &[e]).await;
    let e = next("role.create", "role_x");
    store.insert_role(&role("role_x", "org_a", "x"), &e).await.unwrap();
    expect_appended(store, &mut n, &[e]).await;
    let e = next("role.update", "role_x");
    store.update_role(&role("role_x", "org_a", "x2"), &e).await.unwrap();
    expect_appended(store, &mut n, &[e]).await;
    let e = next("scope.create", "billing");
    let scope =
        ScopeDef { org_id: oid("org_a"), name: "billing".into(), description: String::new(), resources: vec![] };
    store.insert_scope(&scope, &e).await.unwrap();
    expect_appended(store, &mut n, &[e]).await;
    let e = next("key.create", "kw_1");
    store.insert_key(&key("kw_1", "usr_a", "org_a"), &no_limits(), &e).await.unwrap();
    expect_appended(store, &mut n, &[e]).await;
    let e = next("key.update", "kw_1");
    store.update_key(&full_key("kw_1", "usr_a", "org_a"), Some(&no_limits()), &e).await.unwrap();
    expect_appended(store, &mut n, &[e]).await;
    let e = next("key.update", "kw_1");
    store.update_key(&KeyRecord { version: 1, ..key("kw_1", "usr_a", "org_a") }, None, &e).await.unwrap();
    expect_appended(store, &mut n, &[e]).await;
    let e = next("key.delete", "kw_1");
    assert!(store.delete_key(&kid("kw_1"), &e).await.unwrap());
    expect_appended(store, &mut n, &[e]).await;
    let batch = [next("key.use_failed", "kw_9"), next("token.issue", "kw_8")];
    store.append_audit(&batch).await.unwrap();
    expect_appended(store, &mut n, &batch).await;
    let e = next("role.delete", "role_x");
    assert_eq!(store.delete_role(&rid("role_x"), &e).await.unwrap(), vec![]);
    expect_appended(store, &mut n, &[e]).await;
    let e = next("user.delete", "usr_a");
    assert_eq!(store.delete_user(&uid("usr_a"), &e).await.unwrap(), vec![]);
    expect_appended(store, &mut n, &[e]).await;

    // What changes no state, or writes no event, appends nothing.
    assert!(!store.delete_key(&kid("kw_1"), &next("key.delete", "kw_1")).await.unwrap());
    store.append_audit(&[]).await.unwrap();
    store.record_key_usage(&[KeyUsage { key_id: kid("kw_1"), at: at(3, 0), ip: Some(ip("192.0.2.1")) }]).await.unwrap();
    store.init_meta("m", "1").await.unwrap();
    store.swap_meta("m", "1", "2").await.unwrap();
    let boot = store
        .bootstrap(
            &org("org_z"),
            &user("usr_z", "org_z"),
            &key("kw_z", "usr_z", "org_z"),
            &[next("org.create", "org_z")],
        )
        .await
        .unwrap();
    assert!(!boot);
    assert_eq!(store.prune_audit(&oid("org_a"), at(1, 0)).await.unwrap(), 0);
    expect_appended(store, &mut n, &[]).await;

    assert_chain(&org_audit(store, "org_a").await, GENESIS_HASH);
    assert_eq!(store.audit_orgs().await.unwrap(), vec![oid("org_a")]);
}

/// An org-a / org-b interleaving of single and batched appends.
async fn two_org_log(store: &dyn Store) {
    let e = |org: &str, i: u32| AuditEvent { at: at(2, i), details: json!({"i": i}), ..ev(org, "key.update", "kw_1") };
    store.append_audit(&[e("org_a", 0)]).await.unwrap();
    store.append_audit(&[e("org_b", 1), e("org_a", 2), e("org_b", 3)]).await.unwrap();
    store.append_audit(&[e("org_a", 4)]).await.unwrap();
    store.append_audit(&[e("org_a", 5), e("org_a", 6)]).await.unwrap();
    store.append_audit(&[e("org_b", 7)]).await.unwrap();
}

pub async fn audit_entries_chain_per_org_and_verify(store: &dyn Store) {
    assert_eq!(store.audit_anchor(&oid("org_a")).await.unwrap(), GENESIS_HASH);
    assert_eq!(store.audit_orgs().await.unwrap(), vec![]);
    two_org_log(store).await;

    let (all, total) = audit(store, &all_audit()).await;
    assert_eq!(total, 8);
    let seqs: Vec<i64> = all.iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "one global, growing sequence: {seqs:?}");
    let order: Vec<u64> = all.iter().map(|e| e.event.details["i"].as_u64().unwrap()).collect();
    assert_eq!(order, [0, 1, 2, 3, 4, 5, 6, 7], "entries in append order");

    let a = org_audit(store, "org_a").await;
    let b = org_audit(store, "org_b").await;
    assert_eq!((a.len(), b.len()), (5, 3));
    assert_eq!(a[0].prev_hash, GENESIS_HASH);
    assert_eq!(b[0].prev_hash, GENESIS_HASH, "each org's chain starts at genesis");
    assert_chain(&a, GENESIS_HASH);
    assert_chain(&b, GENESIS_HASH);
    assert_eq!(store.audit_orgs().await.unwrap(), vec![oid("org_a"), oid("org_b")]);
    assert_eq!(store.audit_anchor(&oid("org_b")).await.unwrap(), GENESIS_HASH);

    // The whole log in one pass breaks at the first entry of the other org.
    let mut mixed = ChainVerifier::new(GENESIS_HASH);
    all.iter().for_each(|e| mixed.feed(e));
    assert_eq!(mixed.first_bad_seq, Some(all[1].seq), "chains are per org");
}

/// Checks `query` against the same filter applied to `all` (every entry, oldest first).
async fn check_audit_query(
    store: &dyn Store,
    all: &[AuditEntry],
    query: AuditQuery,
    keep: &dyn Fn(&AuditEntry) -> bool,
) {
    let mut matching: Vec<&AuditEntry> = all.iter().filter(|e| keep(e)).collect();
    let total = matching.len() as u64;
    if query.newest_first {
        matching.reverse();
    }
    let want: Vec<i64> = matching
        .iter()
        .skip(usize::try_from(query.offset).unwrap())
        .take(query.limit as usize)
        .map(|e| e.seq)
        .collect();
    let (entries, got_total) = audit(store, &query).await;
    let got: Vec<i64> = entries.iter().map(|e| e.seq).collect();
    assert_eq!((got, got_total), (want, total), "{query:?}");
}

pub async fn list_audit_filters_orders_and_pages(store: &dyn Store) {
    for i in 0..10u32 {
        let a = AuditEvent {
            at: at(2, i),
            actor_id: if i < 5 { "usr_1" } else { "usr_2" }.into(),
            details: json!({"i": i}),
            ..ev("org_a", if i % 2 == 0 { "key.create" } else { "key.update" }, &format!("kw_{}", i % 3))
        };
        store.append_audit(&[a]).await.unwrap();
        if i < 3 {
            let b = AuditEvent { at: at(2, i), actor_id: "usr_1".into(), ..ev("org_b", "key.create", "kw_0") };
            store.append_audit(&[b]).await.unwrap();
        }
    }
    let (all, total) = audit(store, &all_audit()).await;
    assert_eq!(total, 13);
    let org_a = |e: &AuditEntry| e.event.org_id == "org_a";
    let q = all_audit;
    let a_only = || AuditQuery { org_id: Some(oid("org_a")), ..q() };

    check_audit_query(store, &all, q(), &|_| true).await;
    check_audit_query(store, &all, a_only(), &org_a).await;
    check_audit_query(store, &all, AuditQuery { org_id: Some(oid("org_b")), ..q() }, &|e| !org_a(e)).await;
    check_audit_query(store, &all, AuditQuery { org_id: Some(oid("org_none")), ..q() }, &|_| false).await;
    check_audit_query(store, &all, AuditQuery { action: Some("key.update".into()), ..q() }, &|e| {
        e.event.action == "key.update"
    })
    .await;
    check_audit_query(store, &all, AuditQuery { actor_id: Some("usr_2".into()), ..q() }, &|e| {
        e.event.actor_id == "usr_2"
    })
    .await;
    check_audit_query(store, &all, AuditQuery { target_id: Some("kw_1".into()), ..q() }, &|e| {
        e.event.target_id == "kw_1"
    })
    .await;
    check_audit_query(store, &all, AuditQuery { from: Some(at(2, 3)), to: Some(at(2, 6)), ..a_only() }, &|e| {
        org_a(e) && (at(2, 3)..=at(2, 6)).contains(&e.event.at)
    })
    .await;
    check_audit_query(store, &all, AuditQuery { from: Some(at(2, 2)), ..q() }, &|e| e.event.at >= at(2, 2)).await;
    check_audit_query(store, &all, AuditQuery { to: Some(at(2, 1)), ..q() }, &|e| e.event.at <= at(2, 1)).await;
    let cursor = all[4].seq;
    check_audit_query(store, &all, AuditQuery { after_seq: Some(cursor), ..q() }, &|e| e.seq > cursor).await;
    check_audit_query(store, &all, AuditQuery { after_seq: Some(cursor), limit: 3, ..a_only() }, &|e| {
        org_a(e) && e.seq > cursor
    })
    .await;
    check_audit_query(store, &all, AuditQuery { newest_first: true, ..a_only() }, &org_a).await;
    check_audit_query(store, &all, AuditQuery { offset: 2, limit: 3, ..a_only() }, &org_a).await;
    check_audit_query(store, &all, AuditQuery { newest_first: true, offset: 1, limit: 2, ..q() }, &|_| true).await;
    check_audit_query(store, &all, AuditQuery { offset: 100, ..a_only() }, &org_a).await;
    check_audit_query(
        store,
        &all,
        AuditQuery { action: Some("key.create".into()), actor_id: Some("usr_1".into()), ..a_only() },
        &|e| org_a(e) && e.event.action == "key.create" && e.event.actor_id == "usr_1",
    )
    .await;

    // The same numbers by hand, so the reference cannot drift.
    assert_eq!(audit(store, &a_only()).await.1, 10);
    assert_eq!(audit(store, &AuditQuery { action: Some("key.update".into()), ..q() }).await.1, 5);
    let window = audit(store, &AuditQuery { from: Some(at(2, 3)), to: Some(at(2, 6)), ..a_only() }).await;
    assert_eq!(window.1, 4, "from and to are inclusive");
    let newest = audit(store, &AuditQuery { newest_first: true, limit: 1, ..a_only() }).await;
    assert_eq!((newest.0[0].event.details["i"].as_u64(), newest.1), (Some(9), 10));
    let combined =
        audit(store, &AuditQuery { action: Some("key.create".into()), actor_id: Some("usr_1".into()), ..a_only() })
            .await;
    let is: Vec<u64> = combined.0.iter().map(|e| e.event.details["i"].as_u64().unwrap()).collect();
    assert_eq!(is, [0, 2, 4]);
}

pub async fn prune_audit_cuts_at_an_anchor_and_the_chain_goes_on(store: &dyn Store) {
    let e = |org: &str, day: u32| AuditEvent {
        at: at(day, 0),
        details: json!({"day": day}),
        ..ev(org, "key.update", "kw_1")
    };
    for day in 1..=5 {
        store.append_audit(&[e("org_a", day)]).await.unwrap();
        if day <= 2 {
            store.append_audit(&[e("org_b", day)]).await.unwrap();
        }
    }
    let a = org_audit(store, "org_a").await;
    let b = org_audit(store, "org_b").await;

    assert_eq!(store.prune_audit(&oid("org_a"), at(3, 0)).await.unwrap(), 2, "entries before the cut go");
    let rest = org_audit(store, "org_a").await;
    assert_eq!(rest, a[2..].to_vec(), "the entry exactly at the cut stays");
    let anchor = store.audit_anchor(&oid("org_a")).await.unwrap();
    assert_eq!(anchor, a[1].hash, "the anchor is the hash of the last pruned entry");
    assert_chain(&rest, &anchor);
    assert_eq!(org_audit(store, "org_b").await, b, "other orgs keep their entries");
    assert_eq!(store.audit_anchor(&oid("org_b")).await.unwrap(), GENESIS_HASH);

    // New entries continue from the remaining last entry.
    store.append_audit(&[e("org_a", 6)]).await.unwrap();
    let rest = org_audit(store, "org_a").await;
    assert_eq!(rest.len(), 4);
    assert_eq!(rest[3].prev_hash, a[4].hash);
    assert_chain(&rest, &anchor);

    // Nothing older than the cut: nothing goes, the anchor stays.
    assert_eq!(store.prune_audit(&oid("org_a"), at(3, 0)).await.unwrap(), 0);
    assert_eq!(store.prune_audit(&oid("org_a"), at(1, 0)).await.unwrap(), 0);
    assert_eq!(store.prune_audit(&oid("org_none"), at(30, 0)).await.unwrap(), 0);
    assert_eq!(store.audit_anchor(&oid("org_a")).await.unwrap(), anchor);
    assert_eq!(store.audit_anchor(&oid("org_none")).await.unwrap(), GENESIS_HASH);

    // A second cut moves the anchor on.
    assert_eq!(store.prune_audit(&oid("org_a"), at(5, 0)).await.unwrap(), 2);
    let anchor = store.audit_anchor(&oid("org_a")).await.unwrap();
    assert_eq!(anchor, a[3].hash);
    let rest = org_audit(store, "org_a").await;
    assert_eq!(rest.iter().map(|e| e.event.details["day"].as_u64().unwrap()).collect::<Vec<_>>(), [5, 6]);
    assert_chain(&rest, &anchor);
    assert_eq!(audit(store, &all_audit()).await.1, 4);
    assert_eq!(store.audit_orgs().await.unwrap(), vec![oid("org_a"), oid("org_b")]);
}

pub async fn audit_seq_keeps_growing_after_the_newest_entries_are_pruned(store: &dyn Store) {
    let e = |org: &str, day: u32| AuditEvent { at: at(day, 0), ..ev(org, "key.update", "kw_1") };
    store.append_audit(&[e("org_b", 10), e("org_a", 1), e("org_a", 2)]).await.unwrap();
    let a = org_audit(store, "org_a").await;
    let highest = a[1].seq;

    // Retention takes every entry of org_a, which were the newest of the whole log.
    assert_eq!(store.prune_audit(&oid("org_a"), at(3, 0)).await.unwrap(), 2);
    assert_eq!(org_audit(store, "org_a").await, vec![]);
    let anchor = store.audit_anchor(&oid("org_a")).await.unwrap();
    assert_eq!(anchor, a[1].hash);

    store.append_audit(&[e("org_a", 4)]).await.unwrap();
    let rest = org_audit(store, "org_a").await;
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].prev_hash, anchor, "an emptied chain continues from its anchor");
    assert_chain(&rest, &anchor);
    assert!(
        rest[0].seq > highest,
        "seq {} was handed out again after pruning (highest ever was {highest}); \
         readers paging by after_seq would miss it",
        rest[0].seq
    );
}

pub async fn failed_writes_leave_no_audit_entry(store: &dyn Store) {
    seed_a(store).await;
    seed_role(store, &role("role_x", "org_a", "x")).await;
    seed_key(store, &key("kw_1", "usr_a", "org_a")).await;
    seed_key(store, &key("kw_gone", "usr_a", "org_a")).await;
    assert!(delete_key(store, "kw_gone", "org_a").await);
    let before = audit(store, &all_audit()).await;
    let fail = |what: &str| ev("org_a", "failing.write", what);

    assert_not_found(store.update_key(&key("kw_missing", "usr_a", "org_a"), None, &fail("k1")).await);
    assert_not_found(store.update_key(&key("kw_gone", "usr_a", "org_a"), None, &fail("k2")).await);
    assert_not_found(store.update_key(&key("kw_missing", "usr_a", "org_a"), Some(&no_limits()), &fail("k3")).await);
    assert_not_found(store.update_org(&org("org_missing"), &fail("o1")).await);
    assert_not_found(store.update_user(&user("usr_missing", "org_a"), &fail("u1")).await);
    assert_not_found(store.delete_user(&uid("usr_missing"), &fail("u2")).await);
    assert_not_found(store.update_role(&role("role_missing", "org_a", "m"), &fail("r1")).await);
    assert_not_found(store.delete_role(&rid("role_missing"), &fail("r2")).await);
    assert!(store.insert_org(&org("org_a"), &fail("o2")).await.is_err(), "duplicate org id");
    assert!(store.insert_user(&user("usr_a", "org_a"), &fail("u3")).await.is_err(), "duplicate user id");
    assert!(store.insert_user(&user("usr_x", "org_missing"), &fail("u4")).await.is_err(), "unknown org");
    assert!(store.insert_role(&role("role_x", "org_a", "y"), &fail("r3")).await.is_err(), "duplicate role id");
    let orphan = key("kw_orphan", "usr_missing", "org_a");
    assert!(store.insert_key(&orphan, &no_limits(), &fail("k4")).await.is_err(), "unknown owner");
    assert!(
        store.insert_key(&key("kw_1", "usr_a", "org_a"), &no_limits(), &fail("k5")).await.is_err(),
        "duplicate key id"
    );
    let over = key("kw_over", "usr_a", "org_a");
    assert!(store.insert_key(&over, &limits(1, &[]), &fail("k6")).await.is_err(), "over the limit");

    let after = audit(store, &all_audit()).await;
    assert_eq!(after, before, "no failed write left an entry");
    assert_eq!(ids(&keys_by_id(store).await), ["kw_1"]);
    assert_eq!(store.list_users().await.unwrap().len(), 1);

    // The chain goes on from the last real entry.
    let ok = ev("org_a", "key.update", "kw_1");
    store.update_key(&key("kw_1", "usr_a", "org_a"), None, &ok).await.unwrap();
    let entries = org_audit(store, "org_a").await;
    assert_eq!(entries.last().map(|e| &e.prev_hash), before.0.last().map(|e| &e.hash));
    assert_chain(&entries, GENESIS_HASH);
}

// ---------------------------------------------------------------------------
// Durability helpers: a backend fills a store, reopens it and compares.
// ---------------------------------------------------------------------------

/// Everything a store holds, in a comparable form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub orgs: Vec<Org>,
    pub users: Vec<User>,
    pub roles: Vec<Role>,
    pub scopes: Vec<ScopeDef>,
    pub keys: Vec<KeyRecord>,
    pub audit: Vec<AuditEntry>,
    pub audit_orgs: Vec<OrgId>,
    pub anchors: Vec<String>,
    pub meta: Vec<Option<String>>,
}

pub async fn snapshot(store: &dyn Store) -> Snapshot {
    let mut orgs = store.list_orgs().await.unwrap();
    orgs.sort_by(|a, b| a.id.cmp(&b.id));
    let mut users = store.list_users().await.unwrap();
    users.sort_by(|a, b| a.id.cmp(&b.id));
    let mut scopes = store.list_scopes().await.unwrap();
    scopes.sort_by(|a, b| (&a.org_id, &a.name).cmp(&(&b.org_id, &b.name)));
    let mut anchors = vec![];
    for org in ["org_a", "org_b"] {
        anchors.push(store.audit_anchor(&oid(org)).await.unwrap());
    }
    let mut meta = vec![];
    for name in ["master_key_check", "signing_keys"] {
        meta.push(store.get_meta(name).await.unwrap());
    }
    Snapshot {
        orgs,
        users,
        roles: sorted_roles(store).await,
        scopes,
        keys: keys_by_id(store).await,
        audit: audit(store, &all_audit()).await.0,
        audit_orgs: store.audit_orgs().await.unwrap(),
        anchors,
        meta,
    }
}

/// Writes one of everything: orgs, users, roles, a scope, keys (one deleted,
/// one used), metadata, and a pruned audit chain.
pub async fn populate(store: &dyn Store) {
    store.init_meta("master_key_check", "check-1").await.unwrap();
    store.init_meta("signing_keys", "jwks-1").await.unwrap();
    assert!(store.swap_meta("signing_keys", "jwks-1", "jwks-2").await.unwrap());
    let old = |org: &str, action: &str, target: &str| AuditEvent { at: at(1, 1), ..ev(org, action, target) };
    assert!(
        store
            .bootstrap(
                &custom_org("org_a"),
                &User { roles: vec![rid("account_admin")], ..user("usr_a", "org_a") },
                &full_key("kw_admin", "usr_a", "org_a"),
                &[old("org_a", "org.create", "org_a"), old("org_a", "key.create", "kw_admin")],
            )
            .await
            .unwrap()
    );
    store.insert_org(&org("org_b"), &old("org_b", "org.create", "org_b")).await.unwrap();
    seed_user(store, &User { email: Some("b@example.com".into()), kind: UserKind::Service, ..user("usr_b", "org_b") })
        .await;
    store
        .insert_role(&deploy_role(), &AuditEvent { at: at(3, 0), ..ev("org_a", "role.create", "role_deploy") })
        .await
        .unwrap();
    let scope = ScopeDef {
        org_id: oid("org_b"),
        name: "crm".into(),
        description: "CRM".into(),
        resources: vec!["contacts".into()],
    };
    store.insert_scope(&scope, &ev("org_b", "scope.create", "crm")).await.unwrap();
    seed_key(store, &full_key("kw_b", "usr_b", "org_b")).await;
    seed_key(store, &key("kw_b_gone", "usr_b", "org_b")).await;
    assert!(delete_key(store, "kw_b_gone", "org_b").await);
    store
        .record_key_usage(&[KeyUsage { key_id: kid("kw_b"), at: at(9, 9), ip: Some(ip("2001:db8::9")) }])
        .await
        .unwrap();
    assert_eq!(store.prune_audit(&oid("org_a"), at(1, 2)).await.unwrap(), 2);
}

/// After a reopen: the chain continues, ids stay taken, and writes still work.
pub async fn keeps_working_after_reopen(store: &dyn Store, before: &Snapshot) {
    assert_eq!(&snapshot(store).await, before);
    store.ping().await.unwrap();
    let e = ev("org_a", "key.create", "kw_after");
    seed_key(store, &key("kw_after", "usr_a", "org_a")).await;
    let a = org_audit(store, "org_a").await;
    assert_eq!(a.last().map(|x| &x.event), Some(&e));
    assert_chain(&a, &before.anchors[0]);
    assert_chain(&org_audit(store, "org_b").await, GENESIS_HASH);
    let reuse = key("kw_b_gone", "usr_b", "org_b");
    assert_eq!(
        conflict(store.insert_key(&reuse, &no_limits(), &ev("org_b", "key.create", "kw_b_gone")).await),
        Conflict::KeyIdTaken
    );
    assert_eq!(store.init_meta("master_key_check", "check-2").await.unwrap(), "check-1");
}
