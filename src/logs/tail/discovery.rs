//! Finding files: glob patterns (`*`, `?`, `[abc]`, `[!abc]` in any path
//! component) expanded against the file system on every scan. A directory
//! that does not exist yet simply yields nothing until it appears.

use std::path::{Component, Path, PathBuf};

use regex::bytes::Regex;

/// A pattern that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    /// Empty pattern.
    #[error("empty pattern")]
    Empty,
    /// `**` (any depth) is not supported.
    #[error("`**` is not supported; list each directory level")]
    DoubleStar,
    /// A `[` without its `]`.
    #[error("unclosed `[` in {0:?}")]
    Unclosed(String),
}

#[derive(Debug, Clone)]
enum Part {
    Literal(std::ffi::OsString),
    Pattern(Regex),
}

/// A compiled glob pattern.
#[derive(Debug, Clone)]
pub struct Glob {
    pattern: String,
    absolute: bool,
    parts: Vec<Part>,
    /// Patterns without `/` match file names only (useful for `exclude`).
    name_only: bool,
}

impl Glob {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> Result<Self, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError::Empty);
        }
        let path = Path::new(pattern);
        let mut parts = Vec::new();
        for component in path.components() {
            match component {
                Component::RootDir | Component::CurDir => {}
                Component::Prefix(_) => {}
                Component::ParentDir => parts.push(Part::Literal("..".into())),
                Component::Normal(name) => {
                    let text = name.to_string_lossy();
                    if text.contains("**") {
                        return Err(GlobError::DoubleStar);
                    }
                    if text.contains(['*', '?', '[']) {
                        parts.push(Part::Pattern(component_regex(&text)?));
                    } else {
                        parts.push(Part::Literal(name.to_owned()));
                    }
                }
            }
        }
        if parts.is_empty() {
            return Err(GlobError::Empty);
        }
        Ok(Self {
            pattern: pattern.to_owned(),
            absolute: path.has_root(),
            parts,
            name_only: !pattern.contains('/'),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether `path` matches (by file name alone for patterns without `/`).
    pub fn matches(&self, path: &Path) -> bool {
        let components: Vec<_> = if self.name_only {
            path.file_name().into_iter().collect()
        } else {
            path.components()
                .filter_map(|c| match c {
                    Component::Normal(n) => Some(n),
                    Component::ParentDir => Some("..".as_ref()),
                    _ => None,
                })
                .collect()
        };
        components.len() == self.parts.len()
            && components
                .iter()
                .zip(&self.parts)
                .all(|(name, part)| part_matches(part, name))
    }

    /// Appends every regular file (symlinks followed) matching the pattern.
    pub fn scan(&self, out: &mut Vec<PathBuf>) {
        let root = if self.absolute {
            PathBuf::from("/")
        } else {
            PathBuf::from(".")
        };
        let mut current = vec![root];
        for part in &self.parts {
            let mut next = Vec::new();
            for dir in &current {
                match part {
                    Part::Literal(name) => next.push(dir.join(name)),
                    Part::Pattern(_) => {
                        let Ok(entries) = std::fs::read_dir(dir) else {
                            continue;
                        };
                        for entry in entries.flatten() {
                            if part_matches(part, &entry.file_name()) {
                                next.push(entry.path());
                            }
                        }
                    }
                }
            }
            current = next;
            if current.is_empty() {
                return;
            }
        }
        current.sort();
        out.extend(
            current
                .into_iter()
                .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file())),
        );
    }
}

fn part_matches(part: &Part, name: &std::ffi::OsStr) -> bool {
    match part {
        Part::Literal(literal) => literal == name,
        Part::Pattern(regex) => regex.is_match(name.as_encoded_bytes()),
    }
}

fn component_regex(glob: &str) -> Result<Regex, GlobError> {
    let mut re = String::from("(?s-u)^");
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' => {
                let mut class = String::from("[");
                if chars.peek() == Some(&'!') {
                    chars.next();
                    class.push('^');
                }
                let mut closed = false;
                let mut first = true;
                for c in chars.by_ref() {
                    if c == ']' && !first {
                        closed = true;
                        break;
                    }
                    first = false;
                    if c == '\\' || c == '[' || c == '&' || c == '~' || c == '-' && class.len() == 1
                    {
                        class.push('\\');
                    }
                    class.push(c);
                }
                if !closed {
                    return Err(GlobError::Unclosed(glob.to_owned()));
                }
                class.push(']');
                re.push_str(&class);
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    Regex::new(&re).map_err(|_| GlobError::Unclosed(glob.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_components() {
        let glob = Glob::new("/var/log/*/app-?.log").unwrap();
        assert!(glob.matches(Path::new("/var/log/pod1/app-1.log")));
        assert!(!glob.matches(Path::new("/var/log/pod1/app-12.log")));
        assert!(!glob.matches(Path::new("/var/log/a/b/app-1.log")));
        let class = Glob::new("/x/[!.]*.log").unwrap();
        assert!(class.matches(Path::new("/x/a.log")));
        assert!(!class.matches(Path::new("/x/.a.log")));
        let name = Glob::new("*.gz").unwrap();
        assert!(name.matches(Path::new("/any/where/x.gz")));
    }

    #[test]
    fn rejects_what_it_cannot_do() {
        assert_eq!(Glob::new("").unwrap_err(), GlobError::Empty);
        assert_eq!(Glob::new("/a/**/b").unwrap_err(), GlobError::DoubleStar);
        assert!(matches!(Glob::new("/a/[bc"), Err(GlobError::Unclosed(_))));
    }

    #[test]
    fn scans_the_file_system_and_tolerates_missing_directories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        for name in ["a.log", "b.log", "c.txt"] {
            std::fs::write(dir.path().join("sub").join(name), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub/d.log")).unwrap();
        let glob = Glob::new(&format!("{}/s*/*.log", dir.path().display())).unwrap();
        let mut found = Vec::new();
        glob.scan(&mut found);
        let names: Vec<_> = found.iter().map(|p| p.file_name().unwrap()).collect();
        assert_eq!(names, ["a.log", "b.log"]);
        let missing = Glob::new(&format!("{}/nope/*.log", dir.path().display())).unwrap();
        let mut found = Vec::new();
        missing.scan(&mut found);
        assert!(found.is_empty());
    }
}
