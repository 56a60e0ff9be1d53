//! YAML text → raw config structs, with the path of the offending value in
//! every error (`routes[2].proxy: unknown field ...`, `(root)` for the
//! document itself) and the line and column where the parser has them.
//!
//! Parsing is `serde-saphyr` (pure Rust, builds for wasm32, designed not to
//! panic on malformed input) driven through `serde_path_to_error`. Its default
//! budget bounds what a hostile file can cost: alias expansion ("billion
//! laughs") stops at 250,000 nodes and 1,000,000 events, structural nesting at
//! 64 levels and flow nesting (`[[[...`) at 255, before the stack is at risk.
//! Duplicate mapping keys are errors, in structs and in maps alike.

use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_saphyr::{Error, Location, MessageFormatter, SnippetMode, UserMessageFormatter};

use super::validate::{ConfigError, ConfigIssue};

/// Parses one YAML document into `T`. An empty document (nothing, only
/// comments, `---` or `~`) is an error, as is a root that `T` refuses.
pub(crate) fn parse<T: DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    let mut track = serde_path_to_error::Track::new();
    let options = serde_saphyr::options! {
        // Snippets are multi-line; a config issue is one `path: message` line.
        with_snippet: false,
        // Untyped values (`params`, `jwk`) read as serde_yaml read them: YAML
        // 1.1 spellings (`yes`, `no`, `on`, `0755`, `1_000`) stay strings, and
        // a `bool` field accepts only `true`/`false`.
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        underscored_numbers_as_strings: true,
    };
    let parsed = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        Option::<T>::deserialize(serde_path_to_error::Deserializer::new(de, &mut track))
    });
    match parsed {
        Ok(Some(value)) => Ok(value),
        Ok(None) => Err(issue(
            ROOT,
            "the document is empty: expected a mapping of `key: value` settings".into(),
        )),
        Err(err) => {
            let path = display_path(&track.path());
            let formatter = Messages {
                text,
                at_root: path == ROOT,
            };
            let message = err.render_with_options(serde_saphyr::render_options! {
                formatter: &formatter,
                snippets: SnippetMode::Off,
            });
            Err(issue(&path, message))
        }
    }
}

const ROOT: &str = "(root)";

fn issue(path: &str, message: String) -> ConfigError {
    ConfigError {
        issues: vec![ConfigIssue {
            path: path.to_owned(),
            message,
        }],
    }
}

/// `serde_path_to_error` writes `.` for the root and `?` for a segment it
/// could not name (a duplicate key, a parse error between entries); the
/// nearest named parent is the useful part.
fn display_path(path: &serde_path_to_error::Path) -> String {
    let path = path.to_string();
    let path = path.trim_end_matches(".?");
    if path == "." || path == "?" {
        ROOT.to_owned()
    } else {
        path.to_owned()
    }
}

/// serde-saphyr's user-facing messages, reworded where they speak parser
/// (`expected mapping start`, `invalid u64`) and completed with what was found.
/// The renderer adds ` at line L, column C`.
struct Messages<'a> {
    text: &'a str,
    at_root: bool,
}

impl MessageFormatter for Messages<'_> {
    fn format_message<'e>(&self, err: &'e Error) -> Cow<'e, str> {
        match err {
            Error::Unexpected { expected, location } => {
                let (wanted, empty) = match *expected {
                    "mapping start" if self.at_root => (
                        "the document must be a mapping of `key: value` settings",
                        "{}",
                    ),
                    "mapping start" => ("expected a mapping of `key: value` entries", "{}"),
                    "sequence start" => ("expected a list", "[]"),
                    _ => return UserMessageFormatter.format_message(err),
                };
                Cow::Owned(match found(self.text, location) {
                    Some(Found::Nothing) => {
                        format!("{wanted}, found an empty value (write `{empty}` for none)")
                    }
                    Some(found) => format!("{wanted}, found {found}"),
                    None => wanted.to_owned(),
                })
            }
            Error::InvalidScalar { ty, location } => {
                let wanted = match *ty {
                    "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a non-negative integer",
                    "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "an integer",
                    "floating point" | "f32" | "f64" => "a number",
                    "bool" | "boolean" => "`true` or `false`",
                    "char" => "a single character",
                    _ => "a value of that type",
                };
                Cow::Owned(match found(self.text, location) {
                    Some(found) => format!("invalid {ty}: expected {wanted}, found {found}"),
                    None => format!("invalid {ty}: expected {wanted}"),
                })
            }
            Error::InvalidBooleanStrict { location } => {
                Cow::Owned(match found(self.text, location) {
                    Some(found) => {
                        format!("invalid boolean: expected `true` or `false`, found {found}")
                    }
                    None => "invalid boolean: expected `true` or `false`".to_owned(),
                })
            }
            Error::NullIntoString { .. } => Cow::Borrowed("expected a string, found null"),
            Error::UnknownAnchor { location } => Cow::Owned(match alias_at(self.text, location) {
                Some(alias) => format!("alias `{alias}` names no anchor defined before it"),
                None => "an alias names no anchor defined before it".to_owned(),
            }),
            _ => UserMessageFormatter.format_message(err),
        }
    }
}

enum Found<'t> {
    /// A value left empty (`key:` with nothing after it).
    Nothing,
    List,
    Mapping,
    Scalar(&'t str),
}

impl std::fmt::Display for Found<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Found::Nothing => f.write_str("an empty value"),
            Found::List => f.write_str("a list"),
            Found::Mapping => f.write_str("a mapping"),
            Found::Scalar(text) => {
                const MAX: usize = 40;
                match text.char_indices().nth(MAX) {
                    Some((cut, _)) => write!(f, "`{}...`", &text[..cut]),
                    None => write!(f, "`{text}`"),
                }
            }
        }
    }
}

/// What the source holds at `location`, from the error's byte span.
fn found<'t>(text: &'t str, location: &Location) -> Option<Found<'t>> {
    let span = location.span();
    let start = usize::try_from(span.byte_offset()?).ok()?;
    let len = usize::try_from(span.byte_len()?).ok()?;
    let rest = text.get(start..)?;
    let token = rest.get(..len)?.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        // A zero-width span: a value left empty (the span is on the key's
        // `:`), or a block list starting here.
        let line = rest.lines().next().unwrap_or("");
        let line = line.strip_prefix(':').unwrap_or(line).trim_start();
        return if line.is_empty() || line.starts_with(['#', ',', '}', ']']) {
            Some(Found::Nothing)
        } else if line == "-" || line.starts_with("- ") {
            Some(Found::List)
        } else {
            None
        };
    }
    Some(if token.starts_with('[') {
        Found::List
    } else if token.starts_with('{') {
        Found::Mapping
    } else if matches!(token, "~" | "null" | "Null" | "NULL") {
        Found::Nothing
    } else {
        Found::Scalar(token)
    })
}

/// The `*name` alias starting at `location`. Parser errors carry no byte
/// offset, so the line and (character) column find it.
fn alias_at<'t>(text: &'t str, location: &Location) -> Option<&'t str> {
    let rest = match location.span().byte_offset() {
        Some(start) => text.get(usize::try_from(start).ok()?..)?,
        None => {
            let line = text
                .lines()
                .nth(usize::try_from(location.line()).ok()?.checked_sub(1)?)?;
            let column = usize::try_from(location.column()).ok()?.checked_sub(1)?;
            let (start, _) = line.char_indices().nth(column)?;
            &line[start..]
        }
    };
    let rest = Some(rest).filter(|rest| rest.starts_with('*'))?;
    rest.split(|c: char| c.is_whitespace() || matches!(c, ',' | ']' | '}'))
        .next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::raw::RawConfig;

    /// The single issue parsing `text` as a config reports.
    fn issue(text: &str) -> ConfigIssue {
        let mut err = match parse::<RawConfig>(text) {
            Ok(raw) => panic!("parsed: {raw:?}"),
            Err(err) => err,
        };
        assert_eq!(err.issues.len(), 1, "{err}");
        err.issues.remove(0)
    }

    #[track_caller]
    fn assert_issue(text: &str, path: &str, parts: &[&str]) {
        let issue = issue(text);
        assert_eq!(issue.path, path, "{issue}");
        for part in parts {
            assert!(issue.message.contains(part), "`{part}` not in: {issue}");
        }
        assert!(!issue.message.contains('\n'), "one line: {issue}");
    }

    #[test]
    fn a_valid_document_parses() {
        let raw: RawConfig = parse(
            "server: { max_body_bytes: 1024 }\nroutes:\n  - match: { path_prefix: /a }\n    proxy: { url: 'http://a' }\n",
        )
        .unwrap();
        assert_eq!(raw.server.max_body_bytes, Some(1024));
        assert_eq!(raw.routes[0].matcher.path_prefix.as_deref(), Some("/a"));
    }

    #[test]
    fn syntax_error_bad_indentation() {
        assert_issue(
            "routes:\n  - match: { path_prefix: /a }\n     proxy: { url: http://a }\n",
            "routes[0]",
            &["did not find expected key", "at line 3, column 6"],
        );
    }

    #[test]
    fn syntax_error_unclosed_quote() {
        assert_issue(
            "routes:\n  - match: { path_prefix: '/a }\n    proxy: { url: http://a }\n",
            "routes[0].match",
            &["unclosed quote", "at line 2, column 27"],
        );
    }

    #[test]
    fn syntax_error_before_any_value_is_at_the_root() {
        assert_issue(
            "routes:\n\t- match: {}\n",
            ROOT,
            &["tabs disallowed", "at line 2, column 2"],
        );
    }

    #[test]
    fn unknown_field_names_its_nested_path() {
        assert_issue(
            "routes:\n  - match: { path_prefix: /a, prefix: /b }\n    proxy: { url: http://a }\n",
            "routes[0].match.prefix",
            &[
                "unknown field `prefix`",
                "expected one of host, methods, path, path_prefix",
                "at line 2, column 31",
            ],
        );
        assert_issue("rootes: []\n", "rootes", &["unknown field `rootes`"]);
    }

    #[test]
    fn wrong_scalar_type_says_what_was_expected_and_found() {
        assert_issue(
            "server:\n  max_body_bytes: lots\n",
            "server.max_body_bytes",
            &[
                "invalid u64: expected a non-negative integer, found `lots`",
                "at line 2, column 19",
            ],
        );
        assert_issue(
            "server: { max_body_bytes: -1 }\n",
            "server.max_body_bytes",
            &["expected a non-negative integer, found `-1`"],
        );
        assert_issue(
            "routes:\n  - match: { path_prefix: /a }\n    proxy: { url: http://a, strip_prefix: maybe }\n",
            "routes[0].proxy.strip_prefix",
            &["expected `true` or `false`, found `maybe`"],
        );
        // YAML 1.1 spellings are not booleans (as with serde_yaml).
        assert_issue(
            "routes:\n  - match: { path_prefix: /a }\n    proxy: { url: http://a, strip_prefix: yes }\n",
            "routes[0].proxy.strip_prefix",
            &[
                "invalid boolean: expected `true` or `false`, found `yes`",
                "at line 3, column 43",
            ],
        );
    }

    #[test]
    fn untyped_values_read_as_serde_yaml_read_them() {
        let raw: RawConfig = parse(
            "models:\n  - name: m\n    provider: p\n    params: { a: yes, b: no, c: on, d: 0755, e: 1_000, f: 0x10, g: true, h: 1.5, i: ~ }\n",
        )
        .unwrap();
        assert_eq!(
            serde_json::Value::Object(raw.models[0].params.clone()),
            serde_json::json!({
                "a": "yes", "b": "no", "c": "on", "d": "0755", "e": "1_000",
                "f": 16, "g": true, "h": 1.5, "i": null,
            })
        );
        // serde_yaml turned these into null; JSON has no infinity.
        assert_issue(
            "models:\n  - { name: m, provider: p, params: { x: .inf } }\n",
            "models[0].params.x",
            &["`.inf` is not a finite number"],
        );
    }

    #[test]
    fn missing_required_field() {
        assert_issue(
            "routes:\n  - match: {}\n    proxy: { timeout_ms: 5 }\n",
            "routes[0].proxy",
            &["missing field `url`", "at line 3"],
        );
        assert_issue(
            "routes:\n  - proxy: { url: http://a }\n",
            "routes[0]",
            &["missing field `match`", "at line 2, column 5"],
        );
    }

    #[test]
    fn wrong_type_of_a_sequence_element() {
        assert_issue(
            "routes:\n  - match: { path_prefix: /a }\n    proxy: { url: http://a }\n  - just-a-string\n",
            "routes[1]",
            &[
                "expected a mapping of `key: value` entries, found `just-a-string`",
                "at line 4, column 5",
            ],
        );
        assert_issue(
            "routes:\n  - match: { path_prefix: /a }\n  - match: { methods: GET }\n",
            "routes[1].match.methods",
            &["expected a list, found `GET`", "at line 3, column 23"],
        );
    }

    #[test]
    fn tagged_enum_errors_name_the_entry() {
        assert_issue(
            "providers:\n  x: { kind: carrier-pigeon }\n",
            "providers.x.kind",
            &[
                "unknown variant `carrier-pigeon`",
                "expected one of mock, openai",
            ],
        );
        assert_issue(
            "providers:\n  x: { kind: openai }\n",
            "providers.x",
            &["missing field `base_url`"],
        );
    }

    #[test]
    fn an_empty_value_where_a_collection_is_expected_is_explained() {
        // serde_yaml read these as empty; serde-saphyr does not guess.
        assert_issue(
            "plans:\n  free:\n",
            "plans.free",
            &["expected a mapping of `key: value` entries, found an empty value (write `{}` for none)"],
        );
        assert_issue(
            "routes:\n",
            "routes",
            &["expected a list, found an empty value (write `[]` for none)"],
        );
        assert_issue(
            "models:\n  - { name: m, provider: p, params: }\n",
            "models[0].params",
            &["found an empty value (write `{}` for none)"],
        );
        assert_issue(
            "models:\n  - name:\n    provider: p\n",
            "models[0].name",
            &["expected a string, found null"],
        );
    }

    #[test]
    fn duplicate_keys_are_refused() {
        // In a struct: the parent's path, the key in the message.
        assert_issue(
            "routes:\n  - match: { path_prefix: /a, path_prefix: /b }\n",
            "routes[0].match",
            &[
                "duplicate mapping key `path_prefix`",
                "at line 2, column 31",
            ],
        );
        // In a map (serde_yaml kept the last one silently).
        assert_issue(
            "providers:\n  a: { kind: mock }\n  a: { kind: mock }\n",
            "providers",
            &["duplicate mapping key `a`", "at line 3, column 3"],
        );
        assert_issue(
            "routes: []\nroutes: []\n",
            ROOT,
            &["duplicate mapping key `routes`"],
        );
    }

    #[test]
    fn anchors_and_aliases_still_work() {
        let raw: RawConfig = parse(
            "models:\n  - { name: a, provider: p, pricing: &p { input: 1, cached_input: 0.5, output: 2 } }\n  - { name: b, provider: p, pricing: *p }\n",
        )
        .unwrap();
        assert_eq!(raw.models[0].pricing, raw.models[1].pricing);
        assert_issue(
            "routes:\n  - match: { path_prefix: *nope }\n",
            "routes[0].match",
            &[
                "alias `*nope` names no anchor defined before it",
                "at line 2, column 27",
            ],
        );
    }

    #[test]
    fn alias_bomb_is_refused_within_budget() {
        // "Billion laughs": nine levels of ten aliases each would expand to
        // 10^9 scalars; `params` accepts any value, so only the budget stops it.
        let mut text = String::from("models:\n  - name: m\n    provider: p\n    params:\n");
        text.push_str("      a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (name, prev) in ["b", "c", "d", "e", "f", "g", "h", "i"]
            .into_iter()
            .zip(["a", "b", "c", "d", "e", "f", "g", "h"])
        {
            let refs = vec![format!("*{prev}"); 10].join(", ");
            text.push_str(&format!("      {name}: &{name} [{refs}]\n"));
        }
        let issue = issue(&text);
        assert!(issue.path.starts_with("models[0].params"), "{issue}");
        assert!(
            issue
                .message
                .contains("YAML document too large or too complex: limits breached: Nodes"),
            "{issue}"
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let open = "[".repeat(10_000);
        assert_issue(&open, ROOT, &["recursion limit exceeded"]);
        let closed = format!(
            "models:\n  - {{ name: m, provider: p, params: {{ x: {open}{} }} }}\n",
            "]".repeat(10_000)
        );
        assert_issue(&closed, "models", &["recursion limit exceeded"]);
        // Block nesting, which the flow limit does not cover.
        let mut block = String::from("models:\n  - name: m\n    provider: p\n    params:\n");
        for depth in 0..1_000 {
            block.push_str(&format!("{}k{depth}:\n", " ".repeat(6 + 2 * depth)));
        }
        let issue = issue(&block);
        assert!(issue.path.starts_with("models[0].params.k0.k1"), "{issue}");
        assert!(
            issue.message.contains("too large or too complex") && issue.message.contains("Depth"),
            "{issue}"
        );
    }

    #[test]
    fn empty_document_is_an_error() {
        for text in ["", "\n", "# only a comment\n", "---\n", "~\n"] {
            assert_issue(text, ROOT, &["the document is empty"]);
        }
    }

    #[test]
    fn a_document_that_is_not_a_mapping_is_an_error() {
        assert_issue(
            "- a\n- b\n",
            ROOT,
            &["the document must be a mapping of `key: value` settings, found a list"],
        );
        assert_issue(
            "hello\n",
            ROOT,
            &["the document must be a mapping of `key: value` settings, found `hello`"],
        );
        assert_issue(
            "routes: []\n---\nroutes: []\n",
            ROOT,
            &["only single YAML document expected but multiple found"],
        );
    }

    #[test]
    fn config_from_yaml_reports_parse_errors_with_their_path() {
        let err =
            crate::Config::from_yaml("server: { max_body_bytes: lots }\n", |_| None).unwrap_err();
        assert_eq!(err.issues.len(), 1);
        assert_eq!(err.issues[0].path, "server.max_body_bytes");
    }
}
