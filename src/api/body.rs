//! Reading request bodies safely: size limits, a nesting-depth check before any JSON parser sees
//! the bytes, and serde errors turned into problems that name the field at fault.
use serde::de::DeserializeOwned;

use crate::problem::Problem;

/// Fails when JSON nests deeper than `max` (objects and arrays), without parsing it. Strings are
/// skipped with their escapes, so brackets inside them do not count.
pub fn check_depth(bytes: &[u8], max: usize) -> Result<(), Problem> {
    let mut depth = 0usize;
    let mut at = 0usize;
    while at < bytes.len() {
        match bytes[at] {
            // A string: jump to its closing quote (documents are mostly string content).
            b'"' => {
                at += 1;
                loop {
                    match memchr::memchr2(b'"', b'\\', &bytes[at..]) {
                        Some(k) if bytes[at + k] == b'\\' => at += k + 2,
                        Some(k) => {
                            at += k;
                            break;
                        }
                        None => return Ok(()),
                    }
                }
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return Err(Problem::bad_request(format!(
                        "JSON nests deeper than {max} levels (at byte {at})"
                    )));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        at += 1;
    }
    Ok(())
}

/// Parses JSON into `T`; a type error names its JSON pointer, a syntax error its line and column.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    // Parsed plainly first; only a body that fails is parsed again with its path tracked.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let inner = err.inner();
        if inner.is_syntax() || inner.is_eof() {
            return Problem::bad_request(format!(
                "the body is not valid JSON: {} (line {}, column {})",
                strip_position(&inner.to_string()),
                inner.line(),
                inner.column()
            ));
        }
        let mut pointer = path_to_pointer(&err.path().to_string());
        let message = strip_position(&inner.to_string());
        // serde reports a missing field at its parent; point at the field itself.
        if let Some(name) = message
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next())
        {
            pointer = format!("{pointer}/{name}");
        }
        Problem::invalid(pointer, message)
    })
}

fn strip_position(s: &str) -> String {
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s.to_string(),
    }
}

/// `attachments[0].content` → `/attachments/0/content`; `.` (the root) → ``.
fn path_to_pointer(path: &str) -> String {
    if path == "." {
        return String::new();
    }
    let mut out = String::new();
    for seg in path.split('.') {
        let mut rest = seg;
        if let Some(i) = rest.find('[') {
            let (name, idx) = rest.split_at(i);
            if !name.is_empty() {
                out.push('/');
                out.push_str(name);
            }
            rest = idx;
            while let Some(end) = rest.find(']') {
                out.push('/');
                out.push_str(&rest[1..end]);
                rest = &rest[end + 1..];
            }
        } else if !rest.is_empty() {
            out.push('/');
            out.push_str(rest);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_check_counts_only_structure_outside_strings() {
        assert!(check_depth(br#"{"a":[1,{"b":"[[[[[["}]}"#, 3).is_ok());
        assert!(check_depth(br#"[[[[1]]]]"#, 3).is_err());
        assert!(check_depth(br#"{"a":"\"[[[["}"#, 1).is_ok());
        // An escaped backslash ends before the quote: the brackets after it count.
        assert!(check_depth(br#"{"a":"x\\"}"#, 1).is_ok());
        assert!(check_depth(br#"{"a":"x\\","b":[[1]]}"#, 2).is_err());
        // An unterminated string hides nothing that follows it.
        assert!(check_depth(br#"{"a":"[[[["#, 1).is_ok());
    }

    #[test]
    fn paths_become_json_pointers() {
        assert_eq!(
            path_to_pointer("attachments[0].content"),
            "/attachments/0/content"
        );
        assert_eq!(path_to_pointer("."), "");
        assert_eq!(path_to_pointer("kind"), "/kind");
        assert_eq!(path_to_pointer("a[1][2].b"), "/a/1/2/b");
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        kind: String,
        items: Vec<u32>,
    }

    #[test]
    fn serde_errors_name_the_field() {
        let p = parse_json::<T>(br#"{"items":[]}"#).expect_err("missing");
        assert_eq!(p.errors[0].pointer, "/kind");
        let p = parse_json::<T>(br#"{"kind":"x","items":[1,"a"]}"#).expect_err("type");
        assert_eq!(p.errors[0].pointer, "/items/1");
        let p = parse_json::<T>(br#"{"kind":"x","items":[],"extra":1}"#).expect_err("unknown");
        assert_eq!(p.errors[0].pointer, "/extra");
        let p = parse_json::<T>(b"{\"kind\":\n").expect_err("syntax");
        assert_eq!(p.status, 400);
        assert!(p.detail.contains("line 2"), "{}", p.detail);
    }
}
