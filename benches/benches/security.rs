//! Security figures: what every protected request costs (token or API key verification plus a
//! cached permission and scope check, through the same `Authenticator` the runtime calls), and what a login costs
//! at the configured argon2id parameters, for a known user with the right password, a wrong
//! password, and an unknown user (the last two should cost about the same).
//!
//! Needs PostgreSQL (the provisioning ladder of `bigskies-scenarios`); each run uses a fresh
//! database. `cargo bench -p bigskies-benches --bench security`.

use std::hint::black_box;
use std::time::Duration;

use bigskies_core::auth::{Authenticator as _, Rights};
use bigskies_core::config::MIGRATOR;
use bigskies_scenarios::provision;
use bigskies_security::tokens::Subject;
use bigskies_security::{Secret, SecurityEngines, SecuritySettings};
use criterion::{Criterion, criterion_group, criterion_main};

const PASSWORD: &str = "bench-root-passphrase-0123";

fn security(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (db, engines) = rt.block_on(async {
        let p = provision::shared()
            .await
            .expect("PostgreSQL for the security bench");
        let db = p.fresh_database().await.expect("a fresh database");
        MIGRATOR.run(db.pool()).await.expect("migrations");
        let secret = Secret::new(format!("bench-secret-{}", "x".repeat(32)));
        let engines = SecurityEngines::new(db.pool().clone(), SecuritySettings::default(), &secret);
        engines
            .accounts
            .ensure_admin(Some(&Secret::new(PASSWORD)))
            .await
            .expect("admin");
        (db, engines)
    });
    let settings = engines.settings.get();
    let a = settings.argon2;
    eprintln!(
        "argon2id parameters: m={} KiB, t={}, p={}; token lifetime {:?}",
        a.memory_kib, a.iterations, a.parallelism, settings.token_duration
    );
    let auth = engines.authenticator();
    let admin = rt
        .block_on(engines.accounts.login("admin", PASSWORD))
        .expect("login");
    let token = engines
        .tokens
        .issue(Subject {
            user_id: admin.id,
            username: &admin.username,
            email: &admin.email,
            roles: vec!["admin".into()],
        })
        .expect("token")
        .token;
    // Warm the grant cache once, as a running coordinator would have it.
    rt.block_on(async {
        let p = auth.authenticate(&token).await.expect("valid token");
        auth.authorize(&p, "telescope", "control", Rights::Role)
            .await
            .expect("admin may control");
    });

    c.bench_function("security/verify_token_and_check_permission", |b| {
        b.to_async(&rt).iter(|| async {
            let p = auth.authenticate(black_box(&token)).await.expect("valid");
            auth.authorize(
                &p,
                black_box("telescope"),
                black_box("control"),
                Rights::Role,
            )
            .await
            .expect("allowed");
        })
    });
    // The same decision for an API key: resolve the key (cached, as in a running coordinator),
    // then its scopes and, for a Role permission, the owner's grants.
    let key = rt
        .block_on(engines.api_keys.create(
            admin.id,
            "bench",
            &["telescope:control".to_owned()],
            None,
        ))
        .expect("API key")
        .key;
    rt.block_on(async {
        let p = auth.authenticate(&key).await.expect("valid key");
        auth.authorize(&p, "telescope", "control", Rights::Role)
            .await
            .expect("in scope");
    });
    c.bench_function("security/verify_api_key_and_check_permission", |b| {
        b.to_async(&rt).iter(|| async {
            let p = auth.authenticate(black_box(&key)).await.expect("valid");
            auth.authorize(
                &p,
                black_box("telescope"),
                black_box("control"),
                Rights::Role,
            )
            .await
            .expect("allowed");
        })
    });
    c.bench_function("security/api_key_out_of_scope_refused", |b| {
        b.to_async(&rt).iter(|| async {
            let p = auth.authenticate(black_box(&key)).await.expect("valid");
            auth.authorize(&p, black_box("user"), black_box("delete"), Rights::Role)
                .await
                .expect_err("out of scope");
        })
    });
    c.bench_function("security/verify_token_only", |b| {
        b.iter(|| engines.tokens.verify(black_box(&token)).expect("valid"))
    });

    let mut g = c.benchmark_group("security/login");
    g.sample_size(20).measurement_time(Duration::from_secs(12));
    g.bench_function("success", |b| {
        b.to_async(&rt)
            .iter(|| async { engines.accounts.login("admin", PASSWORD).await.expect("ok") })
    });
    // Keep the admin account from locking itself during the failure runs.
    engines.settings.replace(SecuritySettings {
        max_failed_logins: u32::MAX,
        ..SecuritySettings::default()
    });
    g.bench_function("wrong_password", |b| {
        b.to_async(&rt).iter(|| async {
            engines
                .accounts
                .login("admin", "not the password")
                .await
                .expect_err("refused")
        })
    });
    g.bench_function("unknown_user", |b| {
        b.to_async(&rt).iter(|| async {
            engines
                .accounts
                .login("nobody", "not the password")
                .await
                .expect_err("refused")
        })
    });
    g.finish();
    drop(db);
}

criterion_group!(benches, security);
criterion_main!(benches);
