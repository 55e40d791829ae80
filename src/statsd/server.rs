//! The StatsD UDP socket and the task that reads it.

use std::net::SocketAddr;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Intake;

/// The bound StatsD socket and its intake, not started yet.
#[derive(Debug)]
pub struct StatsdServer {
    socket: std::net::UdpSocket,
    intake: Intake,
    swap: mpsc::Receiver<Intake>,
    handle: StatsdHandle,
}

/// Hands a running server a new intake (on reload): it takes it between
/// two datagrams; the socket stays bound.
#[derive(Debug, Clone)]
pub struct StatsdHandle {
    tx: mpsc::Sender<Intake>,
}

impl StatsdHandle {
    /// Replaces the intake; `false` when the server has stopped.
    pub async fn swap(&self, intake: Intake) -> bool {
        self.tx.send(intake).await.is_ok()
    }
}

impl StatsdServer {
    /// Binds the socket (non-blocking) with a receive buffer of
    /// `receive_buffer` bytes (the kernel caps it at `net.core.rmem_max`), so
    /// bursts wait in the kernel instead of being dropped.
    pub fn bind(
        listen: SocketAddr,
        receive_buffer: usize,
        intake: Intake,
    ) -> std::io::Result<Self> {
        use socket2::{Domain, Protocol, Socket, Type};
        let socket = Socket::new(
            Domain::for_address(listen),
            Type::DGRAM,
            Some(Protocol::UDP),
        )?;
        if receive_buffer > 0 {
            // Best effort: a smaller buffer still works.
            let _ = socket.set_recv_buffer_size(receive_buffer);
        }
        socket.bind(&listen.into())?;
        socket.set_nonblocking(true)?;
        let (tx, swap) = mpsc::channel(1);
        Ok(Self {
            socket: socket.into(),
            intake,
            swap,
            handle: StatsdHandle { tx },
        })
    }

    /// The handle to swap the intake through.
    pub fn handle(&self) -> StatsdHandle {
        self.handle.clone()
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Receives datagrams until `stop`.
    pub async fn run(mut self, stop: CancellationToken) {
        let socket = match tokio::net::UdpSocket::from_std(self.socket) {
            Ok(socket) => socket,
            Err(error) => {
                tracing::error!(%error, "statsd socket cannot be used");
                return;
            }
        };
        // One byte more than allowed, to tell an oversized datagram (cut by the kernel).
        let mut buf = vec![0u8; self.intake.max_packet_bytes() + 1];
        drop(self.handle);
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                Some(intake) = self.swap.recv() => {
                    self.intake = intake;
                    buf = vec![0u8; self.intake.max_packet_bytes() + 1];
                    continue;
                }
                ready = socket.readable() => {
                    if let Err(error) = ready {
                        tracing::warn!(%error, "statsd socket failed");
                        return;
                    }
                }
            }
            loop {
                match socket.try_recv_from(&mut buf) {
                    Ok((n, _)) => self.intake.packet(&buf[..n.min(buf.len())], n),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(error) => {
                        tracing::debug!(%error, "statsd receive failed");
                        break;
                    }
                }
            }
        }
    }
}
