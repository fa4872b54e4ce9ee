//! Sending one rendered message through a channel: an HTTP POST (webhook), an SMTP
//! submission (e-mail, `lettre` over rustls, STARTTLS or implicit TLS), or a syslog
//! message (RFC 5424 over UDP per RFC 5426, over TCP with RFC 6587 octet counting, or
//! over TLS per RFC 5425). Errors say what failed without the secrets: webhook URLs are
//! stripped from errors, and passwords never reach a message.

use super::config::{Channel, ChannelKind, SmtpTls, SyslogTransport};
use super::render::Message;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// How long one send may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest syslog datagram sent over UDP: RFC 5426 §3.2 says receivers SHOULD take 2048
/// octets; longer messages are cut at a character boundary.
pub const MAX_UDP_BYTES: usize = 2048;
/// Bytes of a refusing webhook's answer quoted in the error.
const QUOTED_BODY: usize = 300;

/// A channel ready to send.
pub struct Sender {
    channel: Channel,
    http: Option<reqwest::Client>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

fn read_pem_certs(
    path: &std::path::Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in the file", path.display()));
    }
    Ok(certs)
}

impl Sender {
    /// Prepares a channel (HTTP client, TLS configuration).
    pub fn new(channel: Channel) -> Result<Sender, String> {
        let mut http = None;
        let mut tls = None;
        match &channel.kind {
            ChannelKind::Webhook { ca_file, .. } => {
                let mut b = reqwest::Client::builder()
                    .timeout(SEND_TIMEOUT)
                    .connect_timeout(Duration::from_secs(10))
                    .redirect(reqwest::redirect::Policy::none())
                    .user_agent(concat!("setten-collector/", env!("CARGO_PKG_VERSION")));
                if let Some(ca) = ca_file {
                    let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
                    for c in reqwest::Certificate::from_pem_bundle(&pem)
                        .map_err(|e| format!("{}: {e}", ca.display()))?
                    {
                        b = b.add_root_certificate(c);
                    }
                }
                http = Some(b.build().map_err(|e| format!("HTTP client: {e}"))?);
            }
            ChannelKind::Syslog {
                transport: SyslogTransport::Tls,
                ca_file,
                ..
            } => {
                let mut roots = rustls::RootCertStore::empty();
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                if let Some(ca) = ca_file {
                    for c in read_pem_certs(ca)? {
                        roots.add(c).map_err(|e| format!("{}: {e}", ca.display()))?;
                    }
                }
                let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
                let cfg = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| format!("TLS: {e}"))?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                tls = Some(Arc::new(cfg));
            }
            _ => {}
        }
        Ok(Sender { channel, http, tls })
    }

    /// The channel.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Sends one message; `Ok` once the receiver accepted it.
    pub async fn send(&self, m: &Message<'_>) -> Result<(), String> {
        match tokio::time::timeout(SEND_TIMEOUT + Duration::from_secs(5), self.send_inner(m)).await
        {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {} s", SEND_TIMEOUT.as_secs() + 5)),
        }
    }

    async fn send_inner(&self, m: &Message<'_>) -> Result<(), String> {
        match &self.channel.kind {
            ChannelKind::Webhook { url, format, .. } => {
                let http = self.http.as_ref().ok_or("no HTTP client")?;
                let body = serde_json::to_vec(&m.webhook(*format)).map_err(|e| e.to_string())?;
                let r = http
                    .post(url.expose())
                    .header("content-type", "application/json; charset=utf-8")
                    .header("x-setten-alert", m.alert.id.to_string())
                    .header("x-setten-delivery", m.delivery.to_string())
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| describe_reqwest(e.without_url()))?;
                let status = r.status();
                if status.is_success() {
                    return Ok(());
                }
                let text = r.text().await.unwrap_or_default();
                let quoted: String = text.chars().take(QUOTED_BODY).collect();
                Err(format!(
                    "the webhook answered HTTP {status}{}",
                    if quoted.trim().is_empty() {
                        String::new()
                    } else {
                        format!(": {}", quoted.trim())
                    }
                ))
            }
            ChannelKind::Email {
                server,
                port,
                tls,
                credentials,
                from,
                to,
                ca_file,
            } => {
                use lettre::message::header::ContentType;
                use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
                use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
                let mut b = lettre::Message::builder()
                    .from(from.parse().map_err(|e| format!("from {from:?}: {e}"))?)
                    .subject(m.title())
                    .message_id(Some(format!(
                        "<setten-alert-{}-{}-{}@setten.invalid>",
                        m.alert.id,
                        m.delivery,
                        if m.test { m.now_us } else { m.alert.raised_us }
                    )))
                    .header(ContentType::TEXT_PLAIN);
                for t in to {
                    b = b.to(t.parse().map_err(|e| format!("to {t:?}: {e}"))?);
                }
                let email = b.body(m.text()).map_err(|e| format!("the message: {e}"))?;
                let params = || -> Result<TlsParameters, String> {
                    let mut p = TlsParameters::builder(server.clone());
                    if let Some(ca) = ca_file {
                        let pem =
                            std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
                        p = p.add_root_certificate(
                            Certificate::from_pem(&pem)
                                .map_err(|e| format!("{}: {e}", ca.display()))?,
                        );
                    }
                    p.build_rustls().map_err(|e| format!("TLS: {e}"))
                };
                let mut t =
                    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(server.as_str())
                        .port(*port)
                        .timeout(Some(SEND_TIMEOUT));
                t = match tls {
                    SmtpTls::StartTls => t.tls(Tls::Required(params()?)),
                    SmtpTls::Tls => t.tls(Tls::Wrapper(params()?)),
                    SmtpTls::None => t.tls(Tls::None),
                };
                if let Some((user, pass)) = credentials {
                    t = t.credentials(lettre::transport::smtp::authentication::Credentials::new(
                        user.clone(),
                        pass.expose().to_owned(),
                    ));
                }
                let transport = t.build();
                transport
                    .send(email)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("SMTP {server}:{port}: {}", error_chain(&e)))
            }
            ChannelKind::Syslog {
                address,
                transport,
                server_name,
                facility,
                hostname,
                ..
            } => {
                let msg = m.syslog(*facility, hostname);
                let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host(address.as_str())
                    .await
                    .map_err(|e| format!("{address}: cannot resolve: {e}"))?
                    .collect();
                let addr = *addrs
                    .first()
                    .ok_or_else(|| format!("{address}: no address"))?;
                match transport {
                    SyslogTransport::Udp => {
                        let bind: std::net::SocketAddr = if addr.is_ipv4() {
                            "0.0.0.0:0".parse().map_err(|_| "bind")?
                        } else {
                            "[::]:0".parse().map_err(|_| "bind")?
                        };
                        let sock = tokio::net::UdpSocket::bind(bind)
                            .await
                            .map_err(|e| format!("UDP socket: {e}"))?;
                        let datagram = cut_utf8(&msg, MAX_UDP_BYTES);
                        sock.send_to(datagram, addr)
                            .await
                            .map_err(|e| format!("{address} (udp): {e}"))?;
                        Ok(())
                    }
                    SyslogTransport::Tcp | SyslogTransport::Tls => {
                        let tcp = tokio::time::timeout(
                            Duration::from_secs(10),
                            tokio::net::TcpStream::connect(addr),
                        )
                        .await
                        .map_err(|_| format!("{address}: connection timed out"))?
                        .map_err(|e| format!("{address}: {e}"))?;
                        // RFC 6587 §3.4.1 octet counting, also RFC 5425 §4.3:
                        // MSG-LEN SP SYSLOG-MSG.
                        let mut frame = format!("{} ", msg.len()).into_bytes();
                        frame.extend_from_slice(&msg);
                        if *transport == SyslogTransport::Tcp {
                            let mut tcp = tcp;
                            tcp.write_all(&frame)
                                .await
                                .map_err(|e| format!("{address} (tcp): {e}"))?;
                            tcp.shutdown()
                                .await
                                .map_err(|e| format!("{address} (tcp): {e}"))?;
                        } else {
                            let cfg = self.tls.clone().ok_or("no TLS configuration")?;
                            let name = rustls::pki_types::ServerName::try_from(server_name.clone())
                                .map_err(|e| format!("server_name {server_name:?}: {e}"))?;
                            let mut s = tokio_rustls::TlsConnector::from(cfg)
                                .connect(name, tcp)
                                .await
                                .map_err(|e| format!("{address} (tls): {e}"))?;
                            s.write_all(&frame)
                                .await
                                .map_err(|e| format!("{address} (tls): {e}"))?;
                            s.shutdown()
                                .await
                                .map_err(|e| format!("{address} (tls): {e}"))?;
                        }
                        Ok(())
                    }
                }
            }
        }
    }
}

/// At most `max` bytes of `b`, cut at a UTF-8 character boundary.
fn cut_utf8(b: &[u8], max: usize) -> &[u8] {
    if b.len() <= max {
        return b;
    }
    let mut end = max;
    // Back off continuation bytes (10xxxxxx).
    while end > 0 && b.get(end).is_some_and(|x| x & 0xC0 == 0x80) {
        end -= 1;
    }
    b.get(..end).unwrap_or(b)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

fn describe_reqwest(e: reqwest::Error) -> String {
    let what = if e.is_connect() {
        "cannot connect to the webhook"
    } else if e.is_timeout() {
        "the webhook did not answer in time"
    } else {
        "the webhook request failed"
    };
    format!("{what}: {}", error_chain(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_cuts_keep_characters_whole() {
        let s = "警報".as_bytes(); // two 3-byte characters
        assert_eq!(cut_utf8(s, 6), s);
        assert_eq!(cut_utf8(s, 5), "警".as_bytes());
        assert_eq!(cut_utf8(s, 3), "警".as_bytes());
        assert_eq!(cut_utf8(s, 2), b"");
    }
}
