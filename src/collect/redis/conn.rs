//! One connection to one Redis server: TCP (or TLS), `AUTH`, `CLIENT SETNAME
//! sidewatch`, `SELECT`, then commands in RESP2 with pipelining.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::resp::{self, Value};
use crate::config::RedisEndpoint;

/// The name sidewatch's connection carries in `CLIENT LIST`.
pub const CLIENT_NAME: &str = "sidewatch";

/// Why talking to the server failed. Messages never hold the password.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// The TCP connection could not be opened (refused, unreachable, DNS).
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The connection broke or was closed while in use.
    #[error("connection lost: {0}")]
    Io(#[from] std::io::Error),
    /// The TLS handshake failed (certificate, protocol, plain-text server).
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// The server refused the credentials, or requires some and got none.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The reply was not valid RESP or not what the command returns.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// No reconnect is attempted until the back-off has passed.
    #[error("reconnecting in {wait:.1?} (last error: {last})")]
    Backoff {
        /// Time left before the next attempt.
        wait: std::time::Duration,
        /// The last connect failure.
        last: String,
    },
}

impl RedisError {
    /// The `reason` label: `connect`, `auth`, `tls` or `protocol`.
    pub fn reason(&self) -> &'static str {
        match self {
            RedisError::Connect { .. } | RedisError::Io(_) | RedisError::Backoff { .. } => {
                "connect"
            }
            RedisError::Tls(_) => "tls",
            RedisError::Auth(_) => "auth",
            RedisError::Protocol(_) => "protocol",
        }
    }
}

/// Whether an error reply means missing credentials or permissions.
pub fn is_auth_error(message: &str) -> bool {
    ["NOAUTH", "WRONGPASS", "NOPERM", "ERR invalid password"]
        .iter()
        .any(|prefix| message.starts_with(prefix))
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// An open, authenticated connection.
pub struct Connection {
    stream: Box<dyn Io>,
    buf: Vec<u8>,
    /// Whether `CLIENT SETNAME` was accepted.
    pub named: bool,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("named", &self.named)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects, authenticates, names the connection and selects the database.
    /// A TLS handshake that has not finished within `handshake_timeout`
    /// (a plain-text server waits for a line that never comes) fails as `tls`.
    pub async fn open(
        endpoint: &RedisEndpoint,
        tls: Option<&TlsConnector>,
        handshake_timeout: std::time::Duration,
    ) -> Result<Self, RedisError> {
        let addr = match endpoint.host.contains(':') {
            true => format!("[{}]:{}", endpoint.host, endpoint.port),
            false => format!("{}:{}", endpoint.host, endpoint.port),
        };
        let tcp = TcpStream::connect(&addr)
            .await
            .map_err(|source| RedisError::Connect {
                addr: addr.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Io> = match tls {
            None => Box::new(tcp),
            Some(connector) => {
                let name = super::tls::server_name(&endpoint.host).map_err(RedisError::Tls)?;
                let stream = tokio::time::timeout(handshake_timeout, connector.connect(name, tcp))
                    .await
                    .map_err(|_| {
                        RedisError::Tls(format!(
                            "no TLS handshake within {handshake_timeout:?} (does the port serve TLS?)"
                        ))
                    })?
                    .map_err(|e| RedisError::Tls(e.to_string()))?;
                Box::new(stream)
            }
        };
        let mut connection = Connection {
            stream,
            buf: Vec::with_capacity(16 * 1024),
            named: false,
        };
        connection.handshake(endpoint).await?;
        Ok(connection)
    }

    /// `AUTH`, `CLIENT SETNAME`, `SELECT`, sent in one write.
    async fn handshake(&mut self, endpoint: &RedisEndpoint) -> Result<(), RedisError> {
        let db = endpoint.db.to_string();
        let mut commands: Vec<Vec<&[u8]>> = Vec::new();
        if let Some(password) = &endpoint.password {
            let mut auth: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = &endpoint.username {
                auth.push(user.as_bytes());
            }
            auth.push(password.expose().as_bytes());
            commands.push(auth);
        }
        commands.push(vec![b"CLIENT", b"SETNAME", CLIENT_NAME.as_bytes()]);
        if endpoint.db != 0 {
            commands.push(vec![b"SELECT", db.as_bytes()]);
        }
        let replies = self.pipeline(&commands).await?;
        let mut replies = replies.into_iter();
        if endpoint.password.is_some() {
            match replies.next() {
                // A password for a server that has none: the connection works anyway.
                Some(Value::Error(e)) if e.contains("without any password configured") => {}
                Some(Value::Error(e)) => return Err(RedisError::Auth(e)),
                Some(_) => {}
                None => return Err(RedisError::Protocol("no reply to AUTH".into())),
            }
        }
        match replies.next() {
            Some(Value::Error(e)) if is_auth_error(&e) => return Err(RedisError::Auth(e)),
            // CLIENT may be renamed or disabled: the connection is only unnamed.
            Some(Value::Error(_)) => {}
            Some(_) => self.named = true,
            None => return Err(RedisError::Protocol("no reply to CLIENT SETNAME".into())),
        }
        if endpoint.db != 0 {
            match replies.next() {
                Some(Value::Error(e)) if is_auth_error(&e) => return Err(RedisError::Auth(e)),
                Some(Value::Error(e)) => {
                    return Err(RedisError::Protocol(format!("SELECT {}: {e}", endpoint.db)))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Sends one command and reads its reply (which may be an error reply).
    pub async fn command(&mut self, args: &[&[u8]]) -> Result<Value, RedisError> {
        let mut replies = self.pipeline(&[args.to_vec()]).await?;
        replies
            .pop()
            .ok_or_else(|| RedisError::Protocol("no reply".into()))
    }

    /// Sends several commands in one write and reads their replies in order.
    pub async fn pipeline(&mut self, commands: &[Vec<&[u8]>]) -> Result<Vec<Value>, RedisError> {
        let mut out = Vec::new();
        for command in commands {
            resp::encode(command, &mut out);
        }
        self.stream.write_all(&out).await?;
        self.stream.flush().await?;
        let mut replies = Vec::with_capacity(commands.len());
        while replies.len() < commands.len() {
            replies.push(self.read_reply().await?);
        }
        Ok(replies)
    }

    async fn read_reply(&mut self) -> Result<Value, RedisError> {
        loop {
            if !self.buf.is_empty() {
                match resp::parse(&self.buf) {
                    Ok(Some((value, used))) => {
                        self.buf.drain(..used);
                        return Ok(value);
                    }
                    Ok(None) => {}
                    Err(e) => return Err(RedisError::Protocol(e.0)),
                }
            }
            if self.buf.len() > resp::MAX_REPLY_BYTES {
                return Err(RedisError::Protocol("reply too large".into()));
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(RedisError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "server closed the connection",
                )));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}
