//! The `dialgate` binary: the daemon (`serve`), config checking
//! (`check-config`) and the operator CLI that talks to the admin API.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 usage error (clap),
//! 78 (`EX_CONFIG`) bad configuration.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use dialgate::admin::cli::{AdminCommand, ClientOptions};
use dialgate::config::{self, Config, ConfigError};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `EX_CONFIG` from sysexits.h: the systemd unit does not restart on it.
const EXIT_CONFIG: u8 = 78;

#[derive(Parser)]
#[command(name = "dialgate", version, about = "Telephony dial-in gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    client: ClientOptions,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Serve {
        /// Config file (default: config/dialgate.toml if present, else the embedded defaults).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Load and validate the config, print the effective settings.
    CheckConfig {
        /// Config file (default: config/dialgate.toml if present, else the embedded defaults).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print nothing when the config is valid.
        #[arg(long, short)]
        quiet: bool,
    },
    #[command(flatten)]
    Admin(AdminCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            let config = match load_config(config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            config::logging::init(&config.log);
            match serve(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "dialgate stopped on an error");
                    eprintln!("dialgate: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::CheckConfig { config, quiet } => match load_config(config.as_deref()) {
            Ok(c) => {
                if !quiet {
                    print!("{}", c.to_toml());
                }
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Admin(cmd) => match dialgate::admin::cli::run(cmd, &cli.client) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("dialgate: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Loads the config the way `serve` and `check-config` both do; prints the
/// problem and returns the exit code on failure.
fn load_config(explicit: Option<&Path>) -> Result<Config, ExitCode> {
    let default = Path::new(config::DEFAULT_CONFIG_PATH);
    let path = match explicit {
        Some(p) => Some(p),
        None if default.exists() => Some(default),
        None => None,
    };
    Config::load(path).map_err(|e: ConfigError| {
        eprintln!("dialgate: invalid configuration: {e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

fn serve(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("dialgate")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let handle = dialgate::daemon::Daemon::start(&config).await?;
        wait_for_signal().await;
        tracing::info!(grace = ?config.sip.shutdown_grace, "shutting down: new calls get 503, running calls drain");
        handle.shutdown();
        // A second signal cuts the drain short.
        tokio::select! {
            r = handle.join() => r,
            _ = wait_for_signal() => {
                tracing::warn!("second signal: exiting without waiting for calls to drain");
                Ok(())
            }
        }
    })
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
