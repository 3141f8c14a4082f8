//! The provisioning ladder against this machine's real services and binaries.
//!
//! These tests need PostgreSQL and Mosquitto installed (binaries for the process rung, running
//! services for the local rung), which CI and the development machines have.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::path::Path;
use std::time::Duration;

use bigskies_scenarios::provision::{
    ENV_DATABASE_URL, ENV_MQTT_URL, Explicit, MosquittoProcess, MqttEndpoint, ProvisionEnv,
    ProvisionError, ProvisionOptions, Provisioned, Provisioner, Rung, Service,
};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use sqlx::Row;

/// Options as an empty environment gives them: the whole default ladder, nothing explicit.
fn default_options() -> ProvisionOptions {
    ProvisionOptions::from_env(&ProvisionEnv::default()).unwrap()
}

fn answers_tcp(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(1),
    )
    .is_ok()
}

/// Whether a process is still running (a zombie waiting for init to reap it counts as gone).
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next());
            state != Some('Z') && state != Some('X')
        }
        Err(_) => false,
    }
}

fn process_uid(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("Uid:"))
        .unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn passwd_uid(name: &str) -> Option<u32> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&name)).then(|| fields[2].parse().unwrap())
    })
}

fn we_are_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").unwrap().uid() == 0
}

/// Subscribes under `root`, publishes, and returns the payload that came back.
async fn mqtt_round_trip(endpoint: &MqttEndpoint, root: &str) -> Vec<u8> {
    let mut options = MqttOptions::new(
        format!("{root}-client"),
        endpoint.host.clone(),
        endpoint.port,
    );
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    let topic = format!("{root}/round-trip");
    client.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
    let payload = format!("hello from {root}").into_bytes();
    let received = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match eventloop.poll().await.unwrap() {
                Event::Incoming(Packet::SubAck(_)) => {
                    client
                        .publish(&topic, QoS::AtLeastOnce, false, payload.clone())
                        .await
                        .unwrap();
                }
                Event::Incoming(Packet::Publish(publish)) if publish.topic == topic => {
                    return publish.payload.to_vec();
                }
                _ => {}
            }
        }
    })
    .await
    .expect("the message came back within 10 s");
    let _ = client.disconnect().await;
    assert_eq!(received, payload);
    received
}

async fn database_exists(admin_url: &str, name: &str) -> bool {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(admin_url)
        .await
        .unwrap();
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    exists
}

#[tokio::test]
async fn default_ladder_picks_the_local_services_and_gives_isolated_fresh_databases() {
    let services = Provisioner::new(default_options())
        .provision()
        .await
        .unwrap();
    if answers_tcp(5432) && answers_tcp(1883) {
        assert_eq!(services.kind.database, Rung::LocalServices, "{services:?}");
        assert_eq!(services.kind.mqtt, Rung::LocalServices, "{services:?}");
        assert!(services.process_ids().is_empty());
    } else {
        assert_eq!(services.kind.database, Rung::LocalProcesses, "{services:?}");
    }
    // Every rung before the chosen one is on record, with a reason.
    for service in [Service::Database, Service::Mqtt] {
        let explicit = services
            .skipped
            .iter()
            .find(|attempt| attempt.service == service && attempt.rung == Rung::Explicit)
            .expect("the explicit rung is recorded");
        assert!(explicit.is_skipped());
        let variable = match service {
            Service::Database => ENV_DATABASE_URL,
            Service::Mqtt => ENV_MQTT_URL,
        };
        assert!(explicit.reason().contains(variable), "{explicit}");
        assert!(
            services
                .skipped
                .iter()
                .any(|attempt| attempt.service == service && attempt.rung == Rung::Containers)
        );
    }

    let first = services.fresh_database().await.unwrap();
    let second = services.fresh_database().await.unwrap();
    assert_ne!(first.name(), second.name());
    for database in [&first, &second] {
        let current: String = sqlx::query_scalar("SELECT current_database()")
            .fetch_one(database.pool())
            .await
            .unwrap();
        assert_eq!(current, database.name());
        assert!(
            database.url().ends_with(database.name()),
            "{}",
            database.name()
        );
    }
    sqlx::query("CREATE TABLE only_in_first (id int)")
        .execute(first.pool())
        .await
        .unwrap();
    sqlx::query("INSERT INTO only_in_first VALUES (1)")
        .execute(first.pool())
        .await
        .unwrap();
    let in_second: Option<String> = sqlx::query_scalar("SELECT to_regclass('only_in_first')::text")
        .fetch_one(second.pool())
        .await
        .unwrap();
    assert_eq!(
        in_second, None,
        "the second database must not see the first's table"
    );

    // Both are dropped: one through Drop (with a pool connection still open), one explicitly.
    let (first_name, second_name) = (first.name().to_owned(), second.name().to_owned());
    assert!(database_exists(&services.database_url, &first_name).await);
    drop(first);
    assert!(!database_exists(&services.database_url, &first_name).await);
    second.cleanup().await.unwrap();
    assert!(!database_exists(&services.database_url, &second_name).await);

    let (root_a, root_b) = (services.topic_root(), services.topic_root());
    assert_ne!(root_a, root_b);
    mqtt_round_trip(&services.mqtt, &root_a).await;
}

#[tokio::test]
async fn process_rung_runs_private_postgres_and_mosquitto_and_removes_them_on_drop() {
    let options = default_options().with_rungs([Rung::LocalProcesses]);
    let services = Provisioner::new(options).provision().await.unwrap();
    assert_eq!(services.kind.database, Rung::LocalProcesses);
    assert_eq!(services.kind.mqtt, Rung::LocalProcesses);
    assert_ne!(services.mqtt.port, 1883);
    assert!(
        !services.database_url.contains(":5432/"),
        "{}",
        services.database_url
    );

    let pids = services.process_ids();
    assert_eq!(pids.len(), 2, "{services:?}");
    assert!(pids.iter().all(|pid| process_alive(*pid)));
    if we_are_root() {
        let postgres_uid = passwd_uid("postgres").expect("a postgres user exists");
        assert_eq!(
            process_uid(pids[0]),
            postgres_uid,
            "postgres must not run as root"
        );
    }

    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&services.database_url)
        .await
        .unwrap();
    let row = sqlx::query(
        "SELECT current_setting('data_directory'), current_setting('fsync'), \
         current_setting('port')::int",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let data_dir: String = row.get(0);
    let fsync: String = row.get(1);
    let port: i32 = row.get(2);
    assert_eq!(fsync, "off");
    assert!(Path::new(&data_dir).exists());
    pool.close().await;

    let database = services.fresh_database().await.unwrap();
    let answer: i32 = sqlx::query_scalar("SELECT 40 + 2")
        .fetch_one(database.pool())
        .await
        .unwrap();
    assert_eq!(answer, 42);
    drop(database);

    mqtt_round_trip(&services.mqtt, &services.topic_root()).await;

    let mqtt_port = services.mqtt.port;
    drop(services);
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} is still there"
        );
    }
    assert!(!Path::new(&data_dir).exists(), "{data_dir} was not removed");
    assert!(!answers_tcp(u16::try_from(port).unwrap()));
    assert!(!answers_tcp(mqtt_port));
}

#[tokio::test]
async fn mosquitto_process_can_be_killed_and_restarted_on_the_same_port() {
    let mut broker = MosquittoProcess::start().await.unwrap();
    let endpoint = broker.endpoint();
    assert_eq!(endpoint.host, "127.0.0.1");
    let first_pid = broker.pid().unwrap();
    mqtt_round_trip(
        &endpoint,
        &bigskies_scenarios::provision::unique_topic_root(),
    )
    .await;

    broker.kill();
    assert!(!broker.is_running());
    assert_eq!(broker.pid(), None);
    assert!(!Path::new(&format!("/proc/{first_pid}")).exists());
    assert!(!answers_tcp(endpoint.port));

    broker.restart().await.unwrap();
    assert!(broker.is_running());
    assert_eq!(broker.endpoint(), endpoint, "restart keeps the port");
    let second_pid = broker.pid().unwrap();
    assert_ne!(first_pid, second_pid);
    mqtt_round_trip(
        &endpoint,
        &bigskies_scenarios::provision::unique_topic_root(),
    )
    .await;

    // Restarting a running broker stops it first.
    broker.restart().await.unwrap();
    assert!(!Path::new(&format!("/proc/{second_pid}")).exists());
    mqtt_round_trip(
        &endpoint,
        &bigskies_scenarios::provision::unique_topic_root(),
    )
    .await;

    let last_pid = broker.pid().unwrap();
    drop(broker);
    assert!(!Path::new(&format!("/proc/{last_pid}")).exists());
    assert!(!answers_tcp(endpoint.port));
}

fn unused_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn explicit_urls_that_do_not_answer_fail_clearly_instead_of_falling_through() {
    let dead = unused_port();
    let mut options = default_options();
    options.connect_timeout = Duration::from_secs(2);
    options.explicit_database_url = Some(Explicit {
        source: ENV_DATABASE_URL,
        value: format!("postgres://postgres:sekret@127.0.0.1:{dead}/postgres"),
    });
    let error = Provisioner::new(options.clone())
        .provision()
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(
            error,
            ProvisionError::ExplicitUnreachable {
                service: Service::Database,
                var: ENV_DATABASE_URL,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(text.contains(&format!("127.0.0.1:{dead}")), "{text}");
    assert!(text.contains(ENV_DATABASE_URL), "{text}");
    assert!(!text.contains("sekret"), "the password leaked: {text}");

    // A working explicit database, but a broker URL where nothing listens.
    options.explicit_database_url = Some(Explicit {
        source: ENV_DATABASE_URL,
        value: options.local_database_url.clone(),
    });
    options.explicit_mqtt = Some(Explicit {
        source: ENV_MQTT_URL,
        value: MqttEndpoint::new("127.0.0.1", dead),
    });
    let error = Provisioner::new(options).provision().await.unwrap_err();
    assert!(
        matches!(
            error,
            ProvisionError::ExplicitUnreachable {
                service: Service::Mqtt,
                var: ENV_MQTT_URL,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains(&format!("mqtt://127.0.0.1:{dead}")),
        "{error}"
    );
}

#[tokio::test]
async fn explicit_urls_that_answer_are_used_as_given() {
    let options = ProvisionOptions::from_env(&ProvisionEnv::from_lookup(|name| match name {
        "BIGSKIES_DATABASE_URL" => Some("postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
        "BIGSKIES_MQTT_URL" => Some("mqtt://127.0.0.1:1883".to_owned()),
        _ => None,
    }))
    .unwrap();
    let services = Provisioner::new(options).provision().await.unwrap();
    assert_eq!(services.kind.database, Rung::Explicit);
    assert_eq!(services.kind.mqtt, Rung::Explicit);
    assert!(services.skipped.is_empty(), "{:?}", services.skipped);
    assert_eq!(services.mqtt, MqttEndpoint::new("127.0.0.1", 1883));
    let database = services.fresh_database().await.unwrap();
    database.cleanup().await.unwrap();
}

#[tokio::test]
async fn when_no_rung_works_the_error_lists_the_attempts_and_what_to_install() {
    let dead = unused_port();
    let mut options = default_options().with_rungs([Rung::LocalServices, Rung::LocalProcesses]);
    options.local_database_url = format!("postgres://postgres@127.0.0.1:{dead}/postgres");
    options.postgres_bin_dir = Some("/nonexistent/postgresql/bin".into());
    let error = Provisioner::new(options).provision().await.unwrap_err();
    let ProvisionError::NothingAnswered { service, attempts } = &error else {
        panic!("unexpected error: {error:?}");
    };
    assert_eq!(*service, Service::Database);
    let rungs: Vec<Rung> = attempts.iter().map(|attempt| attempt.rung).collect();
    assert_eq!(rungs, [Rung::LocalServices, Rung::LocalProcesses]);
    let text = error.to_string();
    assert!(text.contains(&format!("127.0.0.1:{dead}")), "{text}");
    assert!(text.contains("/nonexistent/postgresql/bin"), "{text}");
    assert!(
        text.contains("apt-get install postgresql-15 mosquitto"),
        "{text}"
    );
}

#[tokio::test]
async fn the_shared_provision_is_created_once() {
    let first: &'static Provisioned = bigskies_scenarios::provision::shared().await.unwrap();
    let second = bigskies_scenarios::provision::shared().await.unwrap();
    assert!(std::ptr::eq(first, second));
    let database = first.fresh_database().await.unwrap();
    sqlx::query("SELECT 1")
        .execute(database.pool())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_fresh_databases_can_be_created_and_dropped_at_once() {
    let services = bigskies_scenarios::provision::shared().await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        tasks.spawn(async move {
            let database = services.fresh_database().await.unwrap();
            sqlx::query("CREATE TABLE t (id int)")
                .execute(database.pool())
                .await
                .unwrap();
            let name = database.name().to_owned();
            drop(database);
            name
        });
    }
    let names = tasks.join_all().await;
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 8);
    for name in names {
        assert!(
            !database_exists(&services.database_url, &name).await,
            "{name} is left"
        );
    }
}

/// In the child process: provisions private servers, reports them and exits without
/// dropping anything, like a test binary whose `static` provision never drops.
fn orphan_servers() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let options = default_options().with_rungs([Rung::LocalProcesses]);
        let services = Provisioner::new(options).provision().await.unwrap();
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&services.database_url)
            .await
            .unwrap();
        let data_dir: String = sqlx::query_scalar("SELECT current_setting('data_directory')")
            .fetch_one(&pool)
            .await
            .unwrap();
        let pids: Vec<String> = services.process_ids().iter().map(u32::to_string).collect();
        println!(
            "ORPHAN {} {} {}",
            pids.join(","),
            services.mqtt.port,
            data_dir
        );
        std::process::exit(0);
    });
}

#[test]
fn owner_exit_stops_private_servers_and_removes_their_files() {
    // The test runs itself again in a child process, which provisions and exits.
    if std::env::var_os("BST_ORPHAN_HELPER").is_some() {
        orphan_servers();
        return;
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "owner_exit_stops_private_servers_and_removes_their_files",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("BST_ORPHAN_HELPER", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|line| line.split_once("ORPHAN ").map(|(_, rest)| rest))
        .unwrap_or_else(|| {
            panic!(
                "helper did not report; stdout:\n{stdout}\nstderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    let mut parts = line.splitn(3, ' ');
    let pids: Vec<u32> = parts
        .next()
        .unwrap()
        .split(',')
        .map(|pid| pid.parse().unwrap())
        .collect();
    let mqtt_port: u16 = parts.next().unwrap().parse().unwrap();
    let data_dir = parts.next().unwrap().to_owned();
    assert_eq!(pids.len(), 2);

    // The supervisors notice their owner is gone and clean up on their own.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let running: Vec<u32> = pids
            .iter()
            .copied()
            .filter(|pid| process_alive(*pid))
            .collect();
        let dir_left = Path::new(&data_dir).exists();
        if running.is_empty() && !dir_left {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after 20 s still running: {running:?}, data directory left: {dir_left}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let temp_dir = Path::new(&data_dir).parent().unwrap();
    assert!(!temp_dir.exists(), "{} was not removed", temp_dir.display());
    assert!(!answers_tcp(mqtt_port));
}

#[cfg(feature = "containers")]
#[tokio::test]
async fn the_container_rung_is_skipped_without_an_engine_and_passed_over_without_images() {
    let engine_configured =
        std::env::var_os("DOCKER_HOST").is_some() || Path::new("/var/run/docker.sock").exists();
    let options = default_options().with_rungs([Rung::Containers, Rung::LocalServices]);
    let services = Provisioner::new(options).provision().await.unwrap();
    if engine_configured {
        // An engine that has the images runs them. One with no images and no registry (these
        // machines: nothing can be pulled) fails the rung, which says why, and the ladder goes
        // on to the next rung.
        if services.kind.database != Rung::Containers {
            assert_eq!(services.kind.database, Rung::LocalServices, "{services:?}");
            let attempt = services
                .skipped
                .iter()
                .find(|a| a.service == Service::Database && a.rung == Rung::Containers)
                .expect("the container rung was tried");
            assert!(
                !attempt.is_skipped(),
                "tried and failed, not skipped: {attempt}"
            );
            assert!(attempt.reason().contains("image"), "{attempt}");
        }
        return;
    }
    assert_eq!(services.kind.database, Rung::LocalServices, "{services:?}");
    assert_eq!(services.kind.mqtt, Rung::LocalServices, "{services:?}");
    assert!(services.container_ids().is_empty());
    for service in [Service::Database, Service::Mqtt] {
        let attempt = services
            .skipped
            .iter()
            .find(|attempt| attempt.service == service && attempt.rung == Rung::Containers)
            .expect("the container rung was tried");
        assert!(attempt.is_skipped(), "{attempt}");
        assert!(attempt.reason().contains("Docker"), "{attempt}");
    }
}

/// Opens a connection to `database` and sends the startup message, leaving the server waiting
/// in its password exchange (as a pool's connection task is for a moment). Returns the socket
/// and whether the server did ask for a password.
async fn login_in_progress(url: &str, database: &str) -> (tokio::net::TcpStream, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let mut stream = tokio::net::TcpStream::connect((options.get_host(), options.get_port()))
        .await
        .unwrap();
    // Protocol 3.0 startup message: length, version, then name/value pairs and a final NUL.
    let mut body = 196_608_u32.to_be_bytes().to_vec();
    for (key, value) in [("user", options.get_username()), ("database", database)] {
        body.extend_from_slice(key.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut message = u32::try_from(body.len() + 4)
        .unwrap()
        .to_be_bytes()
        .to_vec();
    message.extend_from_slice(&body);
    stream.write_all(&message).await.unwrap();
    // An authentication request: 'R', length, then the method (0 is "no password needed").
    let mut head = [0_u8; 9];
    stream.read_exact(&mut head).await.unwrap();
    assert_eq!(head[0], b'R', "{head:?}");
    let method = u32::from_be_bytes([head[5], head[6], head[7], head[8]]);
    (stream, method != 0)
}

/// `DROP DATABASE` waits for every backend of the database, one still in its password exchange
/// included, and that exchange goes on only when the client's task runs. Dropping a test
/// database must therefore not stop the runtime that such a client lives on: it once stalled
/// whole scenario suites for the server's 60 s `authentication_timeout` (SCRAM logins, two
/// runtime threads both blocked in `Drop`).
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn dropping_a_database_lets_the_runtime_finish_a_login_in_progress() {
    let services = Provisioner::new(default_options())
        .provision()
        .await
        .unwrap();
    let database = services.fresh_database().await.unwrap();
    let name = database.name().to_owned();
    let (stream, asked_for_password) = login_in_progress(database.url(), &name).await;
    if !asked_for_password {
        eprintln!(
            "this server lets the test user in without a password: no login stays in progress, \
             so only the drop itself is checked"
        );
    }
    // A task of the runtime's only worker ends the login a moment later, as a pool would.
    let login = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(stream);
    });
    let started = std::time::Instant::now();
    // Dropped on that same worker.
    tokio::spawn(async move { drop(database) }).await.unwrap();
    let took = started.elapsed();
    login.await.unwrap();
    assert!(
        took < Duration::from_secs(20),
        "dropping the database took {took:?}"
    );
    assert!(!database_exists(&services.database_url, &name).await);
}
