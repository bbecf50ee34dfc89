//! Runs only the SIP front end from a config file, until SIGTERM or
//! Ctrl-C; then drains gracefully. Handy for interop runs:
//!
//! ```text
//! cargo run --example sip_front_end -- tests/interop/dialgate-interop.toml
//! ```

use std::path::PathBuf;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args_os().nth(1).map(PathBuf::from);
    let config = dialgate::config::Config::load(path.as_deref())?;
    dialgate::config::logging::init(&config.log);
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    dialgate::server::run(config, shutdown).await
}
