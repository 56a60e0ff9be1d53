//! Path normalisation, before routing: the path a route is matched on is
//! the path the upstream receives, so an encoding trick cannot reach a
//! route's upstream through a weaker route (`/api/%61dmin` is `/api/admin`;
//! nginx, Go and Spring would treat it so). Modelled on Envoy's
//! `normalize_path` + `merge_slashes`:
//!
//! - escapes of unreserved characters (`A–Z a–z 0–9 - . _ ~`) are decoded;
//!   other escapes are kept with upper-case hex digits (`%2f` → refused,
//!   `%c3%a9` → `%C3%A9`);
//! - runs of `/` are merged (`//admin` → `/admin`);
//! - refused (400): a path not starting with `/`, a malformed escape, an
//!   encoded `/` (`%2F`), `\` raw or encoded (`%5C`), an encoded NUL, and
//!   `.` / `..` segments (raw or encoded), which could escape a prefix.
//!
//! `;` (path parameters, which some servers strip) is kept here and refused
//! after routing unless the matched route opts in (`match.allow_semicolons`).
//!
//! Written here rather than taken from a crate: `percent-encoding` decodes
//! everything (we must keep reserved escapes encoded and refuse some), and
//! the rules are the security policy itself, so they stay in one readable
//! function.

use std::borrow::Cow;

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// The normalised form of `path`; see the module docs.
pub fn normalize_path(path: &str) -> Result<Cow<'_, str>, &'static str> {
    if !path.starts_with('/') {
        return Err("the path must start with `/`");
    }
    let bytes = path.as_bytes();
    let clean =
        !bytes.contains(&b'%') && !bytes.contains(&b'\\') && !bytes.windows(2).any(|w| w == b"//");
    let normalized = if clean {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(rewrite(bytes)?)
    };
    if normalized.split('/').any(|s| s == "." || s == "..") {
        return Err("`.` and `..` segments are not allowed");
    }
    Ok(normalized)
}

fn rewrite(bytes: &[u8]) -> Result<String, &'static str> {
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let value = match (bytes.get(i + 1), bytes.get(i + 2)) {
                    (Some(&h), Some(&l)) => hex_value(h)
                        .zip(hex_value(l))
                        .map(|(h, l)| (h << 4) | l)
                        .ok_or("malformed percent-encoding")?,
                    _ => return Err("malformed percent-encoding"),
                };
                match value {
                    b'/' => return Err("encoded `/` is not allowed in a path segment"),
                    b'\\' => return Err("`\\` is not allowed in a path"),
                    0 => return Err("encoded NUL is not allowed in a path"),
                    v if is_unreserved(v) => out.push(v),
                    v => out.extend_from_slice(&[
                        b'%',
                        HEX_UPPER[usize::from(v >> 4)],
                        HEX_UPPER[usize::from(v & 0xf)],
                    ]),
                }
                i += 3;
            }
            b'\\' => return Err("`\\` is not allowed in a path"),
            b'/' if out.last() == Some(&b'/') => i += 1,
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    // Only ASCII was decoded or inserted; every other byte was copied from
    // a `&str` unchanged, so the result is still UTF-8.
    String::from_utf8(out).map_err(|_| "the path is not valid UTF-8")
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 §2.3.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(path: &str) -> String {
        normalize_path(path).unwrap().into_owned()
    }

    #[test]
    fn encoded_unreserved_characters_are_decoded() {
        assert_eq!(ok("/api/%61dmin/users"), "/api/admin/users");
        assert_eq!(ok("/api/%7Euser/%2D%5F%2e"), "/api/~user/-_.");
    }

    #[test]
    fn other_escapes_are_kept_upper_case() {
        assert_eq!(ok("/files/caf%c3%a9"), "/files/caf%C3%A9");
        assert_eq!(ok("/q/a%20b%3f"), "/q/a%20b%3F");
    }

    #[test]
    fn slashes_are_merged() {
        assert_eq!(ok("/api//admin///users"), "/api/admin/users");
        assert_eq!(ok("//admin"), "/admin");
        assert_eq!(ok("/api/"), "/api/");
    }

    #[test]
    fn clean_paths_are_borrowed() {
        assert!(matches!(
            normalize_path("/v1/chat/completions"),
            Ok(Cow::Borrowed(_))
        ));
        assert!(matches!(
            normalize_path("/users/{id};x"),
            Ok(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn dangerous_paths_are_refused() {
        for path in [
            "relative",
            "/a/../b",
            "/a/./b",
            "/a/%2E%2e/b",
            "/a/%2e/b",
            "/a/..",
            "/a/%2fb",
            "/a/%2F",
            "/a\\b",
            "/a/%5Cb",
            "/a/%5cb",
            "/a/%00",
            "/a/%zz",
            "/a/%4",
            "/a/%",
        ] {
            assert!(normalize_path(path).is_err(), "{path} was accepted");
        }
        assert!(normalize_path("/a/b.c/..d").is_ok());
    }
}
