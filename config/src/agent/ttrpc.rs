//! containerd's ttRPC framing: every message is a 10-byte header (payload
//! length u32 BE, stream id u32 BE, type u8, flags u8) and a protobuf
//! payload: a [`Request`](super::proto::Request) from the client (odd
//! stream ids), a [`Response`](super::proto::Response) on the same stream.
//!
//! [`Decoder`] reads frames from a byte stream without trusting it: a
//! payload over the limit is skipped (never buffered) and reported as
//! [`Frame::Oversized`], so the server can answer that stream with
//! `RESOURCE_EXHAUSTED` and go on, as ttrpc-go does.

/// Header length.
pub const HEADER_LEN: usize = 10;
/// ttrpc's default payload limit (`MESSAGE_LENGTH_MAX`, 4 MiB).
pub const MAX_PAYLOAD: usize = 4 << 20;
/// Frame types.
pub const TYPE_REQUEST: u8 = 1;
pub const TYPE_RESPONSE: u8 = 2;
pub const TYPE_DATA: u8 = 3;

/// gRPC status codes (google.rpc.Code) that ttRPC carries.
pub mod code {
    pub const OK: i32 = 0;
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const NOT_FOUND: i32 = 5;
    pub const ALREADY_EXISTS: i32 = 6;
    pub const PERMISSION_DENIED: i32 = 7;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const FAILED_PRECONDITION: i32 = 9;
    pub const OUT_OF_RANGE: i32 = 11;
    pub const UNIMPLEMENTED: i32 = 12;
    pub const INTERNAL: i32 = 13;
}

/// One frame read off the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Message {
        stream: u32,
        kind: u8,
        flags: u8,
        payload: Vec<u8>,
    },
    /// A payload over the limit, skipped: only its stream is known.
    Oversized { stream: u32, kind: u8, len: u32 },
}

/// The header of a frame carrying `len` bytes.
pub fn header(len: u32, stream: u32, kind: u8, flags: u8) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(&len.to_be_bytes());
    h[4..8].copy_from_slice(&stream.to_be_bytes());
    h[8] = kind;
    h[9] = flags;
    h
}

/// A whole frame: header and payload. `None` when the payload is over
/// `u32::MAX` (the caller's limit is far below).
pub fn encode(stream: u32, kind: u8, payload: &[u8]) -> Option<Vec<u8>> {
    let len = u32::try_from(payload.len()).ok()?;
    let mut v = Vec::with_capacity(HEADER_LEN + payload.len());
    v.extend_from_slice(&header(len, stream, kind, 0));
    v.extend_from_slice(payload);
    Some(v)
}

/// Incremental frame reader: [`Decoder::push`] bytes as they arrive, then
/// take frames with [`Decoder::next_frame`] until it returns `None`.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Bytes of an oversized payload still to be thrown away.
    skip: usize,
    max: usize,
}

impl Decoder {
    /// A decoder refusing payloads over `max` bytes.
    pub fn new(max: usize) -> Decoder {
        Decoder {
            buf: Vec::new(),
            skip: 0,
            max,
        }
    }

    /// Adds bytes read from the stream; bytes of a skipped payload are
    /// dropped at once, so memory stays bounded by one frame.
    pub fn push(&mut self, mut bytes: &[u8]) {
        if self.skip > 0 {
            let n = self.skip.min(bytes.len());
            self.skip -= n;
            bytes = &bytes[n..];
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held for a frame not yet complete.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame, if any.
    pub fn next_frame(&mut self) -> Option<Frame> {
        if self.skip > 0 || self.buf.len() < HEADER_LEN {
            return None;
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        let stream = u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]);
        let (kind, flags) = (self.buf[8], self.buf[9]);
        let n = len as usize;
        if n > self.max {
            let have = self.buf.len() - HEADER_LEN;
            self.skip = n.saturating_sub(have);
            self.buf.drain(..HEADER_LEN + have.min(n));
            return Some(Frame::Oversized { stream, kind, len });
        }
        if self.buf.len() < HEADER_LEN + n {
            return None;
        }
        let payload = self.buf[HEADER_LEN..HEADER_LEN + n].to_vec();
        self.buf.drain(..HEADER_LEN + n);
        Some(Frame::Message {
            stream,
            kind,
            flags,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_in_pieces() {
        let a = encode(1, TYPE_REQUEST, b"hello").unwrap();
        let b = encode(3, TYPE_REQUEST, b"").unwrap();
        assert_eq!(&a[..HEADER_LEN], &[0, 0, 0, 5, 0, 0, 0, 1, 1, 0]);
        let all: Vec<u8> = a.iter().chain(&b).copied().collect();
        let mut d = Decoder::new(MAX_PAYLOAD);
        let mut got = Vec::new();
        for byte in &all {
            d.push(std::slice::from_ref(byte));
            while let Some(f) = d.next_frame() {
                got.push(f);
            }
        }
        assert_eq!(
            got,
            [
                Frame::Message {
                    stream: 1,
                    kind: 1,
                    flags: 0,
                    payload: b"hello".to_vec()
                },
                Frame::Message {
                    stream: 3,
                    kind: 1,
                    flags: 0,
                    payload: vec![]
                }
            ]
        );
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn an_oversized_payload_is_skipped_and_the_next_frame_read() {
        let mut d = Decoder::new(4);
        let big = encode(5, TYPE_REQUEST, &[7u8; 100]).unwrap();
        let next = encode(7, TYPE_REQUEST, b"ok").unwrap();
        d.push(&big[..20]);
        assert_eq!(
            d.next_frame(),
            Some(Frame::Oversized {
                stream: 5,
                kind: 1,
                len: 100
            })
        );
        assert_eq!(d.next_frame(), None);
        d.push(&big[20..]);
        d.push(&next);
        assert_eq!(
            d.next_frame(),
            Some(Frame::Message {
                stream: 7,
                kind: 1,
                flags: 0,
                payload: b"ok".to_vec()
            })
        );
        // Nothing of the skipped payload was kept.
        assert_eq!(d.pending(), 0);
    }
}
