//! The service: [`Server::prepare`] turns a [`ServeConfig`] into an open store, the
//! merged inventory, TLS and a bound listener; [`run`] serves until the shutdown future
//! completes, then stops accepting, lets requests in flight finish (up to
//! [`GRACE`]) and returns.
//!
//! Connections beyond `max_connections` are closed as soon as they are accepted (and
//! counted), so a flood of clients costs a socket each, not a task and buffers.

use crate::api::{self, AppState};
use crate::config::{self, ServeConfig, TlsSource};
use crate::metrics::Metrics;
use crate::store::{open_store, StoreError};
use crate::tls::{self, TlsError};
use axum_server::accept::Accept;
use setten_agent::names::oui::Oui;
use setten_agent::rules::{Rules, RulesError};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long requests in flight may take to finish after shutdown is asked for.
pub const GRACE: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers (HTTP/1.1); a connection that
/// sends nothing is closed then, so idle connections cannot hold the connection cap.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Concurrent requests on one HTTP/2 connection.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 32;

/// Timeouts and per-connection limits of the HTTP layer.
fn configure(b: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>) {
    b.http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    b.http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION);
}

/// The service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The rules.
    #[error(transparent)]
    Rules(#[from] RulesError),
    /// TLS.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// An alert channel cannot be set up (its CA file, its TLS configuration).
    #[error("alert channel `{name}`: {message}")]
    AlertChannel {
        /// The channel.
        name: String,
        /// Why.
        message: String,
    },
    /// The MAC vendor registry named by `SETTEN_IEEE_DATA`.
    #[error("SETTEN_IEEE_DATA={dir}: {message}")]
    Oui {
        /// The directory.
        dir: PathBuf,
        /// Why.
        message: String,
    },
    /// Plain HTTP on an address other hosts can reach.
    #[error("refusing plain HTTP on {0}: plain HTTP is only served on a loopback address")]
    PlainNotLoopback(SocketAddr),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The server failed while running.
    #[error("the server stopped: {0}")]
    Io(#[from] io::Error),
}

/// How the service speaks on its listener.
#[derive(Clone)]
pub enum Transport {
    /// Plain HTTP (loopback only).
    Plain,
    /// HTTPS.
    Tls(Arc<rustls::ServerConfig>),
}

/// A service ready to run.
pub struct Server {
    listener: std::net::TcpListener,
    local_addr: SocketAddr,
    transport: Transport,
    state: AppState,
    fingerprint: Option<String>,
    generated: bool,
}

impl Server {
    /// Opens the store, loads the rules, builds the merged inventory, sets up TLS and
    /// binds the listener. Blocking; call it before entering the async runtime or from
    /// a blocking thread.
    pub fn prepare(cfg: &ServeConfig) -> Result<Server, ServeError> {
        let store = open_store(&cfg.data)?;
        let rules = match &cfg.rules {
            Some(dir) => Rules::load_dir(dir)?,
            None => Rules::defaults()?,
        };
        // SETTEN_IEEE_DATA points at another copy of the registry, as for the agent.
        let oui_dir = std::env::var_os("SETTEN_IEEE_DATA").map(PathBuf::from);
        if let Some(dir) = &oui_dir {
            Oui::load_dir_for(dir, &[]).map_err(|e| ServeError::Oui {
                dir: dir.clone(),
                message: e.to_string(),
            })?;
        }
        let (transport, fingerprint, generated) = match &cfg.tls {
            TlsSource::Plain => (Transport::Plain, None, false),
            TlsSource::SelfSigned => {
                let m = tls::self_signed(&cfg.data)?;
                (
                    Transport::Tls(tls::server_config(&m)?),
                    Some(m.fingerprint),
                    m.generated,
                )
            }
            TlsSource::Files { cert, key } => {
                let m = tls::load(cert, key)?;
                (
                    Transport::Tls(tls::server_config(&m)?),
                    Some(m.fingerprint),
                    false,
                )
            }
        };
        if matches!(transport, Transport::Plain) && !config::plain_http_allowed(&cfg.listen) {
            return Err(ServeError::PlainNotLoopback(cfg.listen));
        }
        let alert_rules = match &cfg.rules {
            Some(dir) => crate::alerts::rules::AlertRules::load_dir(dir)?,
            None => crate::alerts::rules::AlertRules::defaults(),
        };
        for ch in &cfg.alerts.channels {
            crate::alerts::channels::Sender::new(ch.clone()).map_err(|message| {
                ServeError::AlertChannel {
                    name: ch.name.clone(),
                    message,
                }
            })?;
        }
        let engine = crate::alerts::engine::Engine::new(alert_rules, cfg.alerts.clone(), &*store)?;
        let configured: Vec<String> = cfg.alerts.channels.iter().map(|c| c.name.clone()).collect();
        let orphans = crate::Store::fail_orphan_deliveries(&*store, &configured)?;
        if orphans > 0 {
            tracing::warn!(
                orphans,
                "pending alert deliveries to channels no longer configured were given up"
            );
        }
        let state = AppState::new(store, rules.policy, cfg.limits.clone(), oui_dir)?;
        state.set_alerts(Arc::new(engine));
        let listener =
            std::net::TcpListener::bind(cfg.listen).map_err(|source| ServeError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let local_addr = listener.local_addr()?;
        Ok(Server {
            listener,
            local_addr,
            transport,
            state,
            fingerprint,
            generated,
        })
    }

    /// The address bound (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The certificate's fingerprint (`sha256:…`), when serving HTTPS.
    pub fn fingerprint(&self) -> Option<&str> {
        self.fingerprint.as_deref()
    }

    /// Whether the self-signed certificate was made by this start.
    pub fn certificate_generated(&self) -> bool {
        self.generated
    }

    /// Whether it serves HTTPS.
    pub fn is_tls(&self) -> bool {
        matches!(self.transport, Transport::Tls(_))
    }

    /// The shared state (store, inventory, counters).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServeError> {
        run(self.listener, self.transport, self.state, shutdown).await
    }
}

/// Serves the API on `listener` until `shutdown` completes, then shuts down gracefully.
/// Plain HTTP is refused unless the listener is on a loopback address.
pub async fn run(
    listener: std::net::TcpListener,
    transport: Transport,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let addr = listener.local_addr()?;
    if matches!(transport, Transport::Plain) && !config::plain_http_allowed(&addr) {
        return Err(ServeError::PlainNotLoopback(addr));
    }
    // Alert evaluation and delivery run as long as the server does.
    let _alerts = state
        .alerts()
        .cloned()
        .map(|e| crate::alerts::worker::start(state.clone(), e));
    let limit = ConnLimit {
        permits: Arc::new(Semaphore::new(state.limits().max_connections.max(1))),
        state: state.clone(),
    };
    let handle = axum_server::Handle::new();
    let secure = crate::ui::Secure(matches!(transport, Transport::Tls(_)));
    let app = api::router(state)
        .layer(axum::Extension(secure))
        .into_make_service_with_connect_info::<SocketAddr>();
    let serve = async {
        match transport {
            Transport::Plain => {
                tracing::info!(%addr, "serving plain HTTP (loopback only)");
                let mut server = axum_server::from_tcp(listener)
                    .acceptor(limit)
                    .handle(handle.clone());
                configure(server.http_builder());
                server.serve(app).await
            }
            Transport::Tls(cfg) => {
                tracing::info!(%addr, "serving HTTPS");
                let rustls = axum_server::tls_rustls::RustlsConfig::from_config(cfg);
                let mut server = axum_server::tls_rustls::from_tcp_rustls(listener, rustls)
                    .map(|a| a.acceptor(limit))
                    .handle(handle.clone());
                configure(server.http_builder());
                server.serve(app).await
            }
        }
    };
    tokio::pin!(serve);
    tokio::select! {
        r = &mut serve => return Ok(r?),
        () = shutdown => {}
    }
    tracing::info!("shutting down: no new connections; letting requests finish");
    handle.graceful_shutdown(Some(GRACE));
    serve.await?;
    tracing::info!("stopped");
    Ok(())
}

/// Closes connections beyond the cap as soon as they are accepted.
#[derive(Clone)]
struct ConnLimit {
    permits: Arc<Semaphore>,
    state: AppState,
}

impl<S> Accept<TcpStream, S> for ConnLimit {
    type Stream = Counted;
    type Service = S;
    type Future = std::future::Ready<io::Result<(Counted, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let _ = stream.set_nodelay(true);
                std::future::ready(Ok((
                    Counted {
                        inner: stream,
                        _permit: permit,
                    },
                    service,
                )))
            }
            Err(_) => {
                let m: &Metrics = self.state.metrics();
                m.connection_refused();
                tracing::warn!("connection cap reached; closing a new connection");
                std::future::ready(Err(io::Error::other("connection cap reached")))
            }
        }
    }
}

/// A connection holding one of the capped permits until it closes.
struct Counted {
    inner: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
