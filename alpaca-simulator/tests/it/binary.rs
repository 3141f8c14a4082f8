//! The `alpaca-simulator` executable: configuration errors exit 64, every bound address is
//! logged, discovery answers with the HTTP port, and SIGTERM drains and exits cleanly.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_alpaca-simulator");

/// A config file that removes itself.
struct TempConfig(PathBuf);

impl TempConfig {
    fn new(name: &str, text: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("alpaca-sim-{}-{name}.toml", std::process::id()));
        std::fs::write(&path, text).expect("temp file written");
        Self(path)
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("binary runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn unknown_config_keys_exit_64() {
    let cfg = TempConfig::new("unknown", "[server]\nhttp_port = 1\nbogus_key = 2\n");
    let (code, _, err) = run(&["--config", cfg.0.to_str().expect("utf-8 path")]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("bogus_key"), "{err}");
}

#[test]
fn every_config_problem_is_reported_before_exiting_64() {
    let cfg = TempConfig::new(
        "invalid",
        "[clock]\nrate = -1.0\n[devices.dome]\ncount = 5000\n[faults.\"rotator/3\"]\ndrop_rate = 0.5\n[devices.filterwheel.model]\nnames = []\n",
    );
    let (code, _, err) = run(&["--config", cfg.0.to_str().expect("utf-8 path")]);
    assert_eq!(code, Some(64), "{err}");
    for needle in [
        "clock.rate",
        "devices.dome.count",
        "rotator/3",
        "filter wheel",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in {err}");
    }
}

#[test]
fn bad_flags_exit_64_and_help_exits_0() {
    assert_eq!(run(&["--no-such-flag"]).0, Some(64));
    assert_eq!(run(&["--port", "http"]).0, Some(64));
    assert_eq!(run(&["--help"]).0, Some(0));
}

#[test]
fn print_config_shows_the_effective_configuration() {
    let (code, out, err) = run(&["--print-config", "--port", "4242", "--telescopes", "3"]);
    assert_eq!(code, Some(0), "{err}");
    let cfg: alpaca_simulator::config::SimulatorConfig =
        toml::from_str(&out).expect("printed config parses back");
    assert_eq!(cfg.server.http_port, 4242);
    assert_eq!(cfg.devices.telescope.count, 3);
}

/// `key=value` from a log line (values end at white space).
fn field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!("{key}="))? + key.len() + 1;
    Some(line[start..].split_whitespace().next()?.to_owned())
}

#[tokio::test]
async fn the_binary_logs_its_addresses_answers_discovery_and_stops_on_sigterm() {
    let mut child = Command::new(BIN)
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--discovery-port",
            "0",
            "--stepped",
        ])
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut http, mut discovery) = (None, None);
    let mut log = Vec::new();
    while http.is_none() || discovery.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("start-up logs");
        http = http.or_else(|| field(&line, "http_addr"));
        if line.contains("(IPv4)") {
            discovery = field(&line, "discovery_addr");
        }
        log.push(line);
    }
    let http: std::net::SocketAddr = http
        .and_then(|a| a.parse().ok())
        .expect("http address logged");
    let disc_port: u16 = discovery
        .and_then(|a| a.rsplit(':').next()?.parse().ok())
        .expect("discovery port logged");

    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("udp");
    udp.send_to(b"alpacadiscovery1", ("127.0.0.1", disc_port))
        .await
        .expect("sent");
    let mut buf = [0u8; 256];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), udp.recv_from(&mut buf))
        .await
        .expect("discovery answers")
        .expect("datagram");
    let reply: serde_json::Value = serde_json::from_slice(&buf[..n]).expect("JSON reply");
    assert_eq!(reply["AlpacaPort"], http.port(), "{reply}");

    let body = reqwest::get(format!("http://{http}/management/apiversions"))
        .await
        .expect("served")
        .text()
        .await
        .unwrap_or_default();
    assert!(body.contains("[1]"), "{body}");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "clean exit after SIGTERM: {status:?}");
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(2)) {
        log.push(line);
    }
    assert!(log.iter().any(|l| l.contains("SIGTERM")), "{log:#?}");
}
