//! Loading and writing Kubernetes YAML for `inject`, keeping what a
//! round trip through a YAML 1.2 library would otherwise change: plain
//! numbers and YAML 1.1 booleans (`0644`, `1.10`, `yes`) are kept verbatim, so
//! Kubernetes (a YAML 1.1 reader) reads the output as it read the input.
//! Key order is kept; comments are not (the parser does not report them).

use std::collections::BTreeMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use yaml_rust2::yaml::Hash;
use yaml_rust2::{Yaml, YamlEmitter};

/// A YAML syntax error with its 1-based position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line} column {column}: {message}")]
pub struct SyntaxError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What the parser found.
    pub message: String,
}

/// Parses a multi-document stream; empty documents (a stray `---`) are dropped.
pub fn load(text: &str) -> Result<Vec<Yaml>, SyntaxError> {
    check_aliases(text)?;
    let mut loader = Loader::default();
    let mut parser = Parser::new_from_str(text);
    let result = parser.load(&mut loader, true);
    let error = result.err().or(loader.error);
    if let Some(e) = error {
        return Err(SyntaxError {
            line: e.marker().line(),
            column: e.marker().col() + 1,
            message: e.info().to_owned(),
        });
    }
    Ok(loader
        .docs
        .into_iter()
        .filter(|d| !d.is_null() && !d.is_badvalue())
        .collect())
}

/// Aliases may copy at most this many nodes in all: a "billion laughs"
/// document of a few hundred bytes would otherwise expand to gigabytes.
pub const MAX_ALIASED_NODES: u64 = 100_000;

/// Refuses a stream whose aliases would copy more than
/// [`MAX_ALIASED_NODES`] nodes, before anything is built (used for
/// manifests and YAML configs). Syntax errors are left to the loader.
pub fn check_aliases(text: &str) -> Result<(), SyntaxError> {
    let mut counter = AliasCounter::default();
    let _ = Parser::new_from_str(text).load(&mut counter, true);
    match counter.over {
        None => Ok(()),
        Some(mark) => Err(SyntaxError {
            line: mark.line(),
            column: mark.col() + 1,
            message: format!("aliases would copy more than {MAX_ALIASED_NODES} nodes"),
        }),
    }
}

/// Counts the nodes each anchor stands for, and what aliases copy.
#[derive(Default)]
struct AliasCounter {
    /// Open collections: nodes so far, anchor.
    open: Vec<(u64, usize)>,
    sizes: std::collections::HashMap<usize, u64>,
    aliased: u64,
    over: Option<Marker>,
}

impl MarkedEventReceiver for AliasCounter {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.over.is_some() {
            return;
        }
        match event {
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                self.open.push((1, anchor));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((size, anchor)) = self.open.pop() {
                    self.node(size, anchor);
                }
            }
            Event::Scalar(_, _, anchor, _) => self.node(1, anchor),
            Event::Alias(id) => {
                let size = self.sizes.get(&id).copied().unwrap_or(1);
                self.aliased = self.aliased.saturating_add(size);
                if self.aliased > MAX_ALIASED_NODES {
                    self.over = Some(mark);
                }
                self.node(size, 0);
            }
            _ => {}
        }
    }
}

impl AliasCounter {
    fn node(&mut self, size: u64, anchor: usize) {
        if anchor > 0 {
            self.sizes.insert(anchor, size);
        }
        if let Some((parent, _)) = self.open.last_mut() {
            *parent = parent.saturating_add(size);
        }
    }
}

/// Writes one document, starting with `---` and ending with a newline.
pub fn dump(doc: &Yaml) -> String {
    dump_with(doc, true)
}

/// [`dump`], checked: the text must load as one document that is written
/// the same again (integers built in code load as verbatim numbers, so the
/// written form is compared). When block literals do not read back (a value
/// starting with spaces), strings are written quoted; `None` when that
/// fails too (e.g. a key over YAML's 1024-character limit once escaped).
pub fn dump_checked(doc: &Yaml) -> Option<String> {
    [true, false].into_iter().find_map(|multiline| {
        let text = dump_with(doc, multiline);
        let again = load(&text).ok()?;
        match again.as_slice() {
            [again] if dump_with(again, multiline) == text => Some(text),
            _ => None,
        }
    })
}

fn dump_with(doc: &Yaml, multiline: bool) -> String {
    let mut out = String::new();
    let mut emitter = YamlEmitter::new(&mut out);
    emitter.multiline_strings(multiline);
    // Writing into a String cannot fail; an alias-free tree always emits.
    let _ = emitter.dump(doc);
    out.push('\n');
    out
}

/// YAML 1.1 booleans that YAML 1.2 reads as strings: kept as written.
const YAML11_BOOLS: &[&str] = &[
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
    "OFF",
];

/// A plain scalar: numbers and YAML 1.1 booleans verbatim (emitted as written).
fn plain_scalar(text: String) -> Yaml {
    match Yaml::from_str(&text) {
        Yaml::Integer(_) | Yaml::Real(_) => Yaml::Real(text),
        Yaml::String(s) if YAML11_BOOLS.contains(&s.as_str()) => Yaml::Real(s),
        other => other,
    }
}

/// Builds documents from parser events (yaml-rust2's loader, with [`plain_scalar`]).
#[derive(Default)]
struct Loader {
    docs: Vec<Yaml>,
    stack: Vec<(Yaml, usize)>,
    keys: Vec<Option<Yaml>>,
    anchors: BTreeMap<usize, Yaml>,
    error: Option<yaml_rust2::ScanError>,
}

impl MarkedEventReceiver for Loader {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        match event {
            Event::DocumentEnd => match self.stack.pop() {
                Some((doc, _)) => self.docs.push(doc),
                None => self.docs.push(Yaml::Null),
            },
            Event::SequenceStart(anchor, _) => self.stack.push((Yaml::Array(Vec::new()), anchor)),
            Event::MappingStart(anchor, _) => {
                self.stack.push((Yaml::Hash(Hash::new()), anchor));
                self.keys.push(None);
            }
            Event::SequenceEnd => self.close(mark),
            Event::MappingEnd => {
                self.keys.pop();
                self.close(mark);
            }
            Event::Scalar(text, style, anchor, tag) => {
                let node = match (style, tag) {
                    (TScalarStyle::Plain, None) => plain_scalar(text),
                    (TScalarStyle::Plain, Some(Tag { handle, suffix }))
                        if handle == "tag:yaml.org,2002:" && suffix != "str" =>
                    {
                        plain_scalar(text)
                    }
                    _ => Yaml::String(text),
                };
                self.insert(node, anchor, mark);
            }
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned().unwrap_or(Yaml::Null);
                self.insert(node, 0, mark);
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentStart => {}
        }
    }
}

impl Loader {
    fn close(&mut self, mark: Marker) {
        if let Some((node, anchor)) = self.stack.pop() {
            self.insert(node, anchor, mark);
        }
    }

    fn insert(&mut self, node: Yaml, anchor: usize, mark: Marker) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.stack.push((node, 0)),
            Some((Yaml::Array(items), _)) => items.push(node),
            Some((Yaml::Hash(map), _)) => {
                let Some(slot) = self.keys.last_mut() else {
                    return;
                };
                match slot.take() {
                    None => *slot = Some(node),
                    Some(key) => {
                        let shown = match &key {
                            Yaml::String(s) | Yaml::Real(s) => s.clone(),
                            other => format!("{other:?}"),
                        };
                        if map.insert(key, node).is_some() {
                            self.error = Some(yaml_rust2::ScanError::new_string(
                                mark,
                                format!("duplicate key {shown:?} in mapping"),
                            ));
                        }
                    }
                }
            }
            Some(_) => {}
        }
    }
}

/// A string node.
pub fn s(value: impl Into<String>) -> Yaml {
    Yaml::String(value.into())
}

/// A mapping from `(key, value)` pairs, in order.
pub fn map<const N: usize>(pairs: [(&str, Yaml); N]) -> Yaml {
    let mut hash = Hash::new();
    for (key, value) in pairs {
        hash.insert(s(key), value);
    }
    Yaml::Hash(hash)
}

/// The value under `key` of a mapping, for changing it.
pub fn get_mut<'a>(node: &'a mut Yaml, key: &str) -> Option<&'a mut Yaml> {
    match node {
        Yaml::Hash(hash) => hash.get_mut(&s(key)),
        _ => None,
    }
}

/// The mapping under `key` (a `Yaml::Hash`), created at the end when missing
/// or null. `None` when `node` is not a mapping or the value is not one.
pub fn ensure_map<'a>(node: &'a mut Yaml, key: &str) -> Option<&'a mut Yaml> {
    let Yaml::Hash(hash) = node else { return None };
    // Not `entry().or_insert()` nor `insert()` on a present key: both move it to the back.
    let key = s(key);
    match hash.get_mut(&key) {
        Some(slot) if slot.is_null() => *slot = Yaml::Hash(Hash::new()),
        Some(_) => {}
        None => {
            hash.insert(key.clone(), Yaml::Hash(Hash::new()));
        }
    }
    let slot = hash.get_mut(&key)?;
    match slot {
        Yaml::Hash(_) => Some(slot),
        _ => None,
    }
}

/// Sets `key` in a mapping (kept in place when present, else appended).
/// Never `Hash::insert` on a present key: it moves the key to the back.
pub fn set(node: &mut Yaml, key: &str, value: Yaml) {
    if let Yaml::Hash(hash) = node {
        match hash.get_mut(&s(key)) {
            Some(slot) => *slot = value,
            None => {
                hash.insert(s(key), value);
            }
        }
    }
}

/// The sequence under `key`, created (at the end) when missing or null.
pub fn ensure_seq<'a>(node: &'a mut Yaml, key: &str) -> Option<&'a mut Vec<Yaml>> {
    let Yaml::Hash(hash) = node else { return None };
    // Not `entry().or_insert()` nor `insert()` on a present key: both move it to the back.
    let key = s(key);
    match hash.get_mut(&key) {
        Some(slot) if slot.is_null() => *slot = Yaml::Array(Vec::new()),
        Some(_) => {}
        None => {
            hash.insert(key.clone(), Yaml::Array(Vec::new()));
        }
    }
    let slot = hash.get_mut(&key)?;
    match slot {
        Yaml::Array(items) => Some(items),
        _ => None,
    }
}

/// A scalar as text (strings and verbatim numbers/booleans).
pub fn text(node: &Yaml) -> Option<String> {
    match node {
        Yaml::String(v) | Yaml::Real(v) => Some(v.clone()),
        Yaml::Integer(v) => Some(v.to_string()),
        Yaml::Boolean(v) => Some(v.to_string()),
        _ => None,
    }
}

/// A scalar as an integer (verbatim numbers included).
pub fn int(node: &Yaml) -> Option<i64> {
    match node {
        Yaml::Integer(v) => Some(*v),
        Yaml::Real(v) | Yaml::String(v) => v.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_order_numbers_and_yaml11_booleans() {
        let input =
            "b: 1\na:\n  mode: 0644\n  version: 1.10\n  flag: yes\n  quoted: \"8080\"\n  n: ~\n";
        let docs = load(input).unwrap();
        let out = dump(&docs[0]);
        assert_eq!(out, "---\nb: 1\na:\n  mode: 0644\n  version: 1.10\n  flag: yes\n  quoted: \"8080\"\n  n: ~\n");
    }

    #[test]
    fn errors_carry_one_based_line_and_column() {
        let err = load("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(err.line >= 2, "{err}");
        let err = load("a: 1\n  b: 2\n").unwrap_err();
        assert_eq!((err.line, err.column), (2, 4), "{err}");
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = load("a: 1\na: 2\n").unwrap_err();
        assert!(err.message.contains("duplicate key \"a\""), "{err}");
    }

    #[test]
    fn multi_document_streams_drop_empty_documents() {
        let docs = load("---\na: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
    }

    #[test]
    fn ensure_and_set_keep_keys_in_place() {
        let mut doc = load("a: ~\nb: 1\nc: x\n").unwrap().remove(0);
        ensure_map(&mut doc, "a").unwrap();
        set(&mut doc, "c", s("z"));
        ensure_seq(&mut doc, "d").unwrap();
        assert_eq!(dump(&doc), "---\na: {}\nb: 1\nc: z\nd: []\n");
    }

    #[test]
    fn aliases_are_expanded() {
        let docs = load("x: &v {a: 1}\nz: *v\n").unwrap();
        assert_eq!(docs[0]["z"]["a"], Yaml::Real("1".into()));
    }

    /// Nine levels of ten aliases each: 10^9 nodes from 500 bytes.
    pub(crate) fn billion_laughs() -> String {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let items = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{items}]\n"));
        }
        text
    }

    #[test]
    fn alias_bombs_are_refused_before_expanding() {
        // Found with fuzz/inject_yaml (a hand-written "billion laughs"
        // input): the loader copied every alias and ran out of time and memory.
        let err = load(&format!("kind: ConfigMap\n{}", billion_laughs())).unwrap_err();
        assert!(
            err.message.contains("aliases would copy more than"),
            "{err}"
        );
        assert_eq!(err.line, 6, "{err}");
        // Ordinary anchor use stays fine, up to the limit.
        let items = vec!["*v"; 9_000].join(", ");
        assert!(load(&format!(
            "x: &v [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\ny: [{items}]\n"
        ))
        .is_ok());
    }
}
