//! YAML text <-> `serde_json::Value`.
//!
//! Loading walks yaml-rust2's event stream (not its `Yaml` tree) because only the events carry
//! source positions; while building the `Value` it records the line of every node by field path.
//! Emitting is a small block-style writer for `podctl get pod -o yaml`.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, ScanError, TScalarStyle};

use super::path::{FieldPath, LineMap, Seg};
use super::ManifestError;

/// Deeper than any real manifest; bounds our recursion on hostile input like `[[[[[[...`.
const MAX_DEPTH: usize = 128;
/// Bounds alias expansion ("billion laughs"): nodes built, counting every alias copy.
const MAX_NODES: usize = 1_000_000;

const CORE_TAG: &str = "tag:yaml.org,2002:";

/// Parses exactly one YAML document into a `Value` plus the line of every node.
pub(crate) fn load(text: &str) -> Result<(Value, LineMap), ManifestError> {
    let mut documents = load_all(text)?;
    if documents.len() > 1 {
        return Err(ManifestError {
            path: String::new(),
            line: Some(documents[1].2),
            message: "a second YAML document starts here; this takes exactly one document".into(),
        });
    }
    let (doc, lines, _) = documents.remove(0);
    Ok((doc, lines))
}

/// Every document of a `---`-separated stream, each with its line map and the line it starts on.
/// Empty documents (a stray `---` at either end) are skipped, as kubectl does.
pub(crate) fn load_all(text: &str) -> Result<Vec<(Value, LineMap, usize)>, ManifestError> {
    let mut loader = Loader {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        lines: LineMap::default(),
        nodes: 0,
    };
    let mut found = Vec::new();
    loop {
        let (event, mark) = loader.next()?;
        match event {
            Event::StreamStart | Event::Nothing => {}
            Event::StreamEnd => break,
            Event::DocumentStart => {
                loader.anchors.clear();
                loader.lines = LineMap::default();
                let (first, first_mark) = loader.next()?;
                let doc = loader.node(first, first_mark, &FieldPath::root(), 0)?;
                match loader.next()? {
                    (Event::DocumentEnd, _) => {}
                    (_, mark) => return Err(syntax(mark, "expected the end of the document")),
                }
                if doc.is_null() {
                    continue;
                }
                found.push((doc, std::mem::take(&mut loader.lines), mark.line()));
            }
            _ => return Err(syntax(mark, "expected the start of a document")),
        }
    }
    if found.is_empty() {
        return Err(ManifestError {
            path: String::new(),
            line: None,
            message: "the manifest is empty; write a Pod with apiVersion: v1, kind: Pod, metadata \
                      and spec"
                .into(),
        });
    }
    Ok(found)
}

fn syntax(mark: Marker, info: &str) -> ManifestError {
    ManifestError {
        path: String::new(),
        line: Some(mark.line()),
        message: format!(
            "invalid YAML: {info} (column {}); fix the YAML syntax (indentation, quotes, brackets)",
            mark.col() + 1
        ),
    }
}

/// Resource limits, not syntax: the YAML may be valid but is not a plausible manifest.
fn too_big(mark: Marker, info: &str) -> ManifestError {
    ManifestError {
        path: String::new(),
        line: Some(mark.line()),
        message: format!("{info}; a Pod manifest never needs this, simplify the document"),
    }
}

fn scan_error(err: &ScanError) -> ManifestError {
    syntax(*err.marker(), err.info())
}

struct Loader<'a> {
    parser: Parser<std::str::Chars<'a>>,
    /// Anchor id -> (node, its node count), for aliases.
    anchors: HashMap<usize, (Value, usize)>,
    lines: LineMap,
    nodes: usize,
}

impl Loader<'_> {
    fn next(&mut self) -> Result<(Event, Marker), ManifestError> {
        self.parser.next_token().map_err(|e| scan_error(&e))
    }

    fn count(&mut self, n: usize, mark: Marker) -> Result<(), ManifestError> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            return Err(too_big(
                mark,
                "the document expands to too many nodes (aliases of aliases?)",
            ));
        }
        Ok(())
    }

    fn anchor(&mut self, id: usize, value: &Value, before: usize) {
        if id > 0 {
            self.anchors
                .insert(id, (value.clone(), self.nodes.saturating_sub(before).max(1)));
        }
    }

    fn node(&mut self, event: Event, mark: Marker, path: &FieldPath, depth: usize) -> Result<Value, ManifestError> {
        if depth > MAX_DEPTH {
            return Err(too_big(mark, "the document is nested too deeply"));
        }
        self.lines.record(path, mark.line());
        let before = self.nodes;
        self.count(1, mark)?;
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let value = resolve_scalar(&text, style, tag.as_ref());
                if style == TScalarStyle::Plain && !value.is_string() && !value.is_null() {
                    self.lines.record_raw(path, &text);
                }
                self.anchor(anchor, &value, before);
                Ok(value)
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some((value, size)) => {
                    let (value, size) = (value.clone(), *size);
                    self.count(size, mark)?;
                    Ok(value)
                }
                None => Err(syntax(mark, "alias refers to an unknown anchor")),
            },
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (event, mark) = self.next()?;
                    if event == Event::SequenceEnd {
                        break;
                    }
                    let item = self.node(event, mark, &path.idx(items.len()), depth + 1)?;
                    items.push(item);
                }
                let value = Value::Array(items);
                self.anchor(anchor, &value, before);
                Ok(value)
            }
            Event::MappingStart(anchor, _) => {
                let value = Value::Object(self.mapping(path, depth)?);
                self.anchor(anchor, &value, before);
                Ok(value)
            }
            _ => Err(syntax(mark, "unexpected YAML event")),
        }
    }

    fn mapping(&mut self, path: &FieldPath, depth: usize) -> Result<Map<String, Value>, ManifestError> {
        let mut map = Map::new();
        let mut key_lines: HashMap<String, usize> = HashMap::new();
        // `<<: *base` merges apply after the explicit keys, which win wherever they appear.
        let mut merges: Vec<(Map<String, Value>, usize)> = Vec::new();
        loop {
            let (event, key_mark) = self.next()?;
            let (key, merge) = match event {
                Event::MappingEnd => break,
                Event::Scalar(text, style, _, _) => {
                    let merge = style == TScalarStyle::Plain && text == "<<";
                    (text, merge)
                }
                _ => {
                    return Err(ManifestError {
                        path: path.to_string(),
                        line: Some(key_mark.line()),
                        message: "mapping keys must be plain strings; write `key: value`".into(),
                    })
                }
            };
            let (event, mark) = self.next()?;
            if merge {
                // Parsed under a path no real key can have, so the merged nodes' lines never
                // shadow those of explicit keys; they are reported at the `<<` line instead.
                let value = self.node(event, mark, &path.key("<<"), depth + 1)?;
                let sources = match value {
                    Value::Object(m) => vec![m],
                    Value::Array(items) if items.iter().all(Value::is_object) => items
                        .into_iter()
                        .filter_map(|v| match v {
                            Value::Object(m) => Some(m),
                            _ => None,
                        })
                        .collect(),
                    _ => {
                        return Err(ManifestError {
                            path: path.to_string(),
                            line: Some(key_mark.line()),
                            message: "a `<<` merge key needs a mapping or a list of mappings; \
                                      write `<<: *anchor`"
                                .into(),
                        })
                    }
                };
                merges.extend(sources.into_iter().map(|m| (m, key_mark.line())));
                continue;
            }
            let child = path.key(&key);
            if let Some(first) = key_lines.get(&key) {
                return Err(ManifestError {
                    path: child.to_string(),
                    line: Some(key_mark.line()),
                    message: format!("duplicate key `{key}` (first set at line {first}); keep only one"),
                });
            }
            key_lines.insert(key.clone(), key_mark.line());
            self.lines.record(&child, key_mark.line());
            let value = self.node(event, mark, &child, depth + 1)?;
            map.insert(key, value);
        }
        for (source, line) in merges {
            for (key, value) in source {
                if !map.contains_key(&key) {
                    self.lines.record(&path.key(&key), line);
                    map.insert(key, value);
                }
            }
        }
        Ok(map)
    }
}

/// YAML 1.2 core schema for plain scalars; quoted and block scalars are always strings.
fn resolve_scalar(text: &str, style: TScalarStyle, tag: Option<&Tag>) -> Value {
    if style != TScalarStyle::Plain {
        return Value::String(text.to_string());
    }
    if let Some(tag) = tag {
        if tag.handle == CORE_TAG {
            match tag.suffix.as_str() {
                "str" => return Value::String(text.to_string()),
                "null" => return Value::Null,
                "bool" | "int" | "float" => {}
                _ => return Value::String(text.to_string()),
            }
        } else {
            // Local tags (`!foo`) carry no meaning for a Pod; keep the text.
            return Value::String(text.to_string());
        }
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(n) = resolve_int(text) {
        return Value::Number(n);
    }
    if is_core_float(text) {
        if let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64) {
            return Value::Number(n);
        }
    }
    // `.inf`/`.nan` have no JSON form; they are no valid value for any Pod field anyway.
    Value::String(text.to_string())
}

fn resolve_int(text: &str) -> Option<Number> {
    let (negative, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (digits, radix) = if let Some(hex) = text.strip_prefix("0x") {
        (hex, 16)
    } else if let Some(oct) = text.strip_prefix("0o") {
        (oct, 8)
    } else if text.len() > 1 && text.starts_with('0') && text.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        // YAML 1.1's octal, which Kubernetes reads (sigs.k8s.io/yaml): `defaultMode: 0644` is 420.
        (&text[1..], 8)
    } else {
        (body, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    if radix != 10 {
        return u64::from_str_radix(digits, radix).ok().map(Number::from);
    }
    if negative {
        text.parse::<i64>().ok().map(Number::from)
    } else {
        body.parse::<u64>().ok().map(Number::from)
    }
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_core_float(text: &str) -> bool {
    let s = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match frac {
        Some(f) => all_digits(int) && all_digits(f) && !(int.is_empty() && f.is_empty()),
        None => !int.is_empty() && all_digits(int),
    };
    let exponent_ok = match exponent {
        None => true,
        Some(e) => {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && all_digits(e)
        }
    };
    mantissa_ok && exponent_ok
}

/// Block-style YAML, keys in the `Value`'s order, readable by kubectl's YAML 1.1 parser too.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(m) if !m.is_empty() => write_map(m, 0, &mut out),
        Value::Array(a) if !a.is_empty() => write_seq(a, 0, &mut out),
        other => {
            write_inline(other, 0, &mut out);
            out.push('\n');
        }
    }
    out
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn write_map(map: &Map<String, Value>, indent: usize, out: &mut String) {
    for (i, (key, value)) in map.iter().enumerate() {
        // The first key of a mapping inside a sequence item sits on the `- ` line.
        if i > 0 {
            pad(out, indent);
        }
        out.push_str(&scalar_string(key));
        out.push(':');
        match value {
            Value::Object(m) if !m.is_empty() => {
                out.push('\n');
                pad(out, indent + 2);
                write_map(m, indent + 2, out);
            }
            // kubectl style: a list under a key is not indented further.
            Value::Array(a) if !a.is_empty() => {
                out.push('\n');
                pad(out, indent);
                write_seq(a, indent, out);
            }
            other => {
                out.push(' ');
                write_inline(other, indent, out);
                out.push('\n');
            }
        }
    }
}

fn write_seq(items: &[Value], indent: usize, out: &mut String) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            pad(out, indent);
        }
        out.push_str("- ");
        match item {
            Value::Object(m) if !m.is_empty() => write_map(m, indent + 2, out),
            Value::Array(a) if !a.is_empty() => write_seq(a, indent + 2, out),
            other => {
                write_inline(other, indent, out);
                out.push('\n');
            }
        }
    }
}

/// Scalars and empty collections; `indent` is the column of the owning key or `- `.
fn write_inline(value: &Value, indent: usize, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) if literal_ok(s) => write_literal(s, indent + 2, out),
        Value::String(s) => out.push_str(&scalar_string(s)),
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
    }
}

/// Multi-line text (shell scripts in `args`) reads best as a `|` block; anything whose exact
/// bytes a block scalar could not reproduce falls back to a quoted string.
fn literal_ok(s: &str) -> bool {
    s.contains('\n')
        && !s.starts_with([' ', '\t', '\n'])
        && s.chars().all(|c| c == '\n' || c == '\t' || !c.is_control())
        && !s.contains(['\u{feff}', '\u{2028}', '\u{2029}'])
        && s.split('\n').all(|line| line.is_empty() || !line.trim().is_empty())
}

fn write_literal(s: &str, indent: usize, out: &mut String) {
    let body = s.trim_end_matches('\n');
    let trailing = s.len() - body.len();
    out.push_str(match trailing {
        0 => "|-",
        1 => "|",
        _ => "|+",
    });
    out.push('\n');
    for line in s[..body.len() + trailing.saturating_sub(1)].split('\n') {
        if !line.is_empty() {
            pad(out, indent);
            out.push_str(line);
        }
        out.push('\n');
    }
    // The caller ends the node with a newline; a literal already did.
    out.pop();
}

/// A key or single-line string, plain when no YAML 1.1 or 1.2 parser could read it as anything
/// but that exact string, double-quoted (JSON escapes are valid YAML escapes) otherwise.
fn scalar_string(s: &str) -> String {
    if plain_ok(s) {
        s.to_string()
    } else {
        Value::String(s.to_string()).to_string()
    }
}

fn plain_ok(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_./=@+$():".contains(c) || c == ' ';
    // `--flag` is fine plain; `- x` and `---` are not.
    let dash_ok = first == '-' && !s.starts_with("---") && s.len() > 1 && !s[1..].starts_with(' ');
    if !(first.is_ascii_alphanumeric() || "/._$(".contains(first) || dash_ok)
        || !s.chars().all(allowed)
        || s.ends_with(' ')
        || s.contains("  ")
    {
        return false;
    }
    // `key: value` lookalikes; `nginx:1.25` is fine.
    if s.contains(": ") || s.ends_with(':') {
        return false;
    }
    // YAML 1.1 sexagesimal numbers (`1:30`) and times.
    if s.contains(':') && s.chars().all(|c| c.is_ascii_digit() || ":._+-".contains(c)) {
        return false;
    }
    // YAML 1.1 booleans and `1_000`-style numbers, which kubectl's parser still resolves.
    let yaml11_words = ["y", "n", "yes", "no", "on", "off", "true", "false", "null"];
    if yaml11_words.contains(&s.to_ascii_lowercase().as_str()) {
        return false;
    }
    let squeezed: String = s.chars().filter(|&c| c != '_').collect();
    resolve_scalar(&squeezed, TScalarStyle::Plain, None).is_string()
}

/// The node at `path`, if present.
pub(crate) fn lookup<'v>(value: &'v Value, path: &FieldPath) -> Option<&'v Value> {
    path.0.iter().try_fold(value, |v, seg| match seg {
        Seg::Key(k) => v.get(k),
        Seg::Index(i) => v.get(i),
    })
}
