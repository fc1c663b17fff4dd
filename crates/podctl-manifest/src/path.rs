//! Field paths (`spec.containers[1].ports[0].hostPort`) and the path -> source line map.
//!
//! Three producers name fields — the YAML loader, serde_path_to_error and serde_ignored — so they
//! all convert into [`FieldPath`] and are printed by one `Display`, which keeps the paths in
//! errors and warnings identical to the keys of the line map.

use std::collections::HashMap;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct FieldPath(pub(crate) Vec<Seg>);

impl FieldPath {
    pub(crate) fn root() -> Self {
        FieldPath(Vec::new())
    }

    pub(crate) fn key(&self, key: &str) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_string()));
        FieldPath(segs)
    }

    pub(crate) fn idx(&self, index: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        FieldPath(segs)
    }

    pub(crate) fn from_path_to_error(path: &serde_path_to_error::Path) -> Self {
        use serde_path_to_error::Segment;
        let segs = path
            .iter()
            .filter_map(|seg| match seg {
                Segment::Seq { index } => Some(Seg::Index(*index)),
                Segment::Map { key } => Some(Seg::Key(key.clone())),
                Segment::Enum { .. } | Segment::Unknown => None,
            })
            .collect();
        FieldPath(segs)
    }

    pub(crate) fn from_ignored(path: &serde_ignored::Path<'_>) -> Self {
        fn walk(path: &serde_ignored::Path<'_>, out: &mut Vec<Seg>) {
            use serde_ignored::Path;
            match path {
                Path::Root => {}
                Path::Seq { parent, index } => {
                    walk(parent, out);
                    out.push(Seg::Index(*index));
                }
                Path::Map { parent, key } => {
                    walk(parent, out);
                    out.push(Seg::Key(key.clone()));
                }
                Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => {
                    walk(parent, out)
                }
            }
        }
        let mut segs = Vec::new();
        walk(path, &mut segs);
        FieldPath(segs)
    }
}

/// Keys that would read ambiguously after a dot (label keys such as `app.kubernetes.io/name`)
/// are bracketed, as `kubectl explain` and the API server do.
fn needs_brackets(key: &str) -> bool {
    key.is_empty() || key.chars().any(|c| matches!(c, '.' | '[' | ']') || c.is_whitespace())
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Index(n) => write!(f, "[{n}]")?,
                Seg::Key(k) if needs_brackets(k) => write!(f, "[{k}]")?,
                Seg::Key(k) if i == 0 => f.write_str(k)?,
                Seg::Key(k) => write!(f, ".{k}")?,
            }
        }
        Ok(())
    }
}

/// Where each node of the document starts. A mapping value is recorded at its key's line (the
/// value of `spec:` starts on the next line, but users look for the key).
#[derive(Debug, Default, Clone)]
pub(crate) struct LineMap {
    lines: HashMap<FieldPath, usize>,
    /// Source text of plain scalars that YAML resolved to a number or bool, so a type error can
    /// show the user exactly what to quote.
    raw: HashMap<FieldPath, String>,
}

impl LineMap {
    pub(crate) fn record(&mut self, path: &FieldPath, line: usize) {
        self.lines.entry(path.clone()).or_insert(line);
    }

    pub(crate) fn record_raw(&mut self, path: &FieldPath, raw: &str) {
        self.raw.entry(path.clone()).or_insert_with(|| raw.to_string());
    }

    /// Line of `path`, or of its nearest recorded ancestor: a missing field is reported at the
    /// mapping that should have held it, and nodes copied in by an alias at the alias.
    pub(crate) fn line(&self, path: &FieldPath) -> Option<usize> {
        (0..=path.0.len())
            .rev()
            .find_map(|n| self.lines.get(&FieldPath(path.0[..n].to_vec())).copied())
    }

    pub(crate) fn raw(&self, path: &FieldPath) -> Option<&str> {
        self.raw.get(path).map(String::as_str)
    }

    /// The lines of the node at `prefix` (an item of a `kind: List`), as if it were the document.
    pub(crate) fn under(&self, prefix: &FieldPath) -> LineMap {
        fn strip<V: Clone>(map: &HashMap<FieldPath, V>, prefix: &FieldPath) -> HashMap<FieldPath, V> {
            map.iter()
                .filter(|(path, _)| path.0.starts_with(&prefix.0))
                .map(|(path, v)| (FieldPath(path.0[prefix.0.len()..].to_vec()), v.clone()))
                .collect()
        }
        LineMap {
            lines: strip(&self.lines, prefix),
            raw: strip(&self.raw, prefix),
        }
    }
}
