use std::io::{ErrorKind, Read};
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// A coalesced client socket and the std peer it is connected to.
async fn pair(coalescer: &Coalescer) -> (CoalescedStream, std::net::TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (peer, _) = listener.accept().await.unwrap();
    let peer = peer.into_std().unwrap();
    peer.set_nonblocking(false).unwrap();
    (coalescer.wrap(client), peer)
}

/// What `peer` has received so far, without waiting.
fn received_now(peer: &mut std::net::TcpStream) -> Vec<u8> {
    peer.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match peer.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("peer read: {e}"),
        }
    }
    got
}

#[tokio::test]
async fn small_writes_of_many_sockets_wait_for_the_flusher_then_go_out_in_order() {
    let coalescer = Coalescer::new();
    let (mut a, mut peer_a) = pair(&coalescer).await;
    let (mut b, mut peer_b) = pair(&coalescer).await;
    a.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
    b.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    a.write_all(b"\r\nok").await.unwrap();
    a.flush().await.unwrap();
    assert!(
        received_now(&mut peer_a).is_empty(),
        "held until the batch ends"
    );
    assert!(received_now(&mut peer_b).is_empty());

    tokio::spawn(coalescer.clone().flusher());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(received_now(&mut peer_a), b"HTTP/1.1 200 OK\r\n\r\nok");
    assert_eq!(received_now(&mut peer_b), b"GET / HTTP/1.1\r\n");
}

#[tokio::test]
async fn a_large_write_sends_what_is_held_first() {
    let coalescer = Coalescer::new();
    let (mut stream, mut peer) = pair(&coalescer).await;
    let large = vec![b'x'; 64 * 1024];
    stream.write_all(b"head:").await.unwrap();
    stream.write_all(&large).await.unwrap();
    stream.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let got = received_now(&mut peer);
    assert_eq!(
        got.len(),
        5 + large.len(),
        "sent without the flusher running"
    );
    assert_eq!(&got[..5], b"head:");
    assert!(got[5..].iter().all(|&byte| byte == b'x'));
}

#[tokio::test]
async fn shutdown_sends_what_is_held_without_the_flusher() {
    let coalescer = Coalescer::new();
    let (mut stream, mut peer) = pair(&coalescer).await;
    stream.write_all(b"bye").await.unwrap();
    stream.shutdown().await.unwrap();
    let mut got = Vec::new();
    peer.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"bye");
}

/// Counts its wake-ups.
struct CountWakes(AtomicUsize);

impl std::task::Wake for CountWakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A held write that meets a full socket: the flusher wakes the writer's
/// task, and that task turning to read the reply sends the rest, so the
/// peer (which answers only once it has everything) gets every byte.
#[tokio::test]
async fn a_held_write_that_meets_a_full_socket_wakes_the_writer_and_its_read_finishes_it() {
    let coalescer = Coalescer::new();
    let (mut stream, mut peer) = pair(&coalescer).await;
    let wakes = Arc::new(CountWakes(AtomicUsize::new(0)));
    let waker = Waker::from(wakes.clone());
    let mut cx = Context::from_waker(&waker);
    let large = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    while let Poll::Ready(written) = Pin::new(&mut stream).poll_write(&mut cx, &large) {
        sent += written.unwrap();
    }
    let held = Pin::new(&mut stream).poll_write(&mut cx, b"tail");
    assert!(
        matches!(held, Poll::Ready(Ok(4))),
        "held while the socket is full"
    );
    let before = wakes.0.load(Ordering::SeqCst);
    let flusher = tokio::spawn(coalescer.clone().flusher());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        wakes.0.load(Ordering::SeqCst),
        before + 1,
        "the flusher hands the full socket back to the writer"
    );

    let reader = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        let mut got = vec![0u8; sent + 4];
        peer.read_exact(&mut got).unwrap();
        std::io::Write::write_all(&mut peer, b"done").unwrap();
        got
    });
    let mut reply = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut reply))
        .await
        .expect("the held tail went out while reading")
        .unwrap();
    assert_eq!(&reply, b"done");
    let got = reader.join().unwrap();
    assert!(got[..sent].iter().all(|&byte| byte == b'x'));
    assert_eq!(&got[sent..], b"tail");
    coalescer.close();
    tokio::time::timeout(Duration::from_secs(1), flusher)
        .await
        .expect("the flusher ends once closed")
        .unwrap();
}
