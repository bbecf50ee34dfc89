//! Test support for the admin API and CLI: the real daemon (embedded
//! directory on a temporary data dir, SIP and admin API on loopback
//! ephemeral ports) started in-process on its own runtime thread, and a
//! small SMTP sink for the notice tests.
#![allow(dead_code)]

use dialgate::config::{Config, DialInNumber, ListenSpec};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// The admin bearer token of every test daemon.
pub const TOKEN: &str = "t0ken-for-tests";

/// RTP ports of the admin tests (no call is made, so sharing is fine).
pub const RTP_MIN: u16 = 48_000;
pub const RTP_MAX: u16 = 48_199;

/// The dial-in numbers of the test daemons, as the API shows them.
pub fn dial_in_numbers() -> Vec<DialInNumber> {
    vec![
        DialInNumber {
            dtmf_mode: None,
            number: "+44 20 7946 0000".into(),
            language: "en-GB".into(),
            label: "London".into(),
            bridge: None,
        },
        DialInNumber {
            dtmf_mode: None,
            number: "+1 425 555 0100".into(),
            language: "en-US".into(),
            label: "Redmond".into(),
            bridge: None,
        },
    ]
}

/// A valid config for a daemon on loopback ephemeral ports with its
/// directory in `data_dir`.
pub fn test_config(data_dir: &Path) -> Config {
    let mut config = Config::embedded();
    config.sip.listen = vec![
        "udp:127.0.0.1:0".parse::<ListenSpec>().unwrap(),
        "tcp:127.0.0.1:0".parse::<ListenSpec>().unwrap(),
    ];
    config.sip.shutdown_grace = std::time::Duration::from_secs(1);
    config.rtp.port_min = RTP_MIN;
    config.rtp.port_max = RTP_MAX;
    config.admin.listen = "127.0.0.1:0".into();
    config.admin.token = Some(TOKEN.into());
    config.directory.data_dir = data_dir.to_owned();
    config.dial_in_numbers = dial_in_numbers();
    config
}

/// Points `config`'s notices at an SMTP server on loopback `port`, with
/// the outbox in `outbox_dir`.
pub fn with_smtp(mut config: Config, port: u16, outbox_dir: &Path) -> Config {
    config.notify.smtp_host = Some("127.0.0.1".into());
    config.notify.smtp_port = port;
    config.notify.from = Some("conferencing@contoso.com".into());
    config.notify.outbox_dir = outbox_dir.to_owned();
    config.notify.retry_initial_secs = 1;
    config.notify.smtp_timeout_secs = 5;
    config
}

/// The real daemon, running on its own runtime thread. Stopped gracefully
/// (`shutdown` + `join`) by [`TestDaemon::stop`] or on drop.
pub struct TestDaemon {
    /// `http://127.0.0.1:PORT` of the admin API.
    pub url: String,
    pub admin_addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl TestDaemon {
    /// Starts `Daemon::start(&config)`; panics with the reason if it fails.
    pub fn start(config: Config) -> TestDaemon {
        match Self::try_start(config) {
            Ok(d) => d,
            Err(e) => panic!("daemon did not start: {e}"),
        }
    }

    /// Starts the daemon, or says why it would not start.
    pub fn try_start(config: Config) -> Result<TestDaemon, String> {
        let (addr_tx, addr_rx) = mpsc::channel::<Result<SocketAddr, String>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || -> Result<(), String> {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let daemon = match dialgate::daemon::Daemon::start(&config).await {
                    Ok(d) => d,
                    Err(e) => {
                        let _ = addr_tx.send(Err(format!("{e:#}")));
                        return Ok(());
                    }
                };
                let addr = daemon.admin_addr().ok_or("admin API not enabled");
                let _ = addr_tx.send(addr.map_err(str::to_owned));
                let _ = stop_rx.await;
                daemon.shutdown();
                daemon.join().await.map_err(|e| format!("{e:#}"))
            })
        });
        let addr = addr_rx
            .recv()
            .map_err(|_| "daemon thread ended without an answer".to_owned())?;
        match addr {
            Ok(addr) => Ok(TestDaemon {
                url: format!("http://{addr}"),
                admin_addr: addr,
                stop: Some(stop_tx),
                thread: Some(thread),
            }),
            Err(e) => {
                let _ = thread.join();
                Err(e)
            }
        }
    }

    /// Stops the daemon and waits until it has closed the directory.
    pub fn stop(mut self) {
        self.halt().expect("daemon stops cleanly");
    }

    fn halt(&mut self) -> Result<(), String> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| "daemon thread panicked".to_owned())?,
            None => Ok(()),
        }
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        let _ = self.halt();
    }
}

/// A daemon plus the temporary directories it lives in.
pub struct Env {
    pub daemon: TestDaemon,
    pub config: Config,
    pub data: tempfile::TempDir,
}

impl Env {
    /// A daemon with the token, the test dial-in numbers and no notices.
    pub fn start() -> Env {
        Self::start_with(|c| c)
    }

    /// Like [`Env::start`] with the config adjusted by `adjust`.
    pub fn start_with(adjust: impl FnOnce(Config) -> Config) -> Env {
        let data = tempfile::tempdir().unwrap();
        let config = adjust(test_config(&data.path().join("directory")));
        let daemon = TestDaemon::start(config.clone());
        Env {
            daemon,
            config,
            data,
        }
    }

    pub fn url(&self) -> &str {
        &self.daemon.url
    }

    pub fn directory_dir(&self) -> PathBuf {
        self.config.directory.data_dir.clone()
    }
}

/// A plain HTTP client that returns every status as a value.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
}

/// An SMTP server on a std thread that accepts any number of connections
/// and messages and hands back each message's DATA text.
pub fn smtp_sink() -> (u16, mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let Ok(mut w) = stream.try_clone() else {
                    return;
                };
                let mut lines = BufReader::new(stream).lines();
                if w.write_all(b"220 sink\r\n").is_err() {
                    return;
                }
                while let Some(Ok(line)) = lines.next() {
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO")
                        || upper.starts_with("HELO")
                        || upper.starts_with("MAIL")
                        || upper.starts_with("RCPT")
                        || upper.starts_with("RSET")
                        || upper.starts_with("NOOP")
                    {
                        b"250 ok\r\n"
                    } else if upper == "DATA" {
                        if w.write_all(b"354 go\r\n").is_err() {
                            return;
                        }
                        let mut data = String::new();
                        for l in lines.by_ref() {
                            let Ok(l) = l else { return };
                            if l == "." {
                                break;
                            }
                            data.push_str(&l);
                            data.push('\n');
                        }
                        let _ = tx.send(data);
                        b"250 queued\r\n"
                    } else if upper == "QUIT" {
                        let _ = w.write_all(b"221 bye\r\n");
                        return;
                    } else {
                        b"500 ?\r\n"
                    };
                    if w.write_all(reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, rx)
}
