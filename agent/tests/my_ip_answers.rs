//! Security invariant: the answer of a "what is my IP" service is validated before it
//! becomes a request's source — and a compromised or broken service cannot make `jit`
//! read an endless answer. Real HTTP over loopback TCP: a service that streams without
//! end is cut off after a few kilobytes, counts as a failed service, and the others
//! still decide.
//!
//! (Which addresses are accepted is tested in `access::my_ip` and, end to end over
//! HTTPS, in `cli/tests/connect.rs`.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use jit_agent::access::my_ip::discover;
use jit_agent::azure::transport::{HttpTransport, TransportOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The most a hostile service writes here; far beyond any address.
const FLOOD_BYTES: usize = 64 * 1024 * 1024;

/// Serves HTTP/1.1 on loopback: every connection gets `head`, then `body_chunk` — once,
/// or (`flood`) repeated until `FLOOD_BYTES` or until the client goes away. Returns the
/// URL and the count of body bytes written.
async fn serve(head: &'static str, body_chunk: Vec<u8>, flood: bool) -> (String, Arc<AtomicUsize>) {
    let body_chunk: Arc<[u8]> = body_chunk.into();
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let address = listener.local_addr().expect("local address");
    let written = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&written);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = Arc::clone(&counter);
            let body_chunk = Arc::clone(&body_chunk);
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                loop {
                    if stream.write_all(&body_chunk).await.is_err() {
                        return;
                    }
                    let total = counter.fetch_add(body_chunk.len(), Ordering::Relaxed);
                    if !flood || total + body_chunk.len() >= FLOOD_BYTES {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{address}/"), written)
}

/// Sixteen KiB of hex digits.
fn digits() -> Vec<u8> {
    b"0123456789abcdef".repeat(1024)
}

/// The same, as one chunk of a chunked body (`4000` is 16 KiB in hex).
fn chunk() -> Vec<u8> {
    [b"4000\r\n".as_slice(), &digits(), b"\r\n"].concat()
}

async fn check_flood_is_cut_short(head: &'static str, body_chunk: Vec<u8>) {
    let (flood, written) = serve(head, body_chunk, true).await;
    let (honest, _) = serve(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\n",
        b"198.51.100.7\n".to_vec(),
        false,
    )
    .await;
    // The product's own client (rustls with ring, its timeouts), as `jit` uses it.
    let transport = HttpTransport::new(&TransportOptions::default()).expect("a client");
    let client = transport.client().clone();
    let started = Instant::now();
    let answer = discover(&client, &[flood.clone(), honest], Duration::from_secs(20)).await;
    let elapsed = started.elapsed();

    let flooded = &answer.answers[0];
    let reason = flooded
        .result
        .as_ref()
        .expect_err("an endless answer is no address");
    assert!(reason.contains("longer than"), "{reason}");
    assert!(
        elapsed < Duration::from_secs(10),
        "reading stopped early, not at the timeout ({elapsed:?})"
    );
    // Give the server a moment to notice the client left, then see how much it sent.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = written.load(Ordering::Relaxed);
    assert!(
        sent < FLOOD_BYTES / 4,
        "the client kept reading: {sent} bytes of {FLOOD_BYTES}"
    );
    // The honest service decides.
    assert_eq!(
        answer.ipv4().map(|address| address.to_string()).as_deref(),
        Some("198.51.100.7")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_chunked_answer_is_cut_off_and_ignored() {
    check_flood_is_cut_short(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n",
        chunk(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_announcing_a_huge_length_is_cut_off_and_ignored() {
    check_flood_is_cut_short(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000000000\r\n\r\n",
        digits(),
    )
    .await;
}
