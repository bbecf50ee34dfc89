//! The notifier: the handle the admin API queues notices through, and the
//! delivery task that drains the outbox into the SMTP relay.

use super::message::{render, NewNotice};
use super::outbox::{Attempt, Notice, Outbox, RetryPolicy};
use super::smtp::SmtpRelay;
use super::{is_plain_address, NotifyError, NotifySettings};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::Notify;

/// How long the delivery task sleeps when nothing is pending; an enqueue
/// wakes it earlier.
const IDLE_WAKE: Duration = Duration::from_secs(3600);
/// Shortest pause between passes unless an enqueue wakes the task: keeps a
/// persistently failing outbox disk from turning the loop into a busy spin.
const MIN_PAUSE: Duration = Duration::from_secs(1);

/// Cheap-to-clone handle on the outbox and its delivery settings.
#[derive(Clone, Debug)]
pub struct Notifier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    outbox: Arc<Outbox>,
    relay: SmtpRelay,
    from: String,
    policy: RetryPolicy,
    wake: Notify,
}

impl Notifier {
    /// Opens the outbox named by `settings` (loading pending notices from a
    /// previous run). Blocks on file I/O: call it at startup.
    /// Fails if the relay or sender is missing or the directory unusable.
    pub fn open(settings: &NotifySettings) -> Result<Notifier, NotifyError> {
        let host = settings
            .smtp_host
            .clone()
            .filter(|h| !h.trim().is_empty())
            .ok_or_else(|| NotifyError::NotConfigured("notify.smtp_host is not set".into()))?;
        let from = settings
            .from
            .clone()
            .filter(|f| is_plain_address(f))
            .ok_or_else(|| {
                NotifyError::NotConfigured("notify.from is not a valid address".into())
            })?;
        let outbox = Outbox::open(&settings.outbox_dir, settings.keep_finished)?;
        Ok(Notifier {
            inner: Arc::new(Inner {
                outbox: Arc::new(outbox),
                relay: SmtpRelay {
                    host,
                    port: settings.smtp_port,
                    helo_name: settings.helo_name.clone(),
                    timeout: Duration::from_secs(settings.smtp_timeout_secs.max(1)),
                },
                from,
                policy: settings.retry_policy(),
                wake: Notify::new(),
            }),
        })
    }

    /// Queues `notice`; resolves once it is durable on disk, then wakes the
    /// delivery task. Delivery happens later and is never awaited here.
    pub async fn enqueue(&self, notice: NewNotice) -> Result<String, NotifyError> {
        if !is_plain_address(&notice.to) {
            return Err(NotifyError::BadAddress(notice.to));
        }
        let outbox = Arc::clone(&self.inner.outbox);
        let id = tokio::task::spawn_blocking(move || outbox.enqueue(notice, SystemTime::now()))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??;
        self.inner.wake.notify_one();
        Ok(id)
    }

    /// Up to `limit` notices, newest first (pending, delivered and failed).
    pub fn recent(&self, limit: usize) -> Vec<Notice> {
        self.inner.outbox.recent(limit)
    }

    /// One notice by id.
    pub fn get(&self, id: &str) -> Option<Notice> {
        self.inner.outbox.get(id)
    }

    /// Attempts every notice due at `now` once, in order, and records each
    /// outcome. Returns how many were delivered. The delivery loop calls
    /// this; tests call it directly with a chosen `now` to step past backoff.
    pub async fn deliver_due(&self, now: SystemTime) -> usize {
        let mut delivered = 0;
        for notice in self.inner.outbox.due(now) {
            let outcome = self.attempt(&notice, now).await;
            if outcome == Attempt::Delivered {
                delivered += 1;
            }
            let outbox = Arc::clone(&self.inner.outbox);
            let policy = self.inner.policy;
            let id = notice.id.clone();
            let log = outcome.clone();
            let stored =
                tokio::task::spawn_blocking(move || outbox.record(&id, outcome, now, &policy))
                    .await;
            match (log, stored) {
                (_, Ok(Err(e))) => {
                    tracing::error!(notice = %notice.id, error = %e, "cannot record notice attempt")
                }
                (_, Err(e)) => {
                    tracing::error!(notice = %notice.id, error = %e, "cannot record notice attempt")
                }
                (Attempt::Delivered, _) => tracing::info!(notice = %notice.id, "notice delivered"),
                (Attempt::Transient(e), _) => {
                    tracing::warn!(notice = %notice.id, error = %e, "notice delivery failed; will retry")
                }
                (Attempt::Permanent(e), _) => {
                    tracing::warn!(notice = %notice.id, error = %e, "notice rejected")
                }
            }
        }
        delivered
    }

    async fn attempt(&self, notice: &Notice, now: SystemTime) -> Attempt {
        if !is_plain_address(&notice.to) {
            return Attempt::Permanent(format!("invalid recipient {:?}", notice.to));
        }
        let message = render(
            &self.inner.from,
            &notice.to,
            &notice.subject,
            &notice.body,
            &notice.id,
            now,
        );
        match self
            .inner
            .relay
            .send(&self.inner.from, &notice.to, &message)
            .await
        {
            Ok(()) => Attempt::Delivered,
            Err(e) if e.is_permanent() => Attempt::Permanent(e.to_string()),
            Err(e) => Attempt::Transient(e.to_string()),
        }
    }

    /// The delivery task: delivers what is due, sleeps until the next notice
    /// is due (or one is enqueued), and returns when `shutdown` resolves.
    /// Spawn it once per outbox: `tokio::spawn(notifier.clone().run(shutdown))`.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        loop {
            let now = SystemTime::now();
            // Shutdown may cut a pass short: a message the relay accepted but
            // that was not yet recorded goes out again after the restart
            // (at least once), which beats holding shutdown for SMTP timeouts.
            tokio::select! {
                () = &mut shutdown => return,
                _ = self.deliver_due(now) => {}
            }
            let sleep_for = match self.inner.outbox.next_due() {
                Some(due) => due
                    .duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO)
                    .clamp(MIN_PAUSE, IDLE_WAKE),
                None => IDLE_WAKE,
            };
            tokio::select! {
                () = &mut shutdown => return,
                () = self.inner.wake.notified() => {}
                () = tokio::time::sleep(sleep_for) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::DialInNumberView;
    use crate::directory::service::{IdMode, Organizer};
    use crate::directory::ConferenceId;
    use crate::notify::{conference_info, InfoReason, NoticeStatus};
    use std::time::UNIX_EPOCH;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    /// A test SMTP server: enough of RFC 5321 to accept messages; each
    /// received message (envelope recipient, DATA text) is sent on the channel.
    async fn smtp_sink(listener: TcpListener) -> mpsc::UnboundedReceiver<(String, String)> {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let (r, mut w) = stream.into_split();
                    let mut lines = BufReader::new(r).lines();
                    w.write_all(b"220 sink ESMTP\r\n").await.unwrap();
                    let mut rcpt = String::new();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let upper = line.to_ascii_uppercase();
                        if upper.starts_with("EHLO") {
                            w.write_all(b"250-sink\r\n250 8BITMIME\r\n").await.unwrap();
                        } else if upper.starts_with("MAIL") {
                            w.write_all(b"250 ok\r\n").await.unwrap();
                        } else if upper.starts_with("RCPT") {
                            rcpt = line[8..].trim_matches(['<', '>', ' ']).to_owned();
                            w.write_all(b"250 ok\r\n").await.unwrap();
                        } else if upper == "DATA" {
                            w.write_all(b"354 go ahead\r\n").await.unwrap();
                            let mut data = String::new();
                            while let Ok(Some(l)) = lines.next_line().await {
                                if l == "." {
                                    break;
                                }
                                data.push_str(l.strip_prefix('.').unwrap_or(&l));
                                data.push('\n');
                            }
                            tx.send((rcpt.clone(), data)).unwrap();
                            w.write_all(b"250 queued\r\n").await.unwrap();
                        } else if upper == "QUIT" {
                            w.write_all(b"221 bye\r\n").await.unwrap();
                            break;
                        } else {
                            w.write_all(b"500 what\r\n").await.unwrap();
                        }
                    }
                });
            }
        });
        rx
    }

    fn settings(dir: &std::path::Path, port: u16) -> NotifySettings {
        NotifySettings {
            smtp_host: Some("127.0.0.1".into()),
            smtp_port: port,
            from: Some("conferencing@contoso.com".into()),
            outbox_dir: dir.to_owned(),
            ..Default::default()
        }
    }

    fn notice() -> NewNotice {
        let org = Organizer {
            id: "amos.marble@contoso.com".into(),
            display_name: "Amos Marble".into(),
            email: "amos.marble@contoso.com".into(),
            leader_pin: Some("908172".into()),
            mode: IdMode::Static,
            conference_id: Some(ConferenceId::parse("8271964", 7).unwrap()),
            created_at: UNIX_EPOCH,
            updated_at: UNIX_EPOCH,
        };
        let numbers = [DialInNumberView {
            number: "+44 20 7946 0000".into(),
            label: "London".into(),
            language: "en-GB".into(),
        }];
        conference_info(&org, &numbers, InfoReason::Reset).unwrap()
    }

    #[tokio::test]
    async fn delivers_to_a_real_smtp_server_without_the_pin() {
        let dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut received = smtp_sink(listener).await;
        let notifier = Notifier::open(&settings(dir.path(), port)).unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(notifier.clone().run(async {
            let _ = stop_rx.await;
        }));
        let id = notifier.enqueue(notice()).await.unwrap();
        let (rcpt, data) = received.recv().await.unwrap();
        assert_eq!(rcpt, "amos.marble@contoso.com");
        assert!(data.contains("Subject: Your conference ID"));
        assert!(data.contains("To: amos.marble@contoso.com"));
        assert!(data.contains("8271964"));
        assert!(data.contains("+44 20 7946 0000"));
        assert!(data.contains("London"));
        assert!(!data.contains("908172"), "leader PIN leaked: {data}");
        // The sink saw the message before it answered 250: wait for the
        // task to record the outcome before stopping it.
        for _ in 0..2000 {
            if notifier.get(&id).unwrap().status != NoticeStatus::Pending {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop_tx.send(()).unwrap();
        task.await.unwrap();
        let n = notifier.get(&id).unwrap();
        assert_eq!(n.status, NoticeStatus::Delivered);
        assert_eq!(n.attempts, 1);
    }

    #[tokio::test]
    async fn outage_keeps_the_notice_until_the_relay_is_back() {
        let dir = tempfile::tempdir().unwrap();
        // Reserve a port, then close it: connections are refused.
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap().port()
        };
        let notifier = Notifier::open(&settings(dir.path(), port)).unwrap();
        let id = notifier.enqueue(notice()).await.unwrap();
        let t0 = SystemTime::now();
        assert_eq!(notifier.deliver_due(t0).await, 0);
        let n = notifier.get(&id).unwrap();
        assert_eq!(n.status, NoticeStatus::Pending);
        assert_eq!(n.attempts, 1);
        assert!(
            n.last_error.as_deref().unwrap().contains("connect"),
            "{n:?}"
        );
        assert!(n.next_attempt.unwrap() > t0);
        // Not due yet: nothing is attempted.
        assert_eq!(notifier.deliver_due(t0).await, 0);
        assert_eq!(notifier.get(&id).unwrap().attempts, 1);

        // A restart reloads the pending notice.
        drop(notifier);
        let notifier = Notifier::open(&settings(dir.path(), port)).unwrap();
        assert_eq!(notifier.get(&id).unwrap().status, NoticeStatus::Pending);

        // The relay comes back on the same port.
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let mut received = smtp_sink(listener).await;
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(notifier.deliver_due(later).await, 1);
        let (_, data) = received.recv().await.unwrap();
        assert!(data.contains("8271964"));
        let n = notifier.get(&id).unwrap();
        assert_eq!(n.status, NoticeStatus::Delivered);
        assert_eq!(n.attempts, 2);
        assert!(n.last_error.is_some(), "history of the failure kept");

        // Delivered state is durable too.
        drop(notifier);
        let notifier = Notifier::open(&settings(dir.path(), port)).unwrap();
        assert_eq!(notifier.get(&id).unwrap().status, NoticeStatus::Delivered);
        assert_eq!(notifier.deliver_due(later).await, 0);
    }

    #[tokio::test]
    async fn permanent_rejection_fails_the_notice() {
        let dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (r, mut w) = stream.into_split();
            let mut lines = BufReader::new(r).lines();
            w.write_all(b"220 hi\r\n").await.unwrap();
            while let Ok(Some(line)) = lines.next_line().await {
                let reply: &[u8] = if line.starts_with("RCPT") {
                    b"550 5.1.1 no such user\r\n"
                } else if line == "QUIT" {
                    b"221 bye\r\n"
                } else {
                    b"250 ok\r\n"
                };
                w.write_all(reply).await.unwrap();
            }
        });
        let notifier = Notifier::open(&settings(dir.path(), port)).unwrap();
        let id = notifier.enqueue(notice()).await.unwrap();
        assert_eq!(notifier.deliver_due(SystemTime::now()).await, 0);
        let n = notifier.get(&id).unwrap();
        assert_eq!(n.status, NoticeStatus::Failed);
        assert!(n.last_error.unwrap().contains("550"));
    }

    #[test]
    fn open_needs_relay_and_sender() {
        let dir = tempfile::tempdir().unwrap();
        let s = NotifySettings {
            outbox_dir: dir.path().to_owned(),
            ..Default::default()
        };
        assert!(matches!(
            Notifier::open(&s),
            Err(NotifyError::NotConfigured(_))
        ));
    }
}
