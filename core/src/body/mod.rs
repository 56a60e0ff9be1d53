//! The response body: either complete bytes or a stream of chunks that is
//! relayed as it arrives (SSE is never buffered whole).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;

pub mod observe;

/// A chunk stream that failed mid-way. The message is for logs.
#[derive(Debug, Clone, thiserror::Error)]
#[error("body stream failed: {0}")]
pub struct BodyError(pub String);

/// A boxed chunk stream: `Send` on native targets, not on wasm32.
#[cfg(not(target_arch = "wasm32"))]
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, BodyError>> + Send + 'static>>;
/// A boxed chunk stream: `Send` on native targets, not on wasm32.
#[cfg(target_arch = "wasm32")]
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, BodyError>> + 'static>>;

/// A response (or upstream response) body.
pub struct Body {
    inner: Inner,
}

enum Inner {
    Full(Option<Bytes>),
    Stream(ByteStream),
}

impl Body {
    pub fn empty() -> Self {
        Self {
            inner: Inner::Full(None),
        }
    }

    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self {
            inner: Inner::Full((!bytes.is_empty()).then_some(bytes)),
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_stream(
        stream: impl Stream<Item = Result<Bytes, BodyError>> + Send + 'static,
    ) -> Self {
        Self {
            inner: Inner::Stream(Box::pin(stream)),
        }
    }

    #[cfg(target_arch = "wasm32")]
    pub fn from_stream(stream: impl Stream<Item = Result<Bytes, BodyError>> + 'static) -> Self {
        Self {
            inner: Inner::Stream(Box::pin(stream)),
        }
    }

    /// True when the body is a stream (its length is unknown up front).
    pub fn is_stream(&self) -> bool {
        matches!(self.inner, Inner::Stream(_))
    }

    /// The bytes of a complete body without polling, `None` for a stream.
    pub fn as_full(&self) -> Option<&[u8]> {
        match &self.inner {
            Inner::Full(bytes) => Some(bytes.as_deref().unwrap_or_default()),
            Inner::Stream(_) => None,
        }
    }

    /// Reads the whole body, failing when it exceeds `limit` bytes.
    pub async fn collect(self, limit: usize) -> Result<Bytes, CollectError> {
        use futures_util::StreamExt;
        match self.inner {
            Inner::Full(bytes) => {
                let bytes = bytes.unwrap_or_default();
                if bytes.len() > limit {
                    return Err(CollectError::TooLarge { limit });
                }
                Ok(bytes)
            }
            Inner::Stream(mut stream) => {
                let mut buf = Vec::new();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(CollectError::Stream)?;
                    if buf.len() + chunk.len() > limit {
                        return Err(CollectError::TooLarge { limit });
                    }
                    buf.extend_from_slice(&chunk);
                }
                Ok(Bytes::from(buf))
            }
        }
    }
}

/// Why [`Body::collect`] failed.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("body larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error(transparent)]
    Stream(BodyError),
}

impl Default for Body {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Full(bytes) => f
                .debug_struct("Body")
                .field("len", &bytes.as_ref().map_or(0, Bytes::len))
                .finish(),
            Inner::Stream(_) => f.write_str("Body(stream)"),
        }
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Self::full(bytes)
    }
}

impl From<String> for Body {
    fn from(s: String) -> Self {
        Self::full(s)
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Self {
        Self::full(Bytes::from_static(s.as_bytes()))
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Self {
        Self::full(v)
    }
}

impl Stream for Body {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match &mut self.get_mut().inner {
            Inner::Full(bytes) => Poll::Ready(bytes.take().map(Ok)),
            Inner::Stream(stream) => stream.as_mut().poll_next(cx),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.inner {
            Inner::Full(Some(_)) => (1, Some(1)),
            Inner::Full(None) => (0, Some(0)),
            Inner::Stream(stream) => stream.size_hint(),
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BodyError>>> {
        self.poll_next(cx)
            .map(|chunk| chunk.map(|result| result.map(http_body::Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.inner, Inner::Full(None))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match &self.inner {
            Inner::Full(bytes) => {
                http_body::SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Inner::Stream(_) => http_body::SizeHint::default(),
        }
    }
}
