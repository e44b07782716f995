//! A small HTTP/1.1 GET client for kubelets, with connections kept between scrapes.
//!
//! A general client (hyper through reqwest) keeps a read buffer per idle connection as large as
//! the last response (about 130 KiB at 30 pods per node, plus rustls' buffers over https), so
//! pooling one connection per node cost more memory than the rest of the collector. This client
//! reads each response straight into one buffer of its own, which it hands to the parser, and an
//! idle connection keeps nothing but its socket (and its TLS session). So connections can stay
//! open between ticks: no TCP connect and, over https, no TLS handshake per node per tick.
//!
//! It speaks just what kubelets answer: `GET`, `Content-Length` or chunked bodies, keep-alive.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use url::{Host, Position, Url};

use super::kubelet::ScrapeError;

/// Largest response header section accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Bytes asked of the socket at least per read.
const READ_CHUNK: usize = 16 * 1024;
/// The response buffer's size until the answer's first bytes are in: the buffer for the whole
/// answer is taken only then (see [`Http1Client::exchange`]).
const FIRST_READ: usize = 4 * 1024;
/// An idle connection unused this long is closed (Go's `IdleConnTimeout`).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Where a connection goes: scheme, host and port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Origin {
    https: bool,
    host: Box<str>,
    port: u16,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// An idle connection, when it was last used and the size of its last body.
struct Idle {
    stream: Stream,
    since: Instant,
    last_body: usize,
}

/// Idle connections, one per origin at most.
#[derive(Default)]
struct Pool {
    idle: HashMap<Origin, Idle>,
    swept: Option<Instant>,
}

impl Pool {
    /// Drops connections idle for longer than [`IDLE_TIMEOUT`] (at most once a minute).
    fn sweep(&mut self, now: Instant) {
        if self
            .swept
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(60))
        {
            return;
        }
        self.swept = Some(now);
        self.idle
            .retain(|_, idle| now.duration_since(idle.since) < IDLE_TIMEOUT);
    }
}

/// How a response's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    /// Until the server closes the connection.
    Close,
}

/// A parsed response head.
#[derive(Debug)]
struct Head {
    status: u16,
    len: usize,
    framing: Framing,
    keep_alive: bool,
}

/// The client: settings, TLS configuration and the idle connections.
pub struct Http1Client {
    tls: TlsConnector,
    /// Idle connections kept at most (0: none, each answer's connection is closed).
    max_idle: usize,
    connect_timeout: Duration,
    max_body: usize,
    user_agent: &'static str,
    pool: Mutex<Pool>,
    /// The last body read: the first capacity of a new connection's response buffer (a pooled
    /// connection goes by its own last body).
    last_body: AtomicUsize,
}

impl Http1Client {
    pub fn new(
        tls: Arc<rustls::ClientConfig>,
        max_idle: usize,
        connect_timeout: Duration,
        max_body: usize,
        user_agent: &'static str,
    ) -> Http1Client {
        Http1Client {
            tls: TlsConnector::from(tls),
            max_idle,
            connect_timeout,
            max_body,
            user_agent,
            pool: Mutex::default(),
            last_body: AtomicUsize::new(READ_CHUNK),
        }
    }

    /// Idle connections now held.
    #[cfg(test)]
    fn idle_connections(&self) -> usize {
        self.lock().idle.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// GETs `url`, sending `bearer` as the Authorization header. Returns a 2xx response's body;
    /// any other status is an error. The caller bounds the whole call in time.
    pub async fn get(&self, url: &Url, bearer: Option<&str>) -> Result<Bytes, ScrapeError> {
        let origin = origin(url)?;
        let request = self.request(url, bearer);
        let pooled = if self.max_idle > 0 {
            self.lock().idle.remove(&origin)
        } else {
            None
        };
        if let Some(mut idle) = pooled {
            // A pooled connection may have been closed by the kubelet meanwhile: when it fails
            // before any byte of an answer, try once more on a new connection.
            match self
                .exchange(&mut idle.stream, &request, idle.last_body)
                .await
            {
                Ok(r) => return self.finish(origin, idle.stream, r),
                Err(Exchange::Stale) => {}
                Err(Exchange::Failed(e)) => return Err(e),
            }
        }
        let mut stream = self.connect(url, &origin).await?;
        let hint = self.last_body.load(Ordering::Relaxed);
        match self.exchange(&mut stream, &request, hint).await {
            Ok(r) => self.finish(origin, stream, r),
            Err(Exchange::Stale) => Err(ScrapeError::Closed("before a response")),
            Err(Exchange::Failed(e)) => Err(e),
        }
    }

    fn finish(
        &self,
        origin: Origin,
        stream: Stream,
        (head, body): (Head, Bytes),
    ) -> Result<Bytes, ScrapeError> {
        self.last_body.store(body.len(), Ordering::Relaxed);
        if self.max_idle > 0 && head.keep_alive {
            let now = Instant::now();
            let idle = Idle {
                stream,
                since: now,
                last_body: body.len(),
            };
            let mut pool = self.lock();
            pool.sweep(now);
            // When the pool is full, this connection closes (its origin connects anew).
            if pool.idle.len() < self.max_idle {
                pool.idle.insert(origin, idle);
            }
        }
        if !(200..300).contains(&head.status) {
            return Err(ScrapeError::UnexpectedStatus {
                status: head.status,
            });
        }
        Ok(body)
    }

    fn request(&self, url: &Url, bearer: Option<&str>) -> Vec<u8> {
        let mut r = Vec::with_capacity(256);
        r.extend_from_slice(b"GET ");
        r.extend_from_slice(url[Position::BeforePath..Position::AfterQuery].as_bytes());
        r.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        r.extend_from_slice(url[Position::BeforeHost..Position::AfterPort].as_bytes());
        r.extend_from_slice(b"\r\nUser-Agent: ");
        r.extend_from_slice(self.user_agent.as_bytes());
        r.extend_from_slice(b"\r\nAccept: application/json, */*\r\n");
        if let Some(token) = bearer {
            r.extend_from_slice(b"Authorization: Bearer ");
            r.extend_from_slice(token.as_bytes());
            r.extend_from_slice(b"\r\n");
        }
        if self.max_idle == 0 {
            r.extend_from_slice(b"Connection: close\r\n");
        }
        r.extend_from_slice(b"\r\n");
        r
    }

    async fn connect(&self, url: &Url, origin: &Origin) -> Result<Stream, ScrapeError> {
        let host = url.host().ok_or(ScrapeError::NoAddress)?;
        let connect = async {
            match &host {
                Host::Ipv4(ip) => TcpStream::connect((IpAddr::V4(*ip), origin.port)).await,
                Host::Ipv6(ip) => TcpStream::connect((IpAddr::V6(*ip), origin.port)).await,
                Host::Domain(d) => TcpStream::connect((*d, origin.port)).await,
            }
        };
        let tcp = tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| ScrapeError::ConnectTimeout)?
            .map_err(ScrapeError::Connect)?;
        // Requests are written whole; the answer is read as it comes.
        let _ = tcp.set_nodelay(true);
        if !origin.https {
            return Ok(Stream::Plain(tcp));
        }
        let name = match host {
            Host::Ipv4(ip) => ServerName::IpAddress(IpAddr::V4(ip).into()),
            Host::Ipv6(ip) => ServerName::IpAddress(IpAddr::V6(ip).into()),
            Host::Domain(d) => {
                ServerName::try_from(d.to_string()).map_err(ScrapeError::ServerName)?
            }
        };
        let tls = tokio::time::timeout(self.connect_timeout, self.tls.connect(name, tcp))
            .await
            .map_err(|_| ScrapeError::HandshakeTimeout)?
            .map_err(ScrapeError::Handshake)?;
        Ok(Stream::Tls(Box::new(tls)))
    }

    /// Writes the request and reads the answer into a buffer sized for a body of about `hint`
    /// bytes.
    async fn exchange(
        &self,
        stream: &mut Stream,
        request: &[u8],
        hint: usize,
    ) -> Result<(Head, Bytes), Exchange> {
        if stream.write_all(request).await.is_err() {
            return Err(Exchange::Stale);
        }
        // While the kubelet prepares its answer, the buffer is small: up to
        // `--max_concurrent_scrapes` requests wait at once (all of them, when kubelets are slow),
        // and a body's worth each would be held for nothing. Once the first bytes are in, room
        // for the head, chunk framing and some growth of the body is taken in one step (the
        // first bytes copied once).
        let hint = hint.min(self.max_body);
        let whole = hint + hint / 16 + 1024;
        let mut buf = BytesMut::with_capacity(FIRST_READ.min(whole));
        // The head.
        let head = loop {
            match read_more(stream, &mut buf).await {
                Ok(0) | Err(_) if buf.is_empty() => return Err(Exchange::Stale),
                Ok(0) => {
                    return Err(Exchange::Failed(ScrapeError::Closed(
                        "in the response head",
                    )));
                }
                Err(e) => return Err(Exchange::Failed(ScrapeError::Read(e))),
                Ok(_) => {}
            }
            if buf.capacity() < whole {
                buf.reserve(whole - buf.len());
            }
            if let Some(head) = parse_head(&buf).map_err(Exchange::Failed)? {
                break head;
            }
            if buf.len() > MAX_HEAD {
                return Err(Exchange::Failed(ScrapeError::Malformed(
                    "response head too large",
                )));
            }
        };
        let body = read_body(stream, buf, &head, self.max_body)
            .await
            .map_err(Exchange::Failed)?;
        Ok((head, body))
    }
}

enum Exchange {
    /// The connection closed or failed before any byte of an answer: on a pooled connection,
    /// worth one more try on a new one.
    Stale,
    Failed(ScrapeError),
}

fn origin(url: &Url) -> Result<Origin, ScrapeError> {
    let https = match url.scheme() {
        "https" => true,
        "http" => false,
        other => return Err(ScrapeError::Scheme(other.to_string())),
    };
    Ok(Origin {
        https,
        host: url.host_str().ok_or(ScrapeError::NoAddress)?.into(),
        port: url.port_or_known_default().ok_or(ScrapeError::NoAddress)?,
    })
}

/// Reads what the socket has into `buf`'s spare room, growing it only when it is full (so a
/// buffer sized for the whole answer is never moved).
async fn read_more(stream: &mut Stream, buf: &mut BytesMut) -> std::io::Result<usize> {
    if buf.len() == buf.capacity() {
        buf.reserve(READ_CHUNK);
    }
    stream.read_buf(buf).await
}

/// Parses the status line and headers once they are all in `buf`.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, ScrapeError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(ScrapeError::Head(e)),
    };
    let status = resp.code.unwrap_or(0);
    let mut keep_alive = resp.version == Some(1);
    let mut framing = Framing::Close;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .ok_or(ScrapeError::Malformed("invalid Content-Length"))?;
            if framing == Framing::Close {
                framing = Framing::Length(n);
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked wins over a length (RFC 9112, 6.3).
            if h.value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                framing = Framing::Chunked;
            } else {
                return Err(ScrapeError::Malformed("unsupported Transfer-Encoding"));
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        }
    }
    if framing == Framing::Close {
        keep_alive = false;
    }
    Ok(Some(Head {
        status,
        len,
        framing,
        keep_alive,
    }))
}

/// Reads the body after a head of `head.len` bytes at the start of `buf`; the body is returned
/// in place, without a copy (a chunked body is joined up inside the same buffer).
async fn read_body(
    stream: &mut Stream,
    mut buf: BytesMut,
    head: &Head,
    max_body: usize,
) -> Result<Bytes, ScrapeError> {
    let too_large = || ScrapeError::TooLarge { limit: max_body };
    let io = ScrapeError::Read;
    let eof = || ScrapeError::Closed("in the body");
    let start = head.len;
    match head.framing {
        Framing::Length(n) => {
            if n > max_body {
                return Err(too_large());
            }
            let end = start + n;
            if buf.capacity() < end {
                buf.reserve(end - buf.len());
            }
            while buf.len() < end {
                if read_more(stream, &mut buf).await.map_err(io)? == 0 {
                    return Err(eof());
                }
            }
            if buf.len() > end {
                // More than the body: nothing else was asked for, so the stream is confused.
                return Err(ScrapeError::Malformed("data after the response body"));
            }
            Ok(buf.freeze().slice(start..end))
        }
        Framing::Close => {
            loop {
                if buf.len() - start > max_body {
                    return Err(too_large());
                }
                if read_more(stream, &mut buf).await.map_err(io)? == 0 {
                    break;
                }
            }
            Ok(buf.freeze().slice(start..))
        }
        Framing::Chunked => {
            // `out`: end of the body joined so far; `pos`: next chunk header.
            let mut out = start;
            let mut pos = start;
            loop {
                let Some(line_end) = find_crlf(&buf[pos..]) else {
                    if buf.len() - pos > 1024 {
                        return Err(ScrapeError::Malformed("invalid chunk header"));
                    }
                    if read_more(stream, &mut buf).await.map_err(io)? == 0 {
                        return Err(eof());
                    }
                    continue;
                };
                let size = chunk_size(&buf[pos..pos + line_end])?;
                let data = pos + line_end + 2;
                if size == 0 {
                    // Trailers (none expected) end with an empty line.
                    let mut t = data;
                    loop {
                        match find_crlf(&buf[t..]) {
                            Some(0) => break,
                            Some(n) => t += n + 2,
                            None => {
                                if buf.len() - t > 8 * 1024 {
                                    return Err(ScrapeError::Malformed("trailers too large"));
                                }
                                if read_more(stream, &mut buf).await.map_err(io)? == 0 {
                                    return Err(eof());
                                }
                            }
                        }
                    }
                    if buf.len() > t + 2 {
                        return Err(ScrapeError::Malformed("data after the response body"));
                    }
                    buf.truncate(out);
                    return Ok(buf.freeze().slice(start..));
                }
                if out - start + size > max_body {
                    return Err(too_large());
                }
                let need = data + size + 2;
                if buf.capacity() < need {
                    buf.reserve(need - buf.len());
                }
                while buf.len() < need {
                    if read_more(stream, &mut buf).await.map_err(io)? == 0 {
                        return Err(eof());
                    }
                }
                if &buf[data + size..need] != b"\r\n" {
                    return Err(ScrapeError::Malformed("invalid chunk end"));
                }
                buf.copy_within(data..data + size, out);
                out += size;
                pos = need;
            }
        }
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// A chunk-size line: hex digits, optionally followed by `;extensions`.
fn chunk_size(line: &[u8]) -> Result<usize, ScrapeError> {
    let hex = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    let bad = || ScrapeError::Malformed("invalid chunk size");
    if hex.is_empty() || hex.len() > 15 {
        return Err(bad());
    }
    let mut n = 0usize;
    for &c in hex {
        let d = (c as char).to_digit(16).ok_or_else(bad)?;
        n = n * 16 + d as usize;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server on 127.0.0.1 that answers every request on a connection with `answer`, and
    /// closes the connection after `per_conn` answers. Returns its URL and the number of
    /// connections it accepted.
    async fn server(answer: Vec<u8>, per_conn: usize) -> (Url, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    for _ in 0..per_conn {
                        req.clear();
                        let mut b = [0u8; 1024];
                        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                            match s.read(&mut b).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => req.extend_from_slice(&b[..n]),
                            }
                        }
                        if s.write_all(&answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let url = Url::parse(&format!("http://{addr}/stats/summary")).expect("url");
        (url, accepted)
    }

    fn client(keep_alive: bool, max_body: usize) -> Http1Client {
        let tls = super::super::kubelet::tests_tls_config();
        Http1Client::new(
            Arc::new(tls),
            usize::from(keep_alive),
            Duration::from_secs(5),
            max_body,
            "test",
        )
    }

    /// Three GETs of a `Content-Length` answer: (connections accepted, idle connections after).
    async fn three_gets(keep_alive: bool) -> (usize, usize) {
        let (url, accepted) = server(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
            10,
        )
        .await;
        let c = client(keep_alive, 1 << 20);
        for _ in 0..3 {
            assert_eq!(&c.get(&url, None).await.expect("get")[..], b"hello");
        }
        (accepted.load(Ordering::SeqCst), c.idle_connections())
    }

    #[tokio::test]
    async fn content_length_bodies_reuse_one_connection() {
        assert_eq!(three_gets(true).await, (1, 1));
    }

    #[tokio::test]
    async fn without_keep_alive_each_request_connects() {
        assert_eq!(three_gets(false).await, (3, 0));
    }

    #[tokio::test]
    async fn a_full_pool_closes_the_extra_connections() {
        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec();
        let (one, accepted_one) = server(answer.clone(), 10).await;
        let (two, accepted_two) = server(answer, 10).await;
        let c = client(true, 1 << 20);
        for _ in 0..2 {
            assert_eq!(&c.get(&one, None).await.expect("get")[..], b"ok");
            assert_eq!(&c.get(&two, None).await.expect("get")[..], b"ok");
        }
        // One idle connection at most: the first origin's stays pooled, the second's closes.
        assert_eq!(c.idle_connections(), 1);
        assert_eq!(accepted_one.load(Ordering::SeqCst), 1);
        assert_eq!(accepted_two.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn chunked_bodies_are_joined() {
        let answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
            5\r\nhello\r\n1;ext=1\r\n,\r\nA\r\n worldwide\r\n0\r\nX-Trailer: 1\r\n\r\n";
        let (url, accepted) = server(answer.to_vec(), 10).await;
        let c = client(true, 1 << 20);
        for _ in 0..2 {
            assert_eq!(
                &c.get(&url, None).await.expect("get")[..],
                b"hello, worldwide"
            );
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn large_chunked_bodies_arrive_whole() {
        let body: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let mut answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for part in body.chunks(4093) {
            answer.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
            answer.extend_from_slice(part);
            answer.extend_from_slice(b"\r\n");
        }
        answer.extend_from_slice(b"0\r\n\r\n");
        let (url, _) = server(answer, 10).await;
        let c = client(true, 1 << 20);
        // The second answer's buffer is sized by the first body, once its first bytes are in.
        for _ in 0..2 {
            assert_eq!(&c.get(&url, None).await.expect("get")[..], &body[..]);
        }
    }

    #[tokio::test]
    async fn large_heads_and_bodies_past_the_first_read() {
        let body: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let mut answer = b"HTTP/1.1 200 OK\r\n".to_vec();
        // A head longer than the first read.
        for i in 0..40 {
            let pad = "0123456789abcdef".repeat(8);
            answer.extend_from_slice(format!("X-Padding-{i}: {pad}\r\n").as_bytes());
        }
        assert!(answer.len() > FIRST_READ);
        answer.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        answer.extend_from_slice(&body);
        let (url, accepted) = server(answer, 10).await;
        let c = client(true, 1 << 20);
        for _ in 0..3 {
            assert_eq!(&c.get(&url, None).await.expect("get")[..], &body[..]);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_body_until_close_is_read_and_not_pooled() {
        let (url, accepted) = server(b"HTTP/1.0 200 OK\r\n\r\nhello".to_vec(), 1).await;
        let c = client(true, 1 << 20);
        for _ in 0..2 {
            assert_eq!(&c.get(&url, None).await.expect("get")[..], b"hello");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert_eq!(c.idle_connections(), 0);
    }

    #[tokio::test]
    async fn a_connection_closed_while_idle_is_replaced() {
        // One answer per connection, without saying so: the pooled connection is dead when
        // it is next used, and the request goes again on a new one.
        let (url, accepted) = server(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            1,
        )
        .await;
        let c = client(true, 1 << 20);
        for _ in 0..3 {
            assert_eq!(&c.get(&url, None).await.expect("get")[..], b"ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn too_large_bodies_and_bad_statuses_are_errors() {
        let (url, _) = server(
            b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world".to_vec(),
            10,
        )
        .await;
        let c = client(true, 10);
        assert!(matches!(
            c.get(&url, None).await,
            Err(ScrapeError::TooLarge { limit: 10 })
        ));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
            6\r\nhello \r\n6\r\nworld!\r\n0\r\n\r\n";
        let (url, _) = server(chunked.to_vec(), 10).await;
        assert!(matches!(
            c.get(&url, None).await,
            Err(ScrapeError::TooLarge { limit: 10 })
        ));
        let (url, accepted) = server(
            b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\nno".to_vec(),
            10,
        )
        .await;
        let c = client(true, 1 << 20);
        for _ in 0..2 {
            assert!(matches!(
                c.get(&url, None).await,
                Err(ScrapeError::UnexpectedStatus { status: 401 })
            ));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        let (url, _) = server(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n".to_vec(), 10).await;
        assert!(matches!(
            c.get(&url, None).await,
            Err(ScrapeError::Malformed(_))
        ));
        let (url, _) = server(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
            10,
        )
        .await;
        assert!(matches!(
            c.get(&url, None).await,
            Err(ScrapeError::Malformed(_))
        ));
    }

    #[test]
    fn requests_carry_host_token_and_connection() {
        let url = Url::parse("https://10.0.0.1:10250/stats/summary?only_cpu_and_memory=true")
            .expect("url");
        let r = client(false, 1).request(&url, Some("tok"));
        assert_eq!(
            String::from_utf8(r).expect("utf8"),
            "GET /stats/summary?only_cpu_and_memory=true HTTP/1.1\r\nHost: 10.0.0.1:10250\r\n\
             User-Agent: test\r\nAccept: application/json, */*\r\nAuthorization: Bearer tok\r\n\
             Connection: close\r\n\r\n"
        );
        let url = Url::parse("http://[::1]/metrics/resource").expect("url");
        let r = client(true, 1).request(&url, None);
        assert_eq!(
            String::from_utf8(r).expect("utf8"),
            "GET /metrics/resource HTTP/1.1\r\nHost: [::1]\r\nUser-Agent: test\r\n\
             Accept: application/json, */*\r\n\r\n"
        );
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(chunk_size(b"1f").ok(), Some(31));
        assert_eq!(chunk_size(b"A;name=value").ok(), Some(10));
        assert!(chunk_size(b"").is_err());
        assert!(chunk_size(b"g").is_err());
        assert!(chunk_size(b"1234567890abcdef").is_err());
    }
}
