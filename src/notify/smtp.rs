//! A minimal SMTP client (RFC 5321) for handing notices to a relay.
//!
//! Written by hand rather than pulling in a mail crate: the gateway only
//! ever submits one short text message to one recipient through a relay on
//! a trusted network, which takes a dozen lines of dialogue, and keeping it
//! here avoids a large dependency tree on a 2-core CI budget. Plain SMTP
//! only; STARTTLS (RFC 3207) and AUTH are a later addition if relays need them.

use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Longest reply line accepted (RFC 5321 §4.5.3.1.5 says 512; be lenient).
const MAX_REPLY_LINE: u64 = 4096;
/// Most continuation lines accepted in one reply (EHLO lists extensions).
const MAX_REPLY_LINES: usize = 100;

/// Why a message was not accepted by the relay.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error("cannot connect to SMTP relay {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("SMTP connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("SMTP relay did not answer within {0:?}")]
    Timeout(Duration),
    #[error("SMTP relay answered {code} to {command}: {text}")]
    Rejected {
        command: &'static str,
        code: u16,
        text: String,
    },
    #[error("SMTP protocol error: {0}")]
    Protocol(String),
}

impl SmtpError {
    /// A 5xx reply (RFC 5321 §4.2.1): retrying the same message cannot help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, SmtpError::Rejected { code, .. } if (500..600).contains(code))
    }
}

/// Where and how to submit messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpRelay {
    pub host: String,
    pub port: u16,
    /// Name announced in EHLO/HELO.
    pub helo_name: String,
    /// Limit for one whole transaction, connect to QUIT.
    pub timeout: Duration,
}

impl SmtpRelay {
    /// Submits `message` (a complete RFC 5322 message, CRLF line ends) from
    /// `from` to `to`. Both addresses must already be plain (see
    /// [`super::is_plain_address`]).
    pub async fn send(&self, from: &str, to: &str, message: &[u8]) -> Result<(), SmtpError> {
        match tokio::time::timeout(self.timeout, self.transaction(from, to, message)).await {
            Ok(result) => result,
            Err(_) => Err(SmtpError::Timeout(self.timeout)),
        }
    }

    async fn transaction(&self, from: &str, to: &str, message: &[u8]) -> Result<(), SmtpError> {
        let addr = format!("{}:{}", self.host, self.port);
        let stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|source| SmtpError::Connect {
                addr: addr.clone(),
                source,
            })?;
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);

        expect(&mut read, "greeting", &[220]).await?;
        write
            .write_all(format!("EHLO {}\r\n", self.helo_name).as_bytes())
            .await?;
        if let Err(e) = expect(&mut read, "EHLO", &[250]).await {
            // RFC 5321 §3.2: fall back to HELO for servers without ESMTP.
            if !matches!(e, SmtpError::Rejected { .. }) {
                return Err(e);
            }
            write
                .write_all(format!("HELO {}\r\n", self.helo_name).as_bytes())
                .await?;
            expect(&mut read, "HELO", &[250]).await?;
        }
        write
            .write_all(format!("MAIL FROM:<{from}>\r\n").as_bytes())
            .await?;
        expect(&mut read, "MAIL", &[250]).await?;
        write
            .write_all(format!("RCPT TO:<{to}>\r\n").as_bytes())
            .await?;
        expect(&mut read, "RCPT", &[250, 251]).await?;
        write.write_all(b"DATA\r\n").await?;
        expect(&mut read, "DATA", &[354]).await?;
        write.write_all(&dot_stuff(message)).await?;
        expect(&mut read, "end of data", &[250]).await?;
        // The message is accepted; a failing QUIT changes nothing.
        if write.write_all(b"QUIT\r\n").await.is_ok() {
            let _ = expect(&mut read, "QUIT", &[221]).await;
        }
        Ok(())
    }
}

/// Reads one (possibly multi-line) reply and checks its code.
async fn expect<R: AsyncRead + Unpin>(
    read: &mut BufReader<R>,
    command: &'static str,
    accept: &[u16],
) -> Result<(), SmtpError> {
    let (code, text) = read_reply(read).await?;
    if accept.contains(&code) {
        Ok(())
    } else {
        Err(SmtpError::Rejected {
            command,
            code,
            text,
        })
    }
}

/// RFC 5321 §4.2: `ddd-text` continues, `ddd text` (or `ddd`) ends a reply.
async fn read_reply<R: AsyncRead + Unpin>(
    read: &mut BufReader<R>,
) -> Result<(u16, String), SmtpError> {
    let mut text = String::new();
    for _ in 0..MAX_REPLY_LINES {
        let mut raw = Vec::new();
        let n = read
            .take(MAX_REPLY_LINE)
            .read_until(b'\n', &mut raw)
            .await?;
        if n == 0 {
            return Err(SmtpError::Protocol("connection closed mid-reply".into()));
        }
        if raw.last() != Some(&b'\n') {
            return Err(SmtpError::Protocol("reply line too long".into()));
        }
        let line = String::from_utf8_lossy(&raw);
        let line = line.trim_end_matches(['\r', '\n']);
        let code = line
            .get(..3)
            .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| SmtpError::Protocol(format!("malformed reply {line:?}")))?;
        let rest = line.get(3..).unwrap_or("");
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(rest.get(1..).unwrap_or("").trim());
        match rest.as_bytes().first() {
            Some(b'-') => continue,
            None | Some(b' ') => return Ok((code, text)),
            Some(_) => return Err(SmtpError::Protocol(format!("malformed reply {line:?}"))),
        }
    }
    Err(SmtpError::Protocol("reply has too many lines".into()))
}

/// Normalises line ends to CRLF (dropping bare CRs), doubles a leading `.` on every line
/// (RFC 5321 §4.5.2) and appends the `CRLF.CRLF` terminator.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 16);
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // A bare CR must not be sent (RFC 5321 §4.1.1.4): drop it, before
        // the leading-dot check so "\r." cannot become a lone ".".
        let start = out.len();
        out.extend(line.iter().copied().filter(|&b| b != b'\r'));
        if out.get(start) == Some(&b'.') {
            out.insert(start, b'.');
        }
        out.extend_from_slice(b"\r\n");
    }
    // `split` yields a final empty piece after a trailing newline; it has
    // become a spurious empty line above.
    if message.ends_with(b"\n") {
        out.truncate(out.len() - 2);
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing() {
        assert_eq!(dot_stuff(b"a\n.b\r\n..c\n"), b"a\r\n..b\r\n...c\r\n.\r\n");
        assert_eq!(dot_stuff(b"no newline"), b"no newline\r\n.\r\n");
    }

    #[tokio::test]
    async fn multi_line_replies() {
        let data: &[u8] = b"250-mail.contoso.com\r\n250-8BITMIME\r\n250 SIZE 1000\r\n";
        let mut r = BufReader::new(data);
        let (code, text) = read_reply(&mut r).await.unwrap();
        assert_eq!(code, 250);
        assert_eq!(text, "mail.contoso.com 8BITMIME SIZE 1000");
        for bad in [&b"25\r\n"[..], b"abc hi\r\n", b"250*x\r\n", b"250-only"] {
            let mut r = BufReader::new(bad);
            assert!(read_reply(&mut r).await.is_err(), "{bad:?}");
        }
        let mut r = BufReader::new(&b"221\r\n"[..]);
        assert_eq!(read_reply(&mut r).await.unwrap().0, 221);
    }

    #[test]
    fn only_5xx_is_permanent() {
        let r = |code| SmtpError::Rejected {
            command: "RCPT",
            code,
            text: String::new(),
        };
        assert!(r(550).is_permanent());
        assert!(!r(451).is_permanent());
        assert!(!SmtpError::Timeout(Duration::from_secs(1)).is_permanent());
    }

    proptest::proptest! {
        #[test]
        fn replies_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(async {
                let mut r = BufReader::new(&data[..]);
                let _ = read_reply(&mut r).await;
            });
        }

        #[test]
        fn dot_stuffed_data_never_ends_early(body in "[a-z.\r\n]{0,80}") {
            let stuffed = dot_stuff(body.as_bytes());
            let text = String::from_utf8(stuffed).unwrap();
            // The only lone "." line is the terminator.
            let lines: Vec<&str> = text.split("\r\n").collect();
            let dots = lines.iter().filter(|l| **l == ".").count();
            proptest::prop_assert_eq!(dots, 1);
            proptest::prop_assert!(text.ends_with("\r\n.\r\n"));
            proptest::prop_assert!(!text.replace("\r\n", "").contains('\r'));
        }
    }
}
