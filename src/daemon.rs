//! The whole daemon: the conference-ID directory, email notices, the admin
//! API and the SIP front end, started in that order and stopped together.
//!
//! `dialgate serve` runs exactly this; black-box tests start it in-process
//! on ephemeral ports the same way.

use crate::admin::{AdminState, DialInNumberView};
use crate::call::shell::Services;
use crate::config::Config;
use crate::directory::EmbeddedDirectory;
use crate::notify::Notifier;
use crate::server::{Server, ServerHandle};
use anyhow::Context as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often expired dynamic meetings are retired from the directory.
const RETIRE_INTERVAL: Duration = Duration::from_secs(60);

/// A running daemon.
pub struct Daemon {
    sip: ServerHandle,
    directory: Arc<EmbeddedDirectory>,
    admin_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Daemon {
    /// Validates `config`, opens the directory, starts notices, the admin API
    /// and the SIP front end. Fails (before any port is bound) on an invalid
    /// config, and before any call is taken when a store cannot be opened or
    /// a port cannot be bound.
    pub async fn start(config: &Config) -> anyhow::Result<Daemon> {
        // `Config::load` validates too; a config built in code must not
        // bypass the rules either (an open admin API on a public address).
        let problems = config.validate();
        if !problems.is_empty() {
            anyhow::bail!("invalid configuration: {}", problems.join("; "));
        }
        let settings = config.directory.clone();
        let directory = tokio::task::spawn_blocking(move || {
            EmbeddedDirectory::open(&settings.data_dir, &settings)
        })
        .await
        .context("directory start-up task failed")?
        .with_context(|| {
            format!(
                "cannot open the conference-ID directory in {}",
                config.directory.data_dir.display()
            )
        })?;

        let (stop, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let mut tasks = Vec::new();

        // Dynamic IDs past their meeting end plus grace are retired for good.
        {
            let directory = directory.clone();
            let stop = stopped(stop_rx.clone());
            tasks.push(tokio::spawn(async move {
                let mut stop = std::pin::pin!(stop);
                let mut tick = tokio::time::interval(RETIRE_INTERVAL);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {
                            match directory.retire_expired_meetings(SystemTime::now()).await {
                                Ok(0) => {}
                                Ok(n) => tracing::info!(meetings = n, "expired meetings retired"),
                                Err(e) => tracing::warn!(error = %e, "retiring expired meetings failed"),
                            }
                        }
                        _ = &mut stop => break,
                    }
                }
            }));
        }

        let dial_in: Vec<DialInNumberView> = config
            .dial_in_numbers
            .iter()
            .map(|n| DialInNumberView {
                number: n.number.clone(),
                label: n.label.clone(),
                language: n.language.clone(),
            })
            .collect();
        let mut state = AdminState::new(directory.clone())
            .with_token(config.admin.token.clone())
            .with_dial_in_numbers(dial_in)
            .with_send_on_reset(config.notify.send_on_reset);
        if config.notify.is_enabled() {
            let notify = config.notify.clone();
            let notifier = tokio::task::spawn_blocking(move || Notifier::open(&notify))
                .await
                .context("notice start-up task failed")?
                .context("cannot open the email outbox")?;
            tasks.push(tokio::spawn(notifier.clone().run(stopped(stop_rx.clone()))));
            state = state.with_notifier(notifier);
        }
        let mut admin_addr = None;
        if config.admin.enabled {
            let listener = tokio::net::TcpListener::bind(&config.admin.listen)
                .await
                .with_context(|| format!("cannot bind the admin API on {}", config.admin.listen))?;
            let addr = listener.local_addr()?;
            tracing::info!(%addr, "admin API listening");
            admin_addr = Some(addr);
            let shutdown = stopped(stop_rx.clone());
            tasks.push(tokio::spawn(async move {
                if let Err(e) = crate::admin::serve(listener, state, shutdown).await {
                    tracing::error!(error = %e, "admin API stopped");
                }
            }));
        }

        // The call path asks the same directory the admin API changes.
        let services = Services {
            directory: directory.clone(),
        };
        let sip = Server::start_with_services(config, services).await?;
        Ok(Daemon {
            sip,
            directory,
            admin_addr,
            stop,
            tasks,
        })
    }

    /// The SIP listeners' bound addresses.
    pub fn sip_addrs(&self) -> &[(crate::config::Transport, SocketAddr)] {
        self.sip.local_addrs()
    }

    /// The SIP front end (stats, listener addresses).
    pub fn sip(&self) -> &ServerHandle {
        &self.sip
    }

    /// The admin API's bound address, when enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Starts the graceful drain: new calls get 503, running calls go on
    /// until they end or the grace period passes.
    pub fn shutdown(&self) {
        self.sip.shutdown();
    }

    /// Waits for the SIP drain, then stops the admin API and notices and
    /// closes the directory (every acknowledged change is already on disk).
    pub async fn join(self) -> anyhow::Result<()> {
        let result = self.sip.join().await;
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        let directory = self.directory;
        let _ = tokio::task::spawn_blocking(move || directory.close()).await;
        result
    }
}
