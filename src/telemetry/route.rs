//! Route normalisation: turns request paths (`/users/12345?x=1`) into
//! low-cardinality route labels (`/users/{id}`). Configured templates are
//! tried first; otherwise ID-like segments — numbers, UUIDs, hex of 8 or more
//! digits, long base64-ish tokens — collapse to `{id}`. Query strings and
//! fragments are always dropped. Used by log rules and (later) the proxy.

use std::borrow::Cow;

/// Longest route returned, in bytes; longer ones are cut at a segment boundary
/// and end in `/…`.
pub const MAX_ROUTE_BYTES: usize = 256;

/// What an ID-like segment becomes.
pub const ID: &str = "{id}";

/// A configured route template such as `/orders/{id}/items`: literal segments
/// must match exactly, `{name}` segments match any one non-empty segment.
#[derive(Debug, Clone)]
struct Template {
    text: String,
    segments: Vec<Option<String>>,
}

/// A template that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("route template {template:?}: {reason}")]
pub struct TemplateError {
    /// The template as configured.
    pub template: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Normalises paths into routes.
#[derive(Debug, Clone, Default)]
pub struct RouteNormalizer {
    templates: Vec<Template>,
}

impl RouteNormalizer {
    /// A normaliser with `templates` (tried in order; first match wins).
    pub fn new(templates: &[String]) -> Result<Self, TemplateError> {
        let templates = templates
            .iter()
            .map(|text| {
                let error = |reason| TemplateError {
                    template: text.clone(),
                    reason,
                };
                if !text.starts_with('/') {
                    return Err(error("must start with `/`"));
                }
                if text.contains(['?', '#']) {
                    return Err(error("must not contain `?` or `#`"));
                }
                let segments = text[1..]
                    .split('/')
                    .map(|s| {
                        if s.starts_with('{') && s.ends_with('}') && s.len() > 2 {
                            Ok(None)
                        } else if s.contains(['{', '}']) {
                            Err(error("a parameter must be a whole segment, like `{id}`"))
                        } else {
                            Ok(Some(s.to_owned()))
                        }
                    })
                    .collect::<Result<_, _>>()?;
                Ok(Template {
                    text: text.clone(),
                    segments,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { templates })
    }

    /// The route for `path`: a matching template, else the path with
    /// ID-like segments collapsed. A full URL (`https://host/p`) is reduced
    /// to its path first.
    pub fn normalize<'a>(&'a self, path: &'a str) -> Cow<'a, str> {
        let path = strip_origin(path);
        let path = path.split(['?', '#']).next().unwrap_or_default();
        if path.is_empty() {
            return Cow::Borrowed("/");
        }
        if let Some(rest) = path.strip_prefix('/') {
            for template in &self.templates {
                if template.matches(rest) {
                    return Cow::Borrowed(&template.text);
                }
            }
        }
        if path.len() <= MAX_ROUTE_BYTES && !path.split('/').any(is_id_like) {
            return Cow::Borrowed(path);
        }
        Cow::Owned(collapse(path))
    }
}

impl Template {
    fn matches(&self, rest: &str) -> bool {
        let mut parts = rest.split('/');
        for segment in &self.segments {
            match (parts.next(), segment) {
                (Some(part), Some(literal)) if part == literal => {}
                (Some(part), None) if !part.is_empty() => {}
                _ => return false,
            }
        }
        parts.next().is_none()
    }
}

fn strip_origin(path: &str) -> &str {
    for scheme in ["http://", "https://"] {
        if let Some(rest) = path.strip_prefix(scheme) {
            return rest.find('/').map_or("/", |i| &rest[i..]);
        }
    }
    path
}

fn collapse(path: &str) -> String {
    let mut out = String::with_capacity(path.len().min(MAX_ROUTE_BYTES));
    for (i, segment) in path.split('/').enumerate() {
        let piece = if is_id_like(segment) { ID } else { segment };
        let extra = usize::from(i > 0) + piece.len();
        if out.len() + extra > MAX_ROUTE_BYTES {
            out.push_str("/…");
            break;
        }
        if i > 0 {
            out.push('/');
        }
        out.push_str(piece);
    }
    out
}

/// Whether a path segment looks like an identifier rather than a name.
pub fn is_id_like(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    if bytes.is_empty() {
        return false;
    }
    if bytes.iter().all(u8::is_ascii_digit) {
        return true;
    }
    if is_uuid(bytes) {
        return true;
    }
    if bytes.len() >= 8 && bytes.iter().all(u8::is_ascii_hexdigit) {
        return bytes.iter().any(u8::is_ascii_digit);
    }
    // Long tokens: base64/base64url alphabet with letters and digits mixed.
    bytes.len() >= 16
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=' | b'+' | b'.'))
        && bytes.iter().any(u8::is_ascii_digit)
        && bytes.iter().any(u8::is_ascii_alphabetic)
}

fn is_uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(templates: &[&str]) -> RouteNormalizer {
        let t: Vec<String> = templates.iter().map(|s| s.to_string()).collect();
        RouteNormalizer::new(&t).unwrap()
    }

    #[test]
    fn templates_win() {
        let r = n(&["/users/{id}", "/orders/{order}/items", "/v1/{x}/static"]);
        assert_eq!(r.normalize("/users/alice"), "/users/{id}");
        assert_eq!(
            r.normalize("/orders/A-77/items?page=2"),
            "/orders/{order}/items"
        );
        assert_eq!(r.normalize("/orders//items"), "/orders//items");
        assert_eq!(r.normalize("/users/alice/extra"), "/users/alice/extra");
    }

    #[test]
    fn id_like_segments_collapse() {
        let r = n(&[]);
        assert_eq!(r.normalize("/api/orders/1042"), "/api/orders/{id}");
        assert_eq!(
            r.normalize("/u/550e8400-e29b-41d4-a716-446655440000/x"),
            "/u/{id}/x"
        );
        assert_eq!(r.normalize("/blob/deadbeef12"), "/blob/{id}");
        assert_eq!(r.normalize("/t/eyJhbGciOiJIUzI1NiJ9xyz"), "/t/{id}");
        assert_eq!(r.normalize("/api/v2/search?q=1#top"), "/api/v2/search");
        assert_eq!(r.normalize("/api/configuration"), "/api/configuration");
        assert_eq!(r.normalize("/facade"), "/facade");
        assert_eq!(r.normalize("https://example.com/a/7?x"), "/a/{id}");
        assert_eq!(r.normalize(""), "/");
        assert_eq!(r.normalize("?x=1"), "/");
    }

    #[test]
    fn long_paths_are_bounded() {
        let long = "/seg".repeat(200);
        let normalizer = n(&[]);
        let route = normalizer.normalize(&long);
        assert!(route.len() <= MAX_ROUTE_BYTES + 4, "{}", route.len());
        assert!(route.ends_with("/…"));
    }

    #[test]
    fn bad_templates_are_refused() {
        for bad in ["users/{id}", "/a?b", "/a/x{id}"] {
            assert!(RouteNormalizer::new(&[bad.to_owned()]).is_err(), "{bad}");
        }
    }
}
