//! A strict reading of request heads in front of hyper, for listeners whose callers deserve a
//! JSON answer to a malformed request (the admin plane).
//!
//! hyper settles two things itself, below any handler: a request with both `Content-Length`
//! and `Transfer-Encoding` is read by its chunked framing (the length header removed), and a
//! request target that is not UTF-8 gets an empty `400`. RFC 9112 §6.1 lets a server refuse the
//! first (it is how requests are smuggled past proxies), and an operator's client should be told
//! what is wrong in the API's own error shape. `Checked` follows the HTTP/1.1 framing of the
//! bytes it passes on (heads, then fixed or chunked bodies) and holds each head back until it is
//! complete; a head with either fault is not passed on. hyper then sees the end of the stream
//! after the requests before it, answers those, and closes; on that close the refusal, rendered
//! by the listener's [`Refuse`], is written, so it follows their answers in order, and the
//! connection ends (nothing after the faulty head, such as a smuggled request, is ever read as a
//! request). Anything else unusual (a head too large, a malformed chunk) is passed on as is:
//! hyper and the handlers answer it.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Renders the whole HTTP response refusing a request: `(field, message)` → response bytes.
pub type Refuse = fn(&str, &str) -> Vec<u8>;

/// The most bytes of one head held back; a larger head is passed on for hyper to refuse (431).
const MAX_HEAD: usize = 64 * 1024;
/// The most bytes of a chunk-size or trailer line followed.
const MAX_LINE: usize = 4096;
const MAX_HEADERS: usize = 128;

#[derive(Debug)]
enum State {
    /// Collecting a head in `held`.
    Head,
    /// A body of this many more bytes.
    Fixed(u64),
    /// A chunked body: reading a chunk-size line (collected in `line`).
    ChunkSize,
    /// Inside a chunk: this many data bytes, then its CRLF.
    ChunkData(u64),
    /// Trailer lines after the last chunk, until an empty one.
    Trailer,
    /// Framing no longer followed: everything is passed on.
    Passthrough,
    /// A head was refused: the stream ends here for hyper.
    Refused,
}

/// An I/O stream whose reads pass only well-framed requests on (see the module doc).
#[derive(Debug)]
pub(super) struct Checked<S> {
    inner: S,
    refuse: Refuse,
    state: State,
    /// Bytes of the current head, not yet passed on.
    held: Vec<u8>,
    /// The current chunk-size or trailer line.
    line: Vec<u8>,
    /// Bytes ready to be read.
    ready: Vec<u8>,
    /// How much of `ready` has been read.
    offset: usize,
    /// The refusal still to be written (on shutdown), and how much of it is written.
    refusal: Option<(Vec<u8>, usize)>,
}

impl<S> Checked<S> {
    pub(super) fn new(inner: S, refuse: Refuse) -> Self {
        Self {
            inner,
            refuse,
            state: State::Head,
            held: Vec::new(),
            line: Vec::new(),
            ready: Vec::new(),
            offset: 0,
            refusal: None,
        }
    }

    /// Follows the framing of `bytes`, moving what may be read to `ready`.
    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match self.state {
                State::Refused => return,
                State::Passthrough => {
                    self.ready.extend_from_slice(bytes);
                    return;
                }
                State::Head => {
                    self.held.extend_from_slice(bytes);
                    bytes = &[];
                    // Heads without a body may follow each other in one read.
                    while matches!(self.state, State::Head) && self.check_head() {}
                    if !matches!(self.state, State::Head | State::Refused) && !self.held.is_empty() {
                        // What followed the head belongs to its body (or the next request).
                        let rest = std::mem::take(&mut self.held);
                        self.feed(&rest);
                    }
                }
                State::Fixed(left) => {
                    let take = usize::try_from(left).map_or(bytes.len(), |left| left.min(bytes.len()));
                    self.ready.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    let left = left - take as u64;
                    self.state = if left == 0 { State::Head } else { State::Fixed(left) };
                }
                State::ChunkData(left) => {
                    let take = usize::try_from(left).map_or(bytes.len(), |left| left.min(bytes.len()));
                    self.ready.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    let left = left - take as u64;
                    // The chunk's own CRLF is read as the start of the next size line.
                    self.state = if left == 0 { State::ChunkSize } else { State::ChunkData(left) };
                }
                State::ChunkSize | State::Trailer => {
                    let end = bytes.iter().position(|&b| b == b'\n').map_or(bytes.len(), |at| at + 1);
                    self.ready.extend_from_slice(&bytes[..end]);
                    self.line.extend_from_slice(&bytes[..end]);
                    bytes = &bytes[end..];
                    if self.line.len() > MAX_LINE {
                        self.state = State::Passthrough;
                    } else if self.line.ends_with(b"\n") {
                        let line = std::mem::take(&mut self.line);
                        self.end_line(&line);
                    }
                }
            }
        }
    }

    /// Refuses the head in `held`: nothing of it or after it is passed on.
    fn refuse_head(&mut self, field: &str, message: &str) {
        self.refusal = Some(((self.refuse)(field, message), 0));
        self.state = State::Refused;
        self.held.clear();
    }

    /// A complete chunk-size or trailer line.
    fn end_line(&mut self, line: &[u8]) {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        self.state = match self.state {
            // The CRLF that ends a chunk's data.
            State::ChunkSize if text.is_empty() => State::ChunkSize,
            State::ChunkSize => match httparse::parse_chunk_size(line) {
                Ok(httparse::Status::Complete((_, 0))) => State::Trailer,
                Ok(httparse::Status::Complete((_, size))) => State::ChunkData(size),
                // Malformed: hyper refuses it and the handler answers 400.
                _ => State::Passthrough,
            },
            State::Trailer if text.is_empty() => State::Head,
            _ => State::Trailer,
        };
    }

    /// Checks `held` once it holds a whole head; whether one was taken off `held`.
    fn check_head(&mut self) -> bool {
        // httparse refuses target bytes that are not UTF-8 with a generic token error (and
        // hyper with an empty 400): look at the request line first, as soon as it is whole.
        if !target_is_utf8(&self.held) {
            self.refuse_head("path", "the request target is not valid UTF-8; percent-encode it");
            return false;
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        let length = match request.parse(&self.held) {
            Ok(httparse::Status::Complete(length)) => length,
            Ok(httparse::Status::Partial) if self.held.len() <= MAX_HEAD => return false,
            // Judged once the request line is whole (its target may be what is wrong).
            Err(_) if !request_line_complete(&self.held) && self.held.len() <= MAX_HEAD => return false,
            // Too large, too many headers or malformed: hyper answers it.
            _ => {
                self.state = State::Passthrough;
                let held = std::mem::take(&mut self.held);
                self.ready.extend_from_slice(&held);
                return false;
            }
        };
        let (mut length_header, mut chunked, mut encoded) = (None, false, false);
        for header in request.headers.iter() {
            if header.name.eq_ignore_ascii_case("content-length") {
                length_header = std::str::from_utf8(header.value).ok().and_then(|v| v.trim().parse::<u64>().ok());
                length_header = length_header.or(Some(u64::MAX));
            } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                encoded = true;
                chunked = header.value.to_ascii_lowercase().trim_ascii_end().ends_with(b"chunked");
            }
        }
        if length_header.is_some() && encoded {
            self.refuse_head(
                "Transfer-Encoding",
                "a request may carry Content-Length or Transfer-Encoding, not both (RFC 9112 §6.3)",
            );
            return false;
        }
        let head: Vec<u8> = self.held.drain(..length).collect();
        self.ready.extend_from_slice(&head);
        self.state = match (encoded, chunked, length_header) {
            (true, true, _) => State::ChunkSize,
            // A non-chunked encoding or an unreadable length: hyper refuses it.
            (true, false, _) | (false, _, Some(u64::MAX)) => State::Passthrough,
            (false, _, Some(length)) if length > 0 => State::Fixed(length),
            _ => State::Head,
        };
        true
    }
}

/// Whether `head` holds a whole request line (after any empty lines).
fn request_line_complete(head: &[u8]) -> bool {
    let start = head.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(head.len());
    head[start..].contains(&b'\n')
}

/// Whether the target of the request line at the start of `head` (after empty lines) is UTF-8,
/// or the line is not whole yet.
fn target_is_utf8(head: &[u8]) -> bool {
    let start = head.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(head.len());
    let line = &head[start..];
    let Some(end) = line.iter().position(|&b| b == b'\r' || b == b'\n') else { return true };
    let line = &line[..end];
    line.split(|&b| b == b' ')
        .filter(|part| !part.is_empty())
        .nth(1)
        .is_none_or(|target| std::str::from_utf8(target).is_ok())
}

impl<S: AsyncRead + Unpin> AsyncRead for Checked<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.offset < this.ready.len() {
                let take = (this.ready.len() - this.offset).min(buf.remaining());
                buf.put_slice(&this.ready[this.offset..this.offset + take]);
                this.offset += take;
                if this.offset == this.ready.len() {
                    this.ready.clear();
                    this.offset = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if matches!(this.state, State::Refused) {
                // The end of the stream, as far as hyper is concerned.
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // The client is done: an incomplete head goes to hyper as it is.
                let held = std::mem::take(&mut this.held);
                if held.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                this.ready = held;
                this.state = State::Passthrough;
                continue;
            }
            let filled = read.filled().to_vec();
            this.feed(&filled);
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Checked<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        // hyper closes once it has answered everything before the refused head: the refusal
        // goes out last.
        while let Some((response, written)) = &mut this.refusal {
            if *written == response.len() {
                this.refusal = None;
                break;
            }
            let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &response[*written..]))?;
            if n == 0 {
                this.refusal = None;
                break;
            }
            *written += n;
        }
        ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refuse(field: &str, message: &str) -> Vec<u8> {
        format!("REFUSED {field}: {message}").into_bytes()
    }

    /// Feeds `input` one byte at a time (every split point) and whole; both must agree.
    fn passed(input: &[u8]) -> (Vec<u8>, bool) {
        let mut whole = Checked::new((), refuse);
        whole.feed(input);
        let mut bytewise = Checked::new((), refuse);
        for byte in input {
            bytewise.feed(std::slice::from_ref(byte));
        }
        assert_eq!(whole.ready, bytewise.ready, "{:?}", String::from_utf8_lossy(input));
        (whole.ready, whole.refusal.is_some())
    }

    #[test]
    fn well_framed_requests_pass_unchanged() {
        let requests: &[&[u8]] = &[
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
            b"PUT /a HTTP/1.1\r\nContent-Length: 5\r\n\r\n\r\n\r\n\rPUT /b HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            b"PUT /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nab\r\nc\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.1\r\n\r\n",
            b"GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n",
        ];
        for request in requests {
            assert_eq!(passed(request), (request.to_vec(), false), "{:?}", String::from_utf8_lossy(request));
        }
    }

    #[test]
    fn both_lengths_and_non_utf8_targets_are_refused_and_nothing_after_them_passes() {
        let first = b"GET /ok HTTP/1.1\r\n\r\n".to_vec();
        for faulty in [
            &b"PUT /a HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
            b"PUT /a HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n0\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\n\r\n",
        ] {
            let mut input = first.clone();
            input.extend_from_slice(faulty);
            input.extend_from_slice(b"DELETE /smuggled HTTP/1.1\r\n\r\n");
            assert_eq!(passed(&input), (first.clone(), true), "{:?}", String::from_utf8_lossy(faulty));
        }
    }

    #[test]
    fn what_hyper_refuses_itself_is_passed_on() {
        let malformed_chunk = b"PUT /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET /next HTTP/1.1\r\n\r\n";
        assert_eq!(passed(malformed_chunk), (malformed_chunk.to_vec(), false));
        let bad_length = b"PUT /a HTTP/1.1\r\nContent-Length: x\r\n\r\nbody";
        assert_eq!(passed(bad_length), (bad_length.to_vec(), false));
    }
}
