//! Black-box test of the built daemon: `dialgate serve --config FILE`
//! answers a call over UDP and TCP, then stops cleanly on SIGTERM.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// A loopback port free for both UDP and TCP right now.
fn free_port() -> u16 {
    for _ in 0..50 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

struct Daemon {
    child: Child,
    _config: tempfile::NamedTempFile,
    _data: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_daemon(port: u16) -> Daemon {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("directory");
    let data_dir = data_dir.display();
    let mut config = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    write!(
        config,
        r#"
[sip]
listen = ["udp:127.0.0.1:{port}", "tcp:127.0.0.1:{port}"]
shutdown_grace = "1s"

[rtp]
bind_address = "127.0.0.1"
port_min = 47000
port_max = 47199

[directory]
data_dir = "{data_dir}"

[admin]
listen = "127.0.0.1:0"

[[dial_in_numbers]]
number = "+1 555 0100"
language = "en"
label = "toll"

[[trunks]]
name = "loopback"
sources = ["127.0.0.0/8"]
"#
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_dialgate"))
        .arg("serve")
        .arg("--config")
        .arg(config.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Daemon {
        child,
        _config: config,
        _data: data,
    }
}

/// Waits until the daemon answers OPTIONS over UDP.
async fn wait_ready(addr: SocketAddr) {
    for _ in 0..100 {
        let mut client = SipClient::udp(addr).await;
        client.send(&options(&client, 70)).await;
        if client
            .recv_within(Duration::from_millis(100))
            .await
            .is_some()
        {
            return;
        }
    }
    panic!("daemon did not answer OPTIONS");
}

async fn call(client: &mut SipClient) {
    let mut call = CallBuilder::new(client, "15550100");
    client.send(&call.invite(Some(&offer_sdp(30_000)))).await;
    let ok = client.final_response("INVITE").await;
    assert_eq!(ok.status(), Some(200), "{}", ok.raw);
    assert!(ok.body.contains("m=audio 47"), "{}", ok.body);
    let tag = ok.to_tag().unwrap();
    client.send(&call.in_dialog("ACK", &tag, None)).await;
    client.send(&call.in_dialog("BYE", &tag, None)).await;
    assert_eq!(client.final_response("BYE").await.status(), Some(200));
}

#[tokio::test]
async fn daemon_answers_calls_and_stops_on_sigterm() {
    let port = free_port();
    let mut daemon = spawn_daemon(port);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_ready(addr).await;

    let mut udp = SipClient::udp(addr).await;
    call(&mut udp).await;
    let mut tcp = SipClient::tcp(addr).await;
    call(&mut tcp).await;

    let status = Command::new("kill")
        .arg("-TERM")
        .arg(daemon.child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let mut exit = None;
    for _ in 0..200 {
        if let Some(s) = daemon.child.try_wait().unwrap() {
            exit = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let exit = exit.expect("daemon exits after SIGTERM");
    assert!(exit.success(), "daemon exit status {exit:?}");
}
