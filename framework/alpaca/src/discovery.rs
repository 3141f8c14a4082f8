//! Alpaca UDP discovery (PROTOCOL.md §3).
//!
//! Responder: [`bind_discovery`] binds `0.0.0.0:port` (SO_REUSEADDR + SO_REUSEPORT, broadcast
//! on) and, when IPv6 works, `[::]:port` joined to `ff12::a1:9aca`; [`BoundDiscovery::run`]
//! answers every datagram containing `alpacadiscovery` + a version character with
//! `{"AlpacaPort": n}` sent back to the sender, until the shutdown future completes.
//!
//! Client: [`discover`] sends `alpacadiscovery1` to 255.255.255.255 (and any explicit
//! addresses, and optionally the IPv6 group), collects replies for a window and dedupes them.

use std::collections::HashSet;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

/// The default discovery port.
pub const DISCOVERY_PORT: u16 = 32227;
/// The IPv6 discovery multicast group.
pub const DISCOVERY_MULTICAST_V6: Ipv6Addr = Ipv6Addr::new(0xff12, 0, 0, 0, 0, 0, 0xa1, 0x9aca);
/// What a version-1 client sends.
pub const DISCOVERY_REQUEST: &[u8] = b"alpacadiscovery1";
const DISCOVERY_PREFIX: &[u8] = b"alpacadiscovery";

/// Whether a datagram is a discovery request: it contains `alpacadiscovery` followed by a
/// version character (`1`–`9`, `A`–`Z`). Like the reference responder we do not insist that
/// the text starts the datagram.
pub fn is_discovery_request(datagram: &[u8]) -> bool {
    datagram.windows(DISCOVERY_PREFIX.len() + 1).any(|w| {
        w.starts_with(DISCOVERY_PREFIX)
            && matches!(w[DISCOVERY_PREFIX.len()], b'1'..=b'9' | b'A'..=b'Z')
    })
}

/// The reply body for an HTTP port.
pub fn discovery_reply(http_port: u16) -> Vec<u8> {
    format!("{{\"AlpacaPort\":{http_port}}}").into_bytes()
}

/// Reads `AlpacaPort` from a reply, accepting any key casing and a number or numeric string.
pub fn parse_discovery_reply(datagram: &[u8]) -> Option<u16> {
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(datagram).ok()?;
    let value = map
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("AlpacaPort"))
        .map(|(_, v)| v)?;
    let port = match value {
        serde_json::Value::Number(n) => n.as_u64()?,
        serde_json::Value::String(s) => s.trim().parse::<u64>().ok()?,
        _ => return None,
    };
    u16::try_from(port).ok().filter(|p| *p != 0)
}

fn shared_socket(domain: Domain) -> io::Result<Socket> {
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    // Several Alpaca servers on one host must be able to share the discovery port.
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn bind_v4(port: u16) -> io::Result<UdpSocket> {
    let socket = shared_socket(Domain::IPV4)?;
    socket.set_broadcast(true)?;
    socket.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).into())?;
    UdpSocket::from_std(socket.into())
}

fn bind_v6(port: u16) -> io::Result<UdpSocket> {
    let socket = shared_socket(Domain::IPV6)?;
    socket.set_only_v6(true)?;
    socket.bind(&SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0)).into())?;
    // Interface 0 lets the kernel choose; enough for hosts with one IPv6 link.
    socket.join_multicast_v6(&DISCOVERY_MULTICAST_V6, 0)?;
    UdpSocket::from_std(socket.into())
}

/// A discovery responder with its sockets bound, not yet answering.
#[derive(Debug)]
pub struct BoundDiscovery {
    v4: UdpSocket,
    v6: Option<UdpSocket>,
    http_port: u16,
}

/// Binds the responder on `port` (0 = ephemeral, for tests) to advertise `http_port`.
/// IPv4 failure is an error; IPv6 is optional and skipped (with a log line) if unavailable.
/// The IPv6 socket uses the same port number as the IPv4 one.
pub async fn bind_discovery(port: u16, http_port: u16) -> io::Result<BoundDiscovery> {
    let v4 = bind_v4(port)?;
    let bound_port = v4.local_addr()?.port();
    let v6 = match bind_v6(bound_port) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::info!(port = bound_port, error = %e, "IPv6 discovery unavailable; answering on IPv4 only");
            None
        }
    };
    Ok(BoundDiscovery { v4, v6, http_port })
}

impl BoundDiscovery {
    /// The bound IPv4 address (`0.0.0.0:port`).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.v4.local_addr()
    }

    /// The bound IPv6 address, if IPv6 discovery is active.
    pub fn local_addr_v6(&self) -> Option<SocketAddr> {
        self.v6.as_ref().and_then(|s| s.local_addr().ok())
    }

    /// The advertised HTTP port.
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// Answers discovery requests until `shutdown` completes. Per-datagram errors are logged
    /// and do not stop the responder.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let reply = discovery_reply(self.http_port);
        let mut shutdown = std::pin::pin!(shutdown);
        let mut buf4 = [0u8; 1024];
        let mut buf6 = [0u8; 1024];
        loop {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                r = self.v4.recv_from(&mut buf4) => answer(&self.v4, r, &buf4, &reply).await,
                r = recv_opt(self.v6.as_ref(), &mut buf6) => {
                    if let Some(socket) = self.v6.as_ref() {
                        answer(socket, r, &buf6, &reply).await;
                    }
                }
            }
        }
    }
}

async fn recv_opt(socket: Option<&UdpSocket>, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

async fn answer(
    socket: &UdpSocket,
    received: io::Result<(usize, SocketAddr)>,
    buf: &[u8],
    reply: &[u8],
) {
    match received {
        Ok((len, from)) if is_discovery_request(&buf[..len]) => {
            if let Err(e) = socket.send_to(reply, from).await {
                tracing::debug!(%from, error = %e, "could not answer a discovery request");
            }
        }
        Ok(_) => {}
        // ICMP port-unreachable from an earlier reply surfaces here on some systems; pause
        // briefly so a persistent error cannot turn the loop into a busy spin.
        Err(e) => {
            tracing::debug!(error = %e, "discovery receive failed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// How [`discover`] searches.
#[derive(Clone, Debug)]
pub struct DiscoveryOptions {
    /// Discovery port the servers listen on.
    pub port: u16,
    /// Send to 255.255.255.255.
    pub ipv4_broadcast: bool,
    /// Send to the IPv6 group `ff12::a1:9aca`.
    pub ipv6_multicast: bool,
    /// Also send to these hosts (unicast), on `port`.
    pub targets: Vec<IpAddr>,
    /// How long to collect replies.
    pub window: Duration,
}

impl Default for DiscoveryOptions {
    fn default() -> Self {
        Self {
            port: DISCOVERY_PORT,
            ipv4_broadcast: true,
            ipv6_multicast: false,
            targets: Vec::new(),
            window: Duration::from_secs(1),
        }
    }
}

/// A server that answered discovery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DiscoveredServer {
    /// The address the reply came from.
    pub addr: IpAddr,
    /// Its Alpaca HTTP port.
    pub alpaca_port: u16,
}

impl DiscoveredServer {
    /// `http://addr:port`, with IPv6 addresses bracketed.
    pub fn base_url(&self) -> String {
        format!("http://{}", SocketAddr::new(self.addr, self.alpaca_port))
    }
}

/// Searches for Alpaca servers. Fails only if no socket could be opened or nothing could be
/// sent at all; individual send failures (e.g. no broadcast route) are skipped.
pub async fn discover(opts: &DiscoveryOptions) -> io::Result<Vec<DiscoveredServer>> {
    let mut v4_targets: Vec<SocketAddr> = Vec::new();
    let mut v6_targets: Vec<SocketAddr> = Vec::new();
    if opts.ipv4_broadcast {
        v4_targets.push(SocketAddr::new(IpAddr::V4(Ipv4Addr::BROADCAST), opts.port));
    }
    if opts.ipv6_multicast {
        v6_targets.push(SocketAddr::new(
            IpAddr::V6(DISCOVERY_MULTICAST_V6),
            opts.port,
        ));
    }
    for ip in &opts.targets {
        let target = SocketAddr::new(*ip, opts.port);
        if ip.is_ipv4() {
            v4_targets.push(target)
        } else {
            v6_targets.push(target)
        }
    }

    let v4 = if v4_targets.is_empty() {
        None
    } else {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_broadcast(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0).into())?;
        Some(UdpSocket::from_std(socket.into())?)
    };
    let v6 = if v6_targets.is_empty() {
        None
    } else {
        match UdpSocket::bind(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0)).await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::debug!(error = %e, "no IPv6 socket for discovery");
                None
            }
        }
    };

    let mut sent = 0usize;
    let mut last_error = None;
    for (socket, targets) in [(v4.as_ref(), &v4_targets), (v6.as_ref(), &v6_targets)] {
        let Some(socket) = socket else { continue };
        for target in targets {
            match socket.send_to(DISCOVERY_REQUEST, target).await {
                Ok(_) => sent += 1,
                Err(e) => {
                    tracing::debug!(%target, error = %e, "discovery send failed");
                    last_error = Some(e);
                }
            }
        }
    }
    if sent == 0 {
        return Err(last_error.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no discovery target")
        }));
    }

    let mut found = Vec::new();
    let mut seen = HashSet::new();
    let deadline = tokio::time::Instant::now() + opts.window;
    let mut buf4 = [0u8; 1024];
    let mut buf6 = [0u8; 1024];
    loop {
        let received = tokio::select! {
            () = tokio::time::sleep_until(deadline) => break,
            r = recv_opt(v4.as_ref(), &mut buf4) => r.map(|(n, from)| (buf4[..n].to_vec(), from)),
            r = recv_opt(v6.as_ref(), &mut buf6) => r.map(|(n, from)| (buf6[..n].to_vec(), from)),
        };
        match received {
            Ok((datagram, from)) => {
                if let Some(alpaca_port) = parse_discovery_reply(&datagram) {
                    let server = DiscoveredServer {
                        addr: from.ip(),
                        alpaca_port,
                    };
                    if seen.insert(server) {
                        found.push(server);
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "discovery receive failed"),
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    #[test]
    fn requests_need_the_prefix_and_a_version_character() {
        assert!(is_discovery_request(b"alpacadiscovery1"));
        assert!(is_discovery_request(b"xxalpacadiscoveryB and more"));
        assert!(!is_discovery_request(b"alpacadiscovery"));
        assert!(!is_discovery_request(b"alpacadiscovery0"));
        assert!(!is_discovery_request(b"ALPACADISCOVERY1"));
        assert!(!is_discovery_request(b""));
    }

    #[test]
    fn replies_are_exact_and_parsed_leniently() {
        assert_eq!(discovery_reply(32323), b"{\"AlpacaPort\":32323}");
        assert_eq!(
            parse_discovery_reply(b"{\"AlpacaPort\":32323}"),
            Some(32323)
        );
        assert_eq!(
            parse_discovery_reply(b"{\"alpacaport\": \"4567\"}"),
            Some(4567)
        );
        assert_eq!(parse_discovery_reply(b"{\"AlpacaPort\":70000}"), None);
        assert_eq!(parse_discovery_reply(b"{\"AlpacaPort\":0}"), None);
        assert_eq!(parse_discovery_reply(b"not json"), None);
    }

    async fn start_responder(
        port: u16,
        http_port: u16,
    ) -> (
        u16,
        Option<SocketAddr>,
        oneshot::Sender<()>,
        tokio::task::JoinHandle<io::Result<()>>,
    ) {
        let bound = bind_discovery(port, http_port)
            .await
            .expect("bind discovery");
        let port = bound.local_addr().expect("addr").port();
        let v6 = bound.local_addr_v6();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(bound.run(async move {
            let _ = stopped.await;
        }));
        (port, v6, stop, task)
    }

    fn loopback_options(port: u16, target: IpAddr) -> DiscoveryOptions {
        DiscoveryOptions {
            port,
            ipv4_broadcast: false,
            ipv6_multicast: false,
            targets: vec![target],
            window: Duration::from_millis(400),
        }
    }

    #[tokio::test]
    async fn responder_and_client_find_each_other_over_loopback() {
        let (port, _, stop, task) = start_responder(0, 4321).await;
        assert_ne!(port, 0);
        let found = discover(&loopback_options(port, IpAddr::V4(Ipv4Addr::LOCALHOST)))
            .await
            .expect("discover");
        assert_eq!(
            found,
            vec![DiscoveredServer {
                addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
                alpaca_port: 4321
            }]
        );
        assert_eq!(found[0].base_url(), "http://127.0.0.1:4321");
        let _ = stop.send(());
        let result = tokio::time::timeout(Duration::from_secs(5), task).await;
        assert!(
            matches!(result, Ok(Ok(Ok(())))),
            "responder stops on shutdown"
        );
    }

    #[tokio::test]
    async fn duplicate_replies_are_collapsed() {
        let (port, _, _stop, _task) = start_responder(0, 1111).await;
        let mut opts = loopback_options(port, IpAddr::V4(Ipv4Addr::LOCALHOST));
        // Ask twice; the responder answers twice; the list holds it once.
        opts.targets.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let found = discover(&opts).await.expect("discover");
        assert_eq!(found.len(), 1);
    }

    #[tokio::test]
    async fn two_responders_can_share_the_port() {
        let (port, _, _stop1, _task1) = start_responder(0, 1001).await;
        let (port2, _, _stop2, _task2) = start_responder(port, 1002).await;
        assert_eq!(port, port2);
    }

    #[tokio::test]
    async fn other_datagrams_get_no_answer() {
        let (port, _, _stop, _task) = start_responder(0, 2222).await;
        let probe = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        probe
            .send_to(b"hello there", ("127.0.0.1", port))
            .await
            .expect("send");
        let mut buf = [0u8; 64];
        let answer =
            tokio::time::timeout(Duration::from_millis(300), probe.recv_from(&mut buf)).await;
        assert!(answer.is_err(), "no reply to a non-discovery datagram");
        probe
            .send_to(DISCOVERY_REQUEST, ("127.0.0.1", port))
            .await
            .expect("send");
        let (n, _) = tokio::time::timeout(Duration::from_secs(2), probe.recv_from(&mut buf))
            .await
            .expect("a reply arrives")
            .expect("recv");
        assert_eq!(&buf[..n], b"{\"AlpacaPort\":2222}");
    }

    #[tokio::test]
    async fn ipv6_loopback_works_when_ipv6_is_available() {
        let (port, v6, _stop, _task) = start_responder(0, 3333).await;
        let Some(v6) = v6 else {
            // No IPv6 on this host: the responder said so by not binding; nothing more to test.
            return;
        };
        assert_eq!(v6.port(), port, "IPv6 uses the same port number");
        let found = discover(&loopback_options(port, IpAddr::V6(Ipv6Addr::LOCALHOST)))
            .await
            .expect("discover");
        assert_eq!(
            found,
            vec![DiscoveredServer {
                addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
                alpaca_port: 3333
            }]
        );
        assert_eq!(found[0].base_url(), "http://[::1]:3333");
    }

    #[tokio::test]
    async fn nothing_to_send_to_is_an_error() {
        let opts = DiscoveryOptions {
            ipv4_broadcast: false,
            ..DiscoveryOptions::default()
        };
        assert!(discover(&opts).await.is_err());
    }
}
