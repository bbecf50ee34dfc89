//! The SIP server shell: binds the configured UDP and TCP listeners, runs
//! the sans-IO [`UserAgent`] in one driver task, and binds an RTP socket
//! pair for each call's port. When a call starts, its sockets go to the
//! call path ([`crate::call::shell`]), which runs the auto attendant and
//! the call's media in a task of its own and asks the driver to hang up
//! calls it is done with.
//!
//! The driver loop is the whole of the glue: receive from a transport,
//! hand to the core, drain its transmits and events, sleep until the
//! core's next deadline. The core is owned by that one task, so no lock
//! guards it and nothing waits while holding one.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::call::shell::{
    CallPath, CallPathProbe, CallPathSettings, CoreRequest, RtpSockets, Services,
};
use crate::media::ports::{PortAllocator, RtpPort, RtpPortPool};
use crate::sip::transport::tcp::{self, TcpLimits};
use crate::sip::transport::{udp, ConnId, Inbound, Transmit, Transport};
use crate::sip::ua::{Counters, UaEvent, UaSettings, UserAgent};

/// Everything the server needs, already validated.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// Listeners to bind; port 0 picks a free port.
    pub listen: Vec<(Transport, SocketAddr)>,
    /// The user agent core's settings.
    pub ua: UaSettings,
    /// Address RTP sockets bind to.
    pub rtp_bind_address: IpAddr,
    /// Lowest RTP port.
    pub rtp_port_min: u16,
    /// Highest RTP port (the RTCP port of the last pair may be this).
    pub rtp_port_max: u16,
    /// TCP limits.
    pub tcp: TcpLimits,
    /// How long running calls may continue after shutdown begins.
    pub shutdown_grace: Duration,
}

impl ServerSettings {
    /// Derives the server settings from the daemon configuration.
    pub fn from_config(config: &crate::config::Config) -> Self {
        let sip = &config.sip;
        Self {
            listen: sip.listen.iter().map(|l| (l.transport, l.addr)).collect(),
            ua: UaSettings::from_config(config),
            rtp_bind_address: config.rtp.bind_address,
            rtp_port_min: config.rtp.port_min,
            rtp_port_max: config.rtp.port_max,
            tcp: TcpLimits {
                max_message_size: sip.max_message_size,
                ..TcpLimits::default()
            },
            shutdown_grace: sip.shutdown_grace,
        }
    }
}

/// A point-in-time view of the server, for tests and the admin API.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Message counters of the core.
    pub counters: Counters,
    /// Calls in progress.
    pub active_calls: usize,
    /// RTP port pairs free now.
    pub rtp_ports_available: usize,
    /// RTP port pairs in the configured range.
    pub rtp_ports_capacity: usize,
    /// Calls with a running call-path task (auto attendant, media).
    pub call_tasks: usize,
    /// Streams on the prompt pacer.
    pub pacer_streams: usize,
    /// Counters of the call path (routed callers, failed entries).
    pub call_path: crate::call::shell::CallPathStats,
}

/// Entry point for the server.
pub struct Server;

impl Server {
    /// Binds everything named in `config` and starts serving, with the
    /// auto attendant on every call and an empty directory (every
    /// conference ID is refused); see [`Server::start_with_services`].
    pub async fn start(config: &crate::config::Config) -> anyhow::Result<ServerHandle> {
        Self::start_with_services(config, Services::empty()).await
    }

    /// Binds everything named in `config` and starts serving; each
    /// answered call runs the auto attendant against `services.directory`.
    /// Fails if a prompt file is missing or unusable (the error names it),
    /// a listener cannot be bound or the RTP port range is empty.
    pub async fn start_with_services(
        config: &crate::config::Config,
        services: Services,
    ) -> anyhow::Result<ServerHandle> {
        let call_path = CallPath::new(CallPathSettings::from_config(config), services)?;
        call_path
            .0
            .check_languages(config.dial_in_numbers.iter().map(|n| n.language.as_str()));
        Self::start_inner(ServerSettings::from_config(config), Some(call_path)).await
    }

    /// Binds the listeners and starts the driver task, SIP only: calls are
    /// answered and their RTP ports bound, but no media is sent or read.
    /// Fails if a listener cannot be bound or the RTP port range is empty.
    pub async fn start_with(settings: ServerSettings) -> anyhow::Result<ServerHandle> {
        Self::start_inner(settings, None).await
    }

    async fn start_inner(
        settings: ServerSettings,
        call_path: Option<(CallPath, mpsc::UnboundedReceiver<CoreRequest>)>,
    ) -> anyhow::Result<ServerHandle> {
        let pool = RtpPortPool::new(settings.rtp_port_min, settings.rtp_port_max)
            .context("RTP port range")?;
        let (to_driver, from_transports) = mpsc::channel::<Inbound>(4096);
        let mut tasks = Vec::new();
        let mut udp_sockets = Vec::new();
        let mut addrs = Vec::new();
        for (transport, addr) in &settings.listen {
            match transport {
                Transport::Udp => {
                    let socket = udp::bind(*addr)
                        .await
                        .with_context(|| format!("binding SIP UDP listener {addr}"))?;
                    let local = socket.local_addr()?;
                    addrs.push((Transport::Udp, local));
                    udp_sockets.push((local, socket.clone()));
                    tasks.push(tokio::spawn(udp::receive_loop(socket, to_driver.clone())));
                }
                Transport::Tcp => {
                    let listener = tcp::bind(*addr)
                        .await
                        .with_context(|| format!("binding SIP TCP listener {addr}"))?;
                    let local = listener.local_addr()?;
                    addrs.push((Transport::Tcp, local));
                    tasks.push(tokio::spawn(tcp::accept_loop(
                        listener,
                        to_driver.clone(),
                        settings.tcp.clone(),
                    )));
                }
            }
        }
        for (transport, addr) in &addrs {
            tracing::info!(%transport, %addr, "SIP listening");
        }
        // Only transports hold senders: the driver sees the end of input
        // once they are gone. It keeps a weak one for outgoing connections.
        let weak_to_driver = to_driver.downgrade();
        drop(to_driver);
        let ports = BoundPorts::new(pool, settings.rtp_bind_address);
        let rtp_sockets = ports.sockets.clone();
        let ua = UserAgent::new(settings.ua.clone(), Box::new(ports));
        let (call_path, hang_ups) = match call_path {
            Some((path, hang_ups)) => (Some(path), Some(hang_ups)),
            None => (None, None),
        };
        let probe = call_path.as_ref().map(CallPath::probe);
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let stats = Arc::new(Mutex::new(ServerStats::default()));
        let driver = Driver {
            ua,
            from_transports,
            udp_sockets,
            tcp_writers: HashMap::new(),
            to_driver: weak_to_driver,
            tcp_limits: settings.tcp.clone(),
            stats: stats.clone(),
            grace: settings.shutdown_grace,
            call_path,
            hang_ups,
            rtp_sockets,
        };
        let join = tokio::spawn(async move {
            let result = driver.run(shutdown_rx).await;
            for task in tasks {
                task.abort();
            }
            result
        });
        Ok(ServerHandle {
            addrs,
            shutdown_tx,
            join,
            stats,
            probe,
        })
    }
}

/// A running server.
#[derive(Debug)]
pub struct ServerHandle {
    addrs: Vec<(Transport, SocketAddr)>,
    shutdown_tx: watch::Sender<bool>,
    join: JoinHandle<anyhow::Result<()>>,
    stats: Arc<Mutex<ServerStats>>,
    /// Live counters of the call path, which change between driver wake-ups.
    probe: Option<CallPathProbe>,
}

impl ServerHandle {
    /// The bound listener addresses (with the real ports when 0 was asked).
    pub fn local_addrs(&self) -> &[(Transport, SocketAddr)] {
        &self.addrs
    }

    /// The first bound address of a transport.
    pub fn local_addr(&self, transport: Transport) -> Option<SocketAddr> {
        self.addrs
            .iter()
            .find(|(t, _)| *t == transport)
            .map(|(_, a)| *a)
    }

    /// Begins a graceful shutdown: new calls get 503, running calls may
    /// continue for the grace period, then get a BYE.
    pub fn shutdown(&self) {
        let _ = self.shutdown_tx.send(true);
    }

    /// A snapshot of the counters and call/port figures.
    pub fn stats(&self) -> ServerStats {
        let mut stats = match self.stats.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        if let Some(probe) = &self.probe {
            stats.call_path = probe.stats();
            stats.pacer_streams = probe.pacer_streams();
        }
        stats
    }

    /// Waits until the server has drained and stopped.
    pub async fn join(self) -> anyhow::Result<()> {
        self.join.await.context("SIP driver task failed")?
    }
}

/// Runs the server until `shutdown` completes, then drains gracefully:
/// new calls get 503, running calls get the configured grace period, then
/// BYE. Returns once every call has ended. Fails if a listener cannot be
/// bound, or if the server stops before `shutdown` completes.
pub async fn run(
    config: crate::config::Config,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut handle = Server::start(&config).await?;
    tokio::select! {
        _ = shutdown => {}
        ended = &mut handle.join => {
            ended.context("SIP driver task failed")??;
            anyhow::bail!("SIP server stopped unexpectedly");
        }
    }
    tracing::info!("shutdown requested, draining calls");
    handle.shutdown();
    handle.join().await
}

struct Driver {
    ua: UserAgent,
    from_transports: mpsc::Receiver<Inbound>,
    udp_sockets: Vec<(SocketAddr, Arc<UdpSocket>)>,
    tcp_writers: HashMap<ConnId, mpsc::Sender<Bytes>>,
    to_driver: mpsc::WeakSender<Inbound>,
    tcp_limits: TcpLimits,
    stats: Arc<Mutex<ServerStats>>,
    grace: Duration,
    /// The auto attendant and media of each call; `None` runs SIP only.
    call_path: Option<CallPath>,
    /// Calls the call path wants hung up.
    hang_ups: Option<mpsc::UnboundedReceiver<CoreRequest>>,
    /// Sockets bound for allocated ports, until a call task takes them.
    rtp_sockets: SharedSockets,
}

impl Driver {
    async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut shutting_down = false;
        loop {
            let now = std::time::Instant::now();
            if self.ua.poll_timeout().is_some_and(|d| d <= now) {
                self.ua.handle_timeout(now);
            }
            self.flush().await;
            if shutting_down && self.ua.is_drained() {
                tracing::info!("all calls ended, SIP server stopped");
                return Ok(());
            }
            let deadline = self.ua.poll_timeout();
            tokio::select! {
                changed = shutdown.changed(), if !shutting_down => {
                    // A dropped handle also means "stop".
                    if changed.is_err() || *shutdown.borrow() {
                        shutting_down = true;
                        self.ua.begin_shutdown(std::time::Instant::now(), self.grace);
                    }
                }
                inbound = self.from_transports.recv() => match inbound {
                    Some(inbound) => self.handle_inbound(inbound),
                    None => {
                        tracing::warn!("all SIP transports stopped");
                        return Ok(());
                    }
                },
                Some(request) = recv_hang_up(&mut self.hang_ups) => {
                    let now = std::time::Instant::now();
                    match request {
                        CoreRequest::HangUp(call) => self.ua.hang_up(call, now),
                        CoreRequest::PlaceCall { call, request } => {
                            match self.ua.place_call(&request, now) {
                                Ok(placed) => {
                                    let sockets = lock_sockets(&self.rtp_sockets).remove(&placed.rtp);
                                    if let Some(path) = self.call_path.as_mut() {
                                        path.bridge_call_placed(call, placed.call, sockets);
                                    }
                                }
                                Err(e) => {
                                    tracing::info!(error = %e, "bridge call not placed");
                                    if let Some(path) = self.call_path.as_mut() {
                                        path.bridge_failed(call);
                                    }
                                }
                            }
                        }
                        CoreRequest::Transfer { call, refer_to, timeout } => {
                            if let Err(e) = self.ua.refer(call, &refer_to, None, timeout, now) {
                                tracing::info!(error = %e, "REFER not sent");
                                if let Some(path) = self.call_path.as_mut() {
                                    path.bridge_failed(call);
                                }
                            }
                        }
                    }
                }
                _ = sleep_until(deadline) => {
                    self.ua.handle_timeout(std::time::Instant::now());
                }
            }
        }
    }

    fn handle_inbound(&mut self, inbound: Inbound) {
        let now = std::time::Instant::now();
        match inbound {
            Inbound::Message {
                transport,
                local,
                remote,
                conn,
                bytes,
            } => self
                .ua
                .handle_datagram(transport, local, remote, conn, bytes, now),
            Inbound::Oversized {
                local,
                remote,
                conn,
                head,
            } => self.ua.handle_oversized(local, remote, conn, head, now),
            Inbound::Connected { conn, writer, .. } => {
                self.tcp_writers.insert(conn, writer);
            }
            Inbound::Idle { conn, close } => {
                let _ = close.send(!self.ua.connection_in_use(conn));
            }
            Inbound::Closed { conn } => {
                self.tcp_writers.remove(&conn);
                self.ua.handle_connection_closed(conn);
            }
        }
    }

    async fn flush(&mut self) {
        while let Some(transmit) = self.ua.poll_transmit() {
            self.send(transmit).await;
        }
        while let Some(event) = self.ua.poll_event() {
            match &event {
                UaEvent::CallStarted { call_id, rtp, .. } => {
                    tracing::debug!(%call_id, rtp_port = rtp.rtp(), "call media ready");
                }
                UaEvent::CallEnded {
                    call_id, reason, ..
                } => {
                    tracing::debug!(%call_id, ?reason, "call ended");
                }
                UaEvent::Info { .. }
                | UaEvent::MediaChanged { .. }
                | UaEvent::OutboundAnswered { .. }
                | UaEvent::OutboundFailed { .. }
                | UaEvent::TransferProgress { .. }
                | UaEvent::TransferSucceeded { .. }
                | UaEvent::TransferFailed { .. } => {}
            }
            self.notify_call_path(&event);
        }
        let (call_tasks, pacer_streams, call_path) = self
            .call_path
            .as_ref()
            .map_or((0, 0, Default::default()), |p| {
                (p.active(), p.pacer_streams(), p.stats())
            });
        let snapshot = ServerStats {
            counters: self.ua.counters().clone(),
            active_calls: self.ua.active_calls(),
            rtp_ports_available: self.ua.rtp_ports_available(),
            rtp_ports_capacity: self.ua.rtp_ports_capacity(),
            call_tasks,
            pacer_streams,
            call_path,
        };
        match self.stats.lock() {
            Ok(mut s) => *s = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
    }

    /// Hands a core event to the call path (when there is one).
    fn notify_call_path(&mut self, event: &UaEvent) {
        let Some(path) = self.call_path.as_mut() else {
            return;
        };
        match event {
            UaEvent::CallStarted {
                call,
                call_id,
                dialed,
                language,
                rtp,
                media,
                caller,
                ..
            } => {
                let sockets = lock_sockets(&self.rtp_sockets).remove(rtp);
                path.call_started(*call, call_id, dialed, language, media, caller, sockets);
            }
            UaEvent::MediaChanged { call, media } => path.media_changed(*call, media),
            UaEvent::Info {
                call,
                content_type,
                body,
            } => path.info(*call, content_type.as_deref(), body),
            UaEvent::CallEnded { call, .. } => path.call_ended(*call),
            // The caller stays until the core's BYE after a transfer.
            UaEvent::TransferFailed { call, .. } => path.bridge_failed(*call),
            UaEvent::OutboundAnswered { call, media } => path.outbound_answered(*call, media),
            UaEvent::OutboundFailed { call, .. } => path.outbound_failed(*call),
            UaEvent::TransferProgress { .. } | UaEvent::TransferSucceeded { .. } => {}
        }
    }

    async fn send(&mut self, transmit: Transmit) {
        match transmit.transport {
            Transport::Udp => {
                let socket = self
                    .udp_sockets
                    .iter()
                    .find(|(a, _)| *a == transmit.local)
                    .or_else(|| {
                        self.udp_sockets
                            .iter()
                            .find(|(a, _)| a.is_ipv4() == transmit.remote.is_ipv4())
                    });
                let Some((_, socket)) = socket else {
                    tracing::debug!(remote = %transmit.remote, "no UDP socket for this address family");
                    return;
                };
                if let Err(e) = socket.send_to(&transmit.bytes, transmit.remote).await {
                    tracing::debug!(error = %e, remote = %transmit.remote, "UDP send failed");
                }
            }
            Transport::Tcp => {
                let writer = transmit.conn.and_then(|c| self.tcp_writers.get(&c));
                match writer {
                    Some(w) => {
                        if w.try_send(transmit.bytes).is_err() {
                            tracing::debug!(remote = %transmit.remote, "TCP connection queue full or closed, message dropped");
                        }
                    }
                    None => {
                        // The connection is gone: open a new one (§18.1.1).
                        if let Some(to_driver) = self.to_driver.upgrade() {
                            tokio::spawn(tcp::connect_and_serve(
                                transmit.remote,
                                transmit.bytes,
                                to_driver,
                                self.tcp_limits.clone(),
                            ));
                        }
                    }
                }
            }
        }
    }
}

async fn recv_hang_up(
    rx: &mut Option<mpsc::UnboundedReceiver<CoreRequest>>,
) -> Option<CoreRequest> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

/// Sockets of allocated ports not yet taken by a call task.
type SharedSockets = Arc<Mutex<HashMap<RtpPort, RtpSockets>>>;

fn lock_sockets(
    sockets: &SharedSockets,
) -> std::sync::MutexGuard<'_, HashMap<RtpPort, RtpSockets>> {
    // Plain map operations only; a poisoned lock leaves a usable map.
    sockets
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The shell's port allocator: binds the RTP and RTCP sockets of each
/// allocated pair (skipping pairs the OS refuses) and keeps them until the
/// call's task takes them when the call starts. Releasing a port closes
/// sockets nobody took; a call task closes its own when the call ends.
struct BoundPorts {
    pool: RtpPortPool,
    bind_address: IpAddr,
    sockets: SharedSockets,
}

impl BoundPorts {
    fn new(pool: RtpPortPool, bind_address: IpAddr) -> Self {
        Self {
            pool,
            bind_address,
            sockets: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn bind_pair(&self, port: RtpPort) -> std::io::Result<RtpSockets> {
        let rtp = std::net::UdpSocket::bind((self.bind_address, port.rtp()))?;
        let rtcp = std::net::UdpSocket::bind((self.bind_address, port.rtcp()))?;
        rtp.set_nonblocking(true)?;
        rtcp.set_nonblocking(true)?;
        Ok(RtpSockets {
            rtp: UdpSocket::from_std(rtp)?,
            rtcp: UdpSocket::from_std(rtcp)?,
        })
    }
}

impl PortAllocator for BoundPorts {
    fn allocate(&mut self) -> Option<RtpPort> {
        for _ in 0..self.pool.available() {
            let port = self.pool.allocate()?;
            match self.bind_pair(port) {
                Ok(sockets) => {
                    lock_sockets(&self.sockets).insert(port, sockets);
                    return Some(port);
                }
                Err(e) => {
                    tracing::debug!(port = port.rtp(), error = %e, "RTP port refused by the OS, skipped");
                    self.pool.release(port);
                }
            }
        }
        None
    }

    fn release(&mut self, port: RtpPort) {
        lock_sockets(&self.sockets).remove(&port);
        self.pool.release(port);
    }

    fn available(&self) -> usize {
        self.pool.available()
    }

    fn capacity(&self) -> usize {
        self.pool.capacity()
    }
}
