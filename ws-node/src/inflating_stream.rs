//! The byte stream under a socket's tokio-tungstenite: plain TCP, or, when
//! permessage-deflate was agreed, TCP with incoming compressed messages
//! inflated before tungstenite reads them (tungstenite 0.30 has no
//! extension support and refuses frames with RSV1 set).
//!
//! The inflating side follows the client's frames: frames of uncompressed
//! messages and control frames pass through untouched; the frames of a
//! compressed message (RSV1 on its first frame) are unmasked and collected,
//! bounded, and handed on as one uncompressed frame, masked with a zero key
//! (the server must see masked frames; a zero mask leaves the bytes as
//! they are). A message that would inflate past the message limit is handed
//! on as a frame header announcing an oversized frame, so tungstenite
//! refuses it with the same capacity error as any over-long message and
//! the session closes with 1009. Writes always pass through: outgoing
//! compressed frames are built by the session.
//!
//! The same layer serves a client (`loadgen --deflate`): frames from a
//! server are unmasked, so there a compressed unmasked message is handed on
//! inflated and unmasked ([`SocketIo::deflate_client`]). Each side only
//! inflates the frames its peer may send; anything else passes through for
//! tungstenite to judge.
//!
//! An idle socket keeps only a small boxed state here: no buffers are held
//! between messages.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::deflate::{self, InflateError};

/// The most bytes a client message may have, inflated (the contract's
/// 16 KiB). Compressed data is at least a little smaller than what it
/// inflates to, so a compressed message over this (plus a margin) is
/// refused before it is inflated.
const MAX_MESSAGE: usize = 16 * 1024;
const MAX_COMPRESSED: usize = MAX_MESSAGE + 1024;

/// A socket's transport (a TCP stream in the node; the load generator
/// puts a byte counter in between).
pub enum SocketIo<S = TcpStream> {
    /// No extension agreed.
    Plain(S),
    /// permessage-deflate agreed: incoming compressed messages are inflated.
    Deflate(S, Box<Inflating>),
}

impl<S> SocketIo<S> {
    /// The server's transport of a socket that agreed deflate; `early` is
    /// what the client sent after its upgrade request.
    pub fn deflate(tcp: S, early: &[u8]) -> Self {
        let mut state = Box::<Inflating>::default();
        state.feed(early);
        SocketIo::Deflate(tcp, state)
    }

    /// A client's transport once the server agreed deflate: the server's
    /// compressed (unmasked) messages are handed on inflated. `early` is
    /// what the server sent after its 101 response.
    pub fn deflate_client(tcp: S, early: &[u8]) -> Self {
        let mut state = Box::new(Inflating {
            client: true,
            ..Inflating::default()
        });
        state.feed(early);
        SocketIo::Deflate(tcp, state)
    }

    /// Whether permessage-deflate was agreed on this socket.
    pub fn is_deflate(&self) -> bool {
        matches!(self, SocketIo::Deflate(..))
    }

    /// The stream under it.
    pub fn tcp(&mut self) -> &mut S {
        match self {
            SocketIo::Plain(tcp) | SocketIo::Deflate(tcp, _) => tcp,
        }
    }
}

/// Where the reader is in the client's frames.
#[derive(Default)]
pub struct Inflating {
    /// Whether this is a client reading a server's (unmasked) frames;
    /// false on the server, which reads masked frames.
    client: bool,
    /// The frame header being read (at most 14 bytes).
    header: [u8; 14],
    header_len: usize,
    /// Payload bytes of the current frame still to come.
    remaining: u64,
    /// Whether the current frame's payload is collected (compressed) or
    /// passed through.
    collecting: bool,
    mask: [u8; 4],
    mask_at: usize,
    /// Inside a compressed message: its opcode; its payload so far.
    compressed_opcode: Option<u8>,
    compressed: Vec<u8>,
    /// Bytes ready for tungstenite, and how many of them it has taken.
    out: Vec<u8>,
    out_at: usize,
}

impl Inflating {
    /// Feeds bytes read from the client; what tungstenite should read
    /// next is appended to `out`.
    fn feed(&mut self, mut input: &[u8]) {
        while !input.is_empty() {
            if self.remaining == 0 && !self.header_complete() {
                let take = (self.header_needed() - self.header_len).min(input.len());
                self.header[self.header_len..self.header_len + take]
                    .copy_from_slice(&input[..take]);
                self.header_len += take;
                input = &input[take..];
                if self.header_complete() {
                    self.start_frame();
                }
                continue;
            }
            let take = (self.remaining.min(input.len() as u64)) as usize;
            let (payload, rest) = input.split_at(take);
            input = rest;
            self.remaining -= take as u64;
            if self.collecting {
                for &byte in payload {
                    self.compressed.push(byte ^ self.mask[self.mask_at % 4]);
                    self.mask_at += 1;
                }
            } else {
                self.out.extend_from_slice(payload);
            }
            if self.remaining == 0 {
                self.end_frame();
            }
        }
    }

    /// How long the header in progress is, as far as its bytes so far say.
    fn header_needed(&self) -> usize {
        if self.header_len < 2 {
            return 2;
        }
        let extended = match self.header[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if self.header[1] & 0x80 != 0 { 4 } else { 0 };
        2 + extended + mask
    }

    fn header_complete(&self) -> bool {
        self.header_len >= 2 && self.header_len == self.header_needed()
    }

    /// A whole header has been read: decide what to do with the frame.
    fn start_frame(&mut self) {
        let (first, second) = (self.header[0], self.header[1]);
        let (rsv1, opcode) = (first & 0x40 != 0, first & 0x0f);
        let length = match second & 0x7f {
            126 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
            127 => u64::from_be_bytes(self.header[2..10].try_into().expect("8 bytes")),
            short => u64::from(short),
        };
        let masked = second & 0x80 != 0;
        // The peer's frames are masked if it is a client, unmasked if it
        // is a server.
        let from_peer = masked != self.client;
        self.remaining = length;
        let starts_compressed = rsv1 && matches!(opcode, 1 | 2) && from_peer;
        let continues_compressed = opcode == 0 && self.compressed_opcode.is_some() && from_peer;
        self.collecting = starts_compressed || continues_compressed;
        if self.collecting {
            if starts_compressed {
                self.compressed_opcode = Some(opcode);
            }
            if masked {
                let at = self.header_len - 4;
                self.mask.copy_from_slice(&self.header[at..self.header_len]);
            } else {
                self.mask = [0; 4];
            }
            self.mask_at = 0;
            if self.compressed.len() as u64 + length > MAX_COMPRESSED as u64 {
                self.refuse_too_big();
                return;
            }
            self.compressed.reserve(length as usize);
        } else {
            // Control frames, uncompressed messages, and anything malformed
            // (tungstenite judges it) go through as they came.
            self.out.extend_from_slice(&self.header[..self.header_len]);
        }
        self.header_len = 0;
        if self.remaining == 0 {
            self.end_frame();
        }
    }

    /// The current frame's payload is all in.
    fn end_frame(&mut self) {
        self.header_len = 0;
        if !self.collecting {
            return;
        }
        self.collecting = false;
        let fin = self.header[0] & 0x80 != 0;
        if !fin {
            return;
        }
        let opcode = self.compressed_opcode.take().unwrap_or(1);
        let compressed = std::mem::take(&mut self.compressed);
        match deflate::inflate(&compressed, MAX_MESSAGE) {
            Ok(message) => self.hand_on(opcode, &message),
            Err(InflateError::TooBig) => self.refuse_too_big(),
            // Reserved bits set on a frame: tungstenite refuses it as a
            // protocol error and the connection is dropped.
            Err(InflateError::Corrupt) if self.client => self.out.extend_from_slice(&[0xc1, 0]),
            Err(InflateError::Corrupt) => self.out.extend_from_slice(&[0xc1, 0x80, 0, 0, 0, 0]),
        }
    }

    /// One whole, uncompressed frame: zero-masked for a server, unmasked
    /// for a client.
    fn hand_on(&mut self, opcode: u8, message: &[u8]) {
        let mask_bit = if self.client { 0 } else { 0x80 };
        self.out.push(0x80 | opcode);
        match message.len() {
            len @ 0..=125 => self.out.push(mask_bit | len as u8),
            len @ 126..=0xffff => {
                self.out.push(mask_bit | 126);
                self.out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                self.out.push(mask_bit | 127);
                self.out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        if !self.client {
            self.out.extend_from_slice(&[0, 0, 0, 0]);
        }
        self.out.extend_from_slice(message);
    }

    /// A header announcing a frame over the limit: tungstenite answers it
    /// with its capacity error (close 1009). Nothing of the message is kept.
    fn refuse_too_big(&mut self) {
        self.compressed = Vec::new();
        self.compressed_opcode = None;
        self.collecting = false;
        let mask_bit = if self.client { 0 } else { 0x80 };
        self.out.extend_from_slice(&[0x81, mask_bit | 0x7f]);
        self.out
            .extend_from_slice(&(MAX_COMPRESSED as u64 * 1024).to_be_bytes());
        if !self.client {
            self.out.extend_from_slice(&[0, 0, 0, 0]);
        }
        // The rest of the client's bytes no longer matter: pass them on.
        self.remaining = u64::MAX;
    }

    /// Moves ready bytes into tungstenite's buffer; true if any were.
    fn drain_into(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        if self.out_at == self.out.len() {
            return false;
        }
        let take = (self.out.len() - self.out_at).min(buf.remaining());
        buf.put_slice(&self.out[self.out_at..self.out_at + take]);
        self.out_at += take;
        if self.out_at == self.out.len() {
            // Idle sockets keep no buffer.
            self.out = Vec::new();
            self.out_at = 0;
        }
        true
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for SocketIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            SocketIo::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            SocketIo::Deflate(tcp, state) => loop {
                if state.drain_into(buf) {
                    return Poll::Ready(Ok(()));
                }
                let mut chunk = [0u8; 2048];
                let mut read = ReadBuf::new(&mut chunk);
                ready!(Pin::new(&mut *tcp).poll_read(cx, &mut read))?;
                if read.filled().is_empty() {
                    // End of stream.
                    return Poll::Ready(Ok(()));
                }
                state.feed(read.filled());
            },
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for SocketIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.get_mut().tcp()).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().tcp()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().tcp()).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.get_mut().tcp()).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            SocketIo::Plain(tcp) | SocketIo::Deflate(tcp, _) => tcp.is_write_vectored(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn frame(fin: bool, rsv1: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut out = vec![(if fin { 0x80 } else { 0 }) | (if rsv1 { 0x40 } else { 0 }) | opcode];
        match payload.len() {
            len @ 0..=125 => out.push(0x80 | len as u8),
            len => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    /// An unmasked server frame.
    fn server_frame(fin: bool, rsv1: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(if fin { 0x80 } else { 0 }) | (if rsv1 { 0x40 } else { 0 }) | opcode];
        match payload.len() {
            len @ 0..=125 => out.push(len as u8),
            len => {
                out.push(126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
        out
    }

    fn fed(chunks: &[&[u8]]) -> Vec<u8> {
        fed_as(false, chunks)
    }

    fn fed_as(client: bool, chunks: &[&[u8]]) -> Vec<u8> {
        let mut state = Inflating {
            client,
            ..Inflating::default()
        };
        for chunk in chunks {
            // One byte at a time: headers and payloads split anywhere.
            for byte in chunk.iter() {
                state.feed(std::slice::from_ref(byte));
            }
        }
        state.out
    }

    #[test]
    fn uncompressed_and_control_frames_pass_through_untouched() {
        let text = frame(true, false, 1, br#"{"type":"PING"}"#);
        let ping = frame(true, false, 9, b"hi");
        assert_eq!(fed(&[&text, &ping]), [text.clone(), ping].concat());
    }

    #[test]
    fn a_compressed_message_is_handed_on_inflated_and_zero_masked() {
        let message = br#"{"type":"SUBSCRIBE_TASKS","since":12345678901234567890}"#;
        let compressed = deflate::compress(message);
        let (a, b) = compressed.split_at(compressed.len() / 2);
        let ping = frame(true, false, 9, b"");
        let out = fed(&[&frame(false, true, 1, a), &ping, &frame(true, false, 0, b)]);
        let mut expected = ping;
        expected.extend_from_slice(&[0x81, 0x80 | message.len() as u8, 0, 0, 0, 0]);
        expected.extend_from_slice(message);
        assert_eq!(out, expected);
    }

    #[test]
    fn a_deflate_bomb_becomes_an_oversized_frame_header() {
        let bomb = deflate::compress(&vec![b' '; 1024 * 1024]);
        let out = fed(&[&frame(true, true, 1, &bomb)]);
        assert_eq!(&out[..2], &[0x81, 0xff]);
        let announced = u64::from_be_bytes(out[2..10].try_into().unwrap());
        assert!(announced > MAX_MESSAGE as u64);
    }

    #[test]
    fn a_client_hands_on_a_compressed_server_message_inflated_and_unmasked() {
        let message = format!(
            r#"{{"type":"TASK_CREATED","seq":7,"task":{{"description":"{}"}}}}"#,
            "ab".repeat(200)
        );
        let compressed = deflate::compress(message.as_bytes());
        let (a, b) = compressed.split_at(compressed.len() / 3);
        let ping = server_frame(true, false, 9, b"hi");
        let plain = server_frame(true, false, 1, br#"{"type":"SUBSCRIBED"}"#);
        let out = fed_as(
            true,
            &[
                &plain,
                &server_frame(false, true, 1, a),
                &ping,
                &server_frame(true, false, 0, b),
            ],
        );
        let mut expected = [plain, ping].concat();
        expected.extend_from_slice(&server_frame(true, false, 1, message.as_bytes()));
        assert_eq!(out, expected);
    }

    #[test]
    fn a_client_passes_masked_frames_on_and_a_server_unmasked_ones() {
        // Neither side inflates what its peer may not send: tungstenite
        // refuses those frames itself.
        let masked = frame(true, true, 1, &deflate::compress(&[b'x'; 100]));
        assert_eq!(fed_as(true, &[&masked]), masked);
        let unmasked = server_frame(true, true, 1, &deflate::compress(&[b'x'; 100]));
        assert_eq!(fed_as(false, &[&unmasked]), unmasked);
    }

    #[test]
    fn a_client_refuses_a_bomb_with_an_unmasked_oversized_header() {
        let bomb = deflate::compress(&vec![b' '; 1024 * 1024]);
        let out = fed_as(true, &[&server_frame(true, true, 1, &bomb)]);
        assert_eq!(&out[..2], &[0x81, 0x7f]);
        assert_eq!(out.len(), 10);
    }
}
