//! kubectl's JSONPath templates (`-o jsonpath=...`, `custom-columns`, `--sort-by`): text with
//! `{...}` expressions, where an expression is a path (`.a.b`, `['k']`, `[0]`, `[-1]`, `[*]`,
//! `[1:3]`, `..name`, `[?(@.x=="v")]`, `@`), a quoted literal (`{"\n"}`), or `range PATH` ...
//! `end`. Several results of one expression print separated by spaces, as kubectl does.

use serde_json::Value;

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("jsonpath {template:?}: {problem}; write e.g. '{{.status.podIP}}' or '{{range .items[*]}}{{.metadata.name}}{{\"\\n\"}}{{end}}'")]
pub struct JsonPathError {
    template: String,
    problem: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(i64),
    Wildcard,
    Slice(Option<i64>, Option<i64>),
    Descend(String),
    Filter(Filter),
}

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    path: Vec<Step>,
    /// None: the path exists.
    compare: Option<(String, Value)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Path(Vec<Step>),
    Range(Vec<Step>, Vec<Node>),
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

impl Template {
    pub fn parse(template: &str) -> Result<Template, JsonPathError> {
        let fail = |problem: &str| JsonPathError {
            template: template.to_string(),
            problem: problem.to_string(),
        };
        // Tokens: literal text and the insides of `{...}`.
        let mut tokens: Vec<(bool, String)> = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                tokens.push((false, rest[..open].to_string()));
            }
            let inner = &rest[open + 1..];
            let close = matching_close(inner).ok_or_else(|| fail("a `{` is not closed"))?;
            tokens.push((true, inner[..close].trim().to_string()));
            rest = &inner[close + 1..];
        }
        if !rest.is_empty() {
            tokens.push((false, rest.to_string()));
        }
        let mut stack: Vec<(Option<Vec<Step>>, Vec<Node>)> = vec![(None, Vec::new())];
        for (expression, text) in tokens {
            let top = &mut stack.last_mut().expect("the root stays").1;
            if !expression {
                top.push(Node::Text(text));
                continue;
            }
            if let Some(path) = text.strip_prefix("range ") {
                let steps = parse_path(path.trim()).map_err(|p| fail(&p))?;
                stack.push((Some(steps), Vec::new()));
            } else if text == "end" {
                let (Some(steps), body) = stack.pop().expect("the root stays") else {
                    return Err(fail("`{end}` without `{range ...}`"));
                };
                stack
                    .last_mut()
                    .expect("the root stays")
                    .1
                    .push(Node::Range(steps, body));
            } else if let Some(literal) = string_literal(&text) {
                top.push(Node::Text(literal));
            } else {
                top.push(Node::Path(parse_path(&text).map_err(|p| fail(&p))?));
            }
        }
        if stack.len() != 1 {
            return Err(fail("a `{range ...}` has no `{end}`"));
        }
        Ok(Template {
            nodes: stack.pop().expect("the root stays").1,
        })
    }

    /// The template applied to `value`; a path that finds nothing prints nothing.
    pub fn render(&self, value: &Value) -> String {
        let mut out = String::new();
        render_nodes(&self.nodes, value, &mut out);
        out
    }

    /// The values one path expression (a template of a single `{...}`) finds, for columns and sorting.
    pub fn values<'v>(&self, value: &'v Value) -> Vec<&'v Value> {
        match self.nodes.as_slice() {
            [Node::Path(steps)] => select(steps, value),
            _ => Vec::new(),
        }
    }
}

/// A column or sort expression: `.metadata.name` or `{.metadata.name}`.
pub fn path_expression(text: &str) -> Result<Template, JsonPathError> {
    let text = text.trim();
    if text.starts_with('{') {
        Template::parse(text)
    } else {
        Template::parse(&format!("{{{text}}}"))
    }
}

/// How kubectl prints one value found by a path.
pub fn show(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn render_nodes(nodes: &[Node], value: &Value, out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Path(steps) => {
                let found: Vec<String> = select(steps, value).into_iter().map(show).collect();
                out.push_str(&found.join(" "));
            }
            Node::Range(steps, body) => {
                for item in select(steps, value) {
                    render_nodes(body, item, out);
                }
            }
        }
    }
}

/// Where the `}` closing an expression is, skipping quoted text.
fn matching_close(inner: &str) -> Option<usize> {
    let mut quote = None;
    let mut escaped = false;
    for (i, c) in inner.char_indices() {
        match (quote, c) {
            (Some(_), '\\') if !escaped => {
                escaped = true;
                continue;
            }
            (Some(q), c) if c == q && !escaped => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '}') => return Some(i),
            _ => {}
        }
        escaped = false;
    }
    None
}

/// `"text"` with `\n`, `\t`, `\\` and `\"`.
fn string_literal(text: &str) -> Option<String> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    Some(out)
}

fn parse_path(text: &str) -> Result<Vec<Step>, String> {
    let text = text.trim();
    let mut rest = text
        .strip_prefix('@')
        .or_else(|| text.strip_prefix('$'))
        .unwrap_or(text);
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("..") {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            steps.push(Step::Descend(after[..end].to_string()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let key = &after[..end];
            if key.is_empty() {
                return Err(format!("an empty field name in {text:?}"));
            }
            steps.push(if key == "*" {
                Step::Wildcard
            } else {
                Step::Key(key.to_string())
            });
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let close = matching_bracket(after).ok_or_else(|| format!("a `[` is not closed in {text:?}"))?;
            steps.push(parse_bracket(after[..close].trim())?);
            rest = &after[close + 1..];
        } else {
            return Err(format!("{rest:?} in {text:?} is neither `.field` nor `[...]`"));
        }
    }
    Ok(steps)
}

fn matching_bracket(after: &str) -> Option<usize> {
    let mut depth = 0;
    let mut quote = None;
    for (i, c) in after.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, ']') if depth == 0 => return Some(i),
            (None, ']') => depth -= 1,
            _ => {}
        }
    }
    None
}

fn parse_bracket(inside: &str) -> Result<Step, String> {
    if inside == "*" {
        return Ok(Step::Wildcard);
    }
    if let Some(quoted) = inside
        .strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .or_else(|| inside.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
    {
        return Ok(Step::Key(quoted.to_string()));
    }
    if let Some(filter) = inside.strip_prefix("?(").and_then(|s| s.strip_suffix(')')) {
        return parse_filter(filter.trim());
    }
    if let Some((start, end)) = inside.split_once(':') {
        let bound = |s: &str| -> Result<Option<i64>, String> {
            let s = s.trim();
            if s.is_empty() {
                Ok(None)
            } else {
                s.parse().map(Some).map_err(|_| format!("{s:?} is not an index"))
            }
        };
        let end = end.split(':').next().unwrap_or_default();
        return Ok(Step::Slice(bound(start)?, bound(end)?));
    }
    inside
        .parse()
        .map(Step::Index)
        .map_err(|_| format!("[{inside}] is not an index, a quoted key, `*`, a slice or a filter"))
}

fn parse_filter(text: &str) -> Result<Step, String> {
    for op in ["==", "!=", "<=", ">=", "<", ">"] {
        if let Some((left, right)) = text.split_once(op) {
            let right = right.trim();
            let value = string_literal(right)
                .map(Value::String)
                .or_else(|| {
                    right
                        .strip_prefix('\'')
                        .and_then(|s| s.strip_suffix('\''))
                        .map(|s| Value::String(s.to_string()))
                })
                .or_else(|| serde_json::from_str(right).ok())
                .ok_or_else(|| format!("{right:?} is not a value to compare with"))?;
            return Ok(Step::Filter(Filter {
                path: parse_path(left.trim())?,
                compare: Some((op.to_string(), value)),
            }));
        }
    }
    Ok(Step::Filter(Filter {
        path: parse_path(text)?,
        compare: None,
    }))
}

fn select<'v>(steps: &[Step], value: &'v Value) -> Vec<&'v Value> {
    let mut current = vec![value];
    for step in steps {
        let mut next = Vec::new();
        for v in current {
            apply(step, v, &mut next);
        }
        current = next;
    }
    current
}

fn apply<'v>(step: &Step, value: &'v Value, out: &mut Vec<&'v Value>) {
    match step {
        Step::Key(key) => out.extend(value.get(key)),
        Step::Index(i) => {
            if let Some(items) = value.as_array() {
                let index = if *i < 0 { items.len() as i64 + i } else { *i };
                out.extend(usize::try_from(index).ok().and_then(|i| items.get(i)));
            }
        }
        Step::Wildcard => match value {
            Value::Array(items) => out.extend(items.iter()),
            Value::Object(map) => out.extend(map.values()),
            _ => {}
        },
        Step::Slice(start, end) => {
            if let Some(items) = value.as_array() {
                let len = items.len() as i64;
                let clamp = |b: i64| if b < 0 { (len + b).max(0) } else { b.min(len) } as usize;
                let (s, e) = (clamp(start.unwrap_or(0)), clamp(end.unwrap_or(len)));
                if s < e {
                    out.extend(items[s..e].iter());
                }
            }
        }
        Step::Descend(key) => descend(key, value, out),
        Step::Filter(filter) => {
            let items: Vec<&Value> = match value {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            out.extend(items.into_iter().filter(|item| matches(filter, item)));
        }
    }
}

fn descend<'v>(key: &str, value: &'v Value, out: &mut Vec<&'v Value>) {
    match value {
        Value::Object(map) => {
            if key.is_empty() || key == "*" {
                out.extend(map.values());
            } else if let Some(found) = map.get(key) {
                out.push(found);
            }
            for child in map.values() {
                descend(key, child, out);
            }
        }
        Value::Array(items) => {
            for child in items {
                descend(key, child, out);
            }
        }
        _ => {}
    }
}

fn matches(filter: &Filter, item: &Value) -> bool {
    let found = select(&filter.path, item);
    let Some((op, wanted)) = &filter.compare else {
        return !found.is_empty();
    };
    found.iter().any(|v| {
        let ordering = match (v.as_f64(), wanted.as_f64()) {
            (Some(a), Some(b)) => a.partial_cmp(&b),
            _ => Some(show(v).cmp(&show(wanted))),
        };
        match op.as_str() {
            "==" => *v == wanted || show(v) == show(wanted),
            "!=" => *v != wanted && show(v) != show(wanted),
            "<" => ordering == Some(std::cmp::Ordering::Less),
            ">" => ordering == Some(std::cmp::Ordering::Greater),
            "<=" => ordering.is_some_and(|o| o != std::cmp::Ordering::Greater),
            ">=" => ordering.is_some_and(|o| o != std::cmp::Ordering::Less),
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list() -> Value {
        json!({"kind": "List", "items": [
            {"metadata": {"name": "web", "labels": {"app": "web"}}, "status": {"podIP": "10.0.0.1",
             "containerStatuses": [{"name": "a", "restartCount": 2}, {"name": "b", "restartCount": 0}]}},
            {"metadata": {"name": "db", "labels": {"app.kubernetes.io/name": "db"}}, "status": {"podIP": "10.0.0.2"}},
        ]})
    }

    fn render(template: &str, value: &Value) -> String {
        Template::parse(template).unwrap().render(value)
    }

    #[test]
    fn kubectl_templates_render_as_kubectl_prints_them() {
        let l = list();
        assert_eq!(render("{.items[0].status.podIP}", &l), "10.0.0.1");
        assert_eq!(
            render(r#"{range .items[*]}{.metadata.name}{"\n"}{end}"#, &l),
            "web\ndb\n"
        );
        assert_eq!(render("{.items[*].metadata.name}", &l), "web db");
        assert_eq!(render("{.items[-1].metadata.name}", &l), "db");
        assert_eq!(render("{.items[0:1].metadata.name}", &l), "web");
        assert_eq!(
            render("{.items[1].metadata.labels['app.kubernetes.io/name']}", &l),
            "db"
        );
        assert_eq!(
            render(r#"{.items[?(@.metadata.name=="db")].status.podIP}"#, &l),
            "10.0.0.2"
        );
        assert_eq!(render("{..restartCount}", &l), "2 0");
        assert_eq!(
            render(
                r#"{range .items[*]}{.metadata.name}:{range .status.containerStatuses[*]}{.name},{end};{end}"#,
                &l
            ),
            "web:a,b,;db:;"
        );
        assert_eq!(
            render("name={.items[0].metadata.name} ip={.items[0].status.podIP}", &l),
            "name=web ip=10.0.0.1"
        );
        assert_eq!(render("{.items[0].nope}", &l), "");
        assert_eq!(
            render("{.items[0].metadata}", &l),
            r#"{"labels":{"app":"web"},"name":"web"}"#
        );
        assert!(Template::parse("{.items[0").is_err());
        assert!(Template::parse("{range .items[*]}{.x}").is_err());
        assert!(Template::parse("{end}").is_err());
        let column = path_expression(".status.podIP").unwrap();
        assert_eq!(column.values(&l["items"][1]), [&json!("10.0.0.2")]);
    }
}
