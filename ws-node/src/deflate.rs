//! permessage-deflate (RFC 7692), the parts that are not framing: which
//! offers we accept, compressing an outgoing message, inflating an incoming
//! one with bounded memory.
//!
//! We always answer with `server_no_context_takeover` and
//! `client_no_context_takeover`: every message is compressed on its own, so
//! one compressed event is valid for every socket that negotiated the
//! extension (compressed once, shared like the plain bytes), and no socket
//! keeps a compressor or an inflate window between messages.

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use http::HeaderMap;

/// The `Sec-WebSocket-Extensions` value of our answer.
pub const AGREED: &str =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// Messages shorter than this go uncompressed (RSV1 clear), as the RFC
/// allows: the deflate framing would cost more than it saves.
pub const MIN_COMPRESSED_LEN: usize = 64;

/// The empty stored block every sync flush ends with; the RFC strips it
/// from each message and the receiver puts it back.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Whether the client's `Sec-WebSocket-Extensions` offers include a
/// permessage-deflate we can agree to. We can agree to any offer whose
/// parameters are all known, unless it limits our window below 15 bits
/// (we compress with the full window).
pub fn offered(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(acceptable_offer)
}

fn acceptable_offer(offer: &str) -> bool {
    let mut parts = offer.split(';').map(str::trim);
    if parts.next() != Some("permessage-deflate") {
        return false;
    }
    parts.all(|param| {
        let (name, value) = match param.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
            None => (param, None),
        };
        match (name, value) {
            ("server_no_context_takeover" | "client_no_context_takeover", None) => true,
            // The client may use a smaller window; we inflate with 15 bits,
            // which reads any.
            ("client_max_window_bits", None) => true,
            ("client_max_window_bits", Some(bits)) => window_bits(bits).is_some(),
            ("server_max_window_bits", Some(bits)) => window_bits(bits) == Some(15),
            _ => false,
        }
    })
}

fn window_bits(value: &str) -> Option<u8> {
    value.parse().ok().filter(|bits| (8..=15).contains(bits))
}

/// One message's payload, deflated on its own (no context carried over),
/// with the sync-flush tail stripped as the RFC says.
pub fn compress(message: &[u8]) -> Bytes {
    let mut deflate = Compress::new(Compression::fast(), false);
    // Deflate's worst case is a few bytes per 16 KiB stored block, plus
    // the flush marker.
    let mut out = Vec::with_capacity(message.len() + message.len() / 1024 * 8 + 64);
    loop {
        let read = deflate.total_in() as usize;
        deflate
            .compress_vec(&message[read..], &mut out, FlushCompress::Sync)
            .expect("BUG: deflating into a vector cannot fail");
        if deflate.total_in() as usize == message.len() && out.ends_with(&TAIL) {
            break;
        }
        out.reserve(1024);
    }
    out.truncate(out.len() - TAIL.len());
    Bytes::from(out)
}

/// Why an incoming compressed message was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum InflateError {
    /// It inflates to more than the limit.
    TooBig,
    /// It is not valid deflate data.
    Corrupt,
}

/// Inflates one message's payload, never producing more than `limit`
/// bytes: a deflate bomb costs at most `limit` bytes of memory.
pub fn inflate(compressed: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
    let mut inflater = Decompress::new(false);
    let mut out = Vec::with_capacity((compressed.len() * 4).min(limit + 1));
    for input in [compressed, &TAIL[..]] {
        let mut read = 0;
        while read < input.len() {
            if out.len() == out.capacity() {
                if out.len() > limit {
                    return Err(InflateError::TooBig);
                }
                out.reserve((out.capacity()).min(limit + 1 - out.len()).max(64));
            }
            let before = inflater.total_in();
            let status = inflater
                .decompress_vec(&input[read..], &mut out, FlushDecompress::Sync)
                .map_err(|_| InflateError::Corrupt)?;
            read += (inflater.total_in() - before) as usize;
            if out.len() > limit {
                return Err(InflateError::TooBig);
            }
            if status == Status::StreamEnd {
                break;
            }
        }
    }
    // Output the inflater still holds past what the input took in.
    loop {
        if out.len() > limit {
            return Err(InflateError::TooBig);
        }
        if out.len() == out.capacity() {
            out.reserve(64);
        }
        let before = out.len();
        inflater
            .decompress_vec(&[], &mut out, FlushDecompress::Sync)
            .map_err(|_| InflateError::Corrupt)?;
        if out.len() == before {
            break;
        }
    }
    if out.len() > limit {
        return Err(InflateError::TooBig);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn offers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                http::header::SEC_WEBSOCKET_EXTENSIONS,
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn what_browsers_and_libraries_offer_is_accepted() {
        // Chromium, Firefox, Python websockets.
        assert!(offered(&offers(&[
            "permessage-deflate; client_max_window_bits"
        ])));
        assert!(offered(&offers(&["permessage-deflate"])));
        assert!(offered(&offers(&[
            "permessage-deflate; server_max_window_bits=12, permessage-deflate; client_max_window_bits=12"
        ])));
        assert!(offered(&offers(&[
            "x-webkit-deflate-frame",
            "permessage-deflate"
        ])));
    }

    #[test]
    fn offers_we_cannot_honour_are_declined() {
        assert!(!offered(&offers(&[])));
        assert!(!offered(&offers(&["x-webkit-deflate-frame"])));
        assert!(!offered(&offers(&[
            "permessage-deflate; server_max_window_bits=10"
        ])));
        assert!(!offered(&offers(&["permessage-deflate; unknown_param"])));
        assert!(!offered(&offers(&[
            "permessage-deflate; client_max_window_bits=99"
        ])));
    }

    #[test]
    fn a_message_round_trips() {
        let message =
            br#"{"type":"TASK_CREATED","seq":1,"task":{"title":"aaaaaaaaaaaaaaaaaaaaaaaaaaaa"}}"#;
        let compressed = compress(message);
        assert!(!compressed.ends_with(&TAIL));
        assert!(compressed.len() < message.len());
        assert_eq!(inflate(&compressed, 16 * 1024).unwrap(), message);
        let big = vec![b'x'; 200_000];
        assert_eq!(inflate(&compress(&big), 300_000).unwrap(), big);
    }

    #[test]
    fn a_deflate_bomb_stops_at_the_limit() {
        let bomb = compress(&vec![b'a'; 10 * 1024 * 1024]);
        assert!(bomb.len() < 64 * 1024);
        assert_eq!(inflate(&bomb, 16 * 1024), Err(InflateError::TooBig));
        let exact = vec![b'a'; 16 * 1024];
        assert_eq!(inflate(&compress(&exact), 16 * 1024).unwrap(), exact);
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(inflate(&[0xff; 32], 1024), Err(InflateError::Corrupt));
    }
}
