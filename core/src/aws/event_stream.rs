//! The AWS event-stream binary framing (`application/vnd.amazon.eventstream`),
//! as used by Bedrock's `ConverseStream`:
//!
//! ```text
//! total length u32 | headers length u32 | prelude CRC32 u32
//! headers (name len u8, name, value type u8, value) | payload | message CRC32 u32
//! ```
//!
//! Reference: <https://docs.aws.amazon.com/transcribe/latest/dg/streaming-setting-up.html>
//! (event stream encoding). All integers big-endian; CRC32 is IEEE.

/// Frames larger than this are refused (Bedrock events are small).
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
const PRELUDE_BYTES: usize = 12;
const MIN_MESSAGE_BYTES: usize = PRELUDE_BYTES + 4;

/// One decoded message: its string headers (other header types are
/// skipped) and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

impl Message {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A framing error: the stream cannot be trusted past it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event stream: {0}")]
pub struct FrameError(pub String);

/// Splits a byte stream into messages, whatever the chunking.
#[derive(Debug, Default)]
pub struct EventStreamDecoder {
    buffer: Vec<u8>,
}

impl EventStreamDecoder {
    /// Feeds `chunk`; calls `on_message` with each complete message.
    pub fn push(
        &mut self,
        chunk: &[u8],
        mut on_message: impl FnMut(Message),
    ) -> Result<(), FrameError> {
        self.buffer.extend_from_slice(chunk);
        let mut start = 0;
        while self.buffer.len() - start >= PRELUDE_BYTES {
            let frame = &self.buffer[start..];
            let total = be_u32(&frame[0..4]) as usize;
            if !(MIN_MESSAGE_BYTES..=MAX_MESSAGE_BYTES).contains(&total) {
                return Err(FrameError(format!("bad message length {total}")));
            }
            if crc32(&frame[0..8]) != be_u32(&frame[8..12]) {
                return Err(FrameError("prelude checksum mismatch".into()));
            }
            if frame.len() < total {
                break;
            }
            on_message(decode_message(&frame[..total])?);
            start += total;
        }
        self.buffer.drain(..start);
        Ok(())
    }

    /// True when a partial message is pending (a stream ending now was cut).
    pub fn has_partial(&self) -> bool {
        !self.buffer.is_empty()
    }
}

fn be_u32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

fn decode_message(frame: &[u8]) -> Result<Message, FrameError> {
    let total = frame.len();
    if crc32(&frame[..total - 4]) != be_u32(&frame[total - 4..]) {
        return Err(FrameError("message checksum mismatch".into()));
    }
    let headers_len = be_u32(&frame[4..8]) as usize;
    // Compared before adding: on 32-bit targets (wasm32) the sum could wrap.
    if headers_len > total - MIN_MESSAGE_BYTES {
        return Err(FrameError("headers overrun the message".into()));
    }
    let headers_end = PRELUDE_BYTES + headers_len;
    let headers = decode_headers(&frame[PRELUDE_BYTES..headers_end])?;
    Ok(Message {
        headers,
        payload: frame[headers_end..total - 4].to_vec(),
    })
}

fn decode_headers(mut bytes: &[u8]) -> Result<Vec<(String, String)>, FrameError> {
    let truncated = || FrameError("truncated header".into());
    let mut headers = Vec::new();
    while let Some((&name_len, rest)) = bytes.split_first() {
        let name_len = usize::from(name_len);
        let name = rest.get(..name_len).ok_or_else(truncated)?;
        let (&kind, rest) = rest[name_len..].split_first().ok_or_else(truncated)?;
        let fixed = |n: usize| rest.get(n..).ok_or_else(truncated);
        bytes = match kind {
            0 | 1 => rest,
            2 => fixed(1)?,
            3 => fixed(2)?,
            4 => fixed(4)?,
            5 | 8 => fixed(8)?,
            9 => fixed(16)?,
            6 | 7 => {
                let len_bytes = rest.get(..2).ok_or_else(truncated)?;
                let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
                let value = rest.get(2..2 + len).ok_or_else(truncated)?;
                if kind == 7 {
                    headers.push((
                        String::from_utf8_lossy(name).into_owned(),
                        String::from_utf8_lossy(value).into_owned(),
                    ));
                }
                &rest[2 + len..]
            }
            other => return Err(FrameError(format!("unknown header type {other}"))),
        };
    }
    Ok(headers)
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320).
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc = CRC_TABLE[((crc ^ u32::from(byte)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// Encodes one message with string headers (for tests and mock upstreams).
pub fn encode_message(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut header_bytes = Vec::new();
    for (name, value) in headers {
        header_bytes.push(name.len() as u8);
        header_bytes.extend_from_slice(name.as_bytes());
        header_bytes.push(7);
        header_bytes.extend_from_slice(&(value.len() as u16).to_be_bytes());
        header_bytes.extend_from_slice(value.as_bytes());
    }
    let total = PRELUDE_BYTES + header_bytes.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(header_bytes.len() as u32).to_be_bytes());
    let prelude_crc = crc32(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&header_bytes);
    out.extend_from_slice(payload);
    let message_crc = crc32(&out);
    out.extend_from_slice(&message_crc.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn decodes_across_any_chunking() {
        let mut bytes = encode_message(&[(":event-type", "a")], b"{\"x\":1}");
        bytes.extend(encode_message(&[(":event-type", "b")], b""));
        for split in 0..bytes.len() {
            let mut decoder = EventStreamDecoder::default();
            let mut seen = Vec::new();
            decoder.push(&bytes[..split], |m| seen.push(m)).unwrap();
            decoder.push(&bytes[split..], |m| seen.push(m)).unwrap();
            assert_eq!(seen.len(), 2, "split at {split}");
            assert_eq!(seen[0].header(":event-type"), Some("a"));
            assert_eq!(seen[0].payload, b"{\"x\":1}");
            assert_eq!(seen[1].header(":event-type"), Some("b"));
            assert!(!decoder.has_partial());
        }
    }

    #[test]
    fn a_huge_headers_length_is_refused_not_wrapped() {
        let mut frame = encode_message(&[], b"{}");
        frame[4..8].copy_from_slice(&0xFFFF_FFF8u32.to_be_bytes());
        let prelude_crc = crc32(&frame[0..8]);
        frame[8..12].copy_from_slice(&prelude_crc.to_be_bytes());
        let end = frame.len() - 4;
        let message_crc = crc32(&frame[..end]);
        frame[end..].copy_from_slice(&message_crc.to_be_bytes());
        let mut decoder = EventStreamDecoder::default();
        assert!(decoder.push(&frame, |_| {}).is_err());
    }

    #[test]
    fn corrupted_frames_are_refused() {
        let good = encode_message(&[(":event-type", "a")], b"{}");
        let mut bad_payload = good.clone();
        let at = bad_payload.len() - 6;
        bad_payload[at] ^= 1;
        let mut decoder = EventStreamDecoder::default();
        assert!(decoder.push(&bad_payload, |_| {}).is_err());
        let mut bad_prelude = good;
        bad_prelude[2] ^= 1;
        let mut decoder = EventStreamDecoder::default();
        assert!(decoder.push(&bad_prelude, |_| {}).is_err());
    }
}
