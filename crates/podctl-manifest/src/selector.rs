//! Label selectors as kubectl's `-l`: `k=v` (or `k==v`), `k!=v`, `k in (a,b)`, `k notin (a,b)`,
//! `k` (has the label) and `!k` (has it not), joined by commas; every requirement must hold.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    Absent(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector(Vec<Requirement>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("label selector {selector:?}: {problem}; write e.g. `-l app=web,tier!=db,env in (prod,staging)`")]
pub struct SelectorError {
    pub selector: String,
    pub problem: String,
}

/// Splits at commas outside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 317
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_value(value: &str) -> bool {
    value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Selector {
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        let fail = |problem: String| SelectorError {
            selector: text.to_string(),
            problem,
        };
        let mut requirements = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                return Err(fail("an empty requirement (two commas, or one at an end)".into()));
            }
            let set = |rest: &str, key: &str, negate: bool| -> Result<Requirement, SelectorError> {
                let inner = rest
                    .trim()
                    .strip_prefix('(')
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(|| fail(format!("{part:?}: a set is written in parentheses, `(a,b)`")))?;
                let values: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
                if let Some(bad) = values.iter().find(|v| !valid_value(v)) {
                    return Err(fail(format!("{bad:?} is not a label value")));
                }
                Ok(match negate {
                    false => Requirement::In(key.to_string(), values),
                    true => Requirement::NotIn(key.to_string(), values),
                })
            };
            let requirement = if let Some((key, rest)) = part.split_once(" notin ") {
                set(rest, key.trim(), true)?
            } else if let Some((key, rest)) = part.split_once(" in ") {
                set(rest, key.trim(), false)?
            } else if let Some((key, value)) = part.split_once("!=") {
                Requirement::NotEquals(key.trim().to_string(), value.trim().to_string())
            } else if let Some((key, value)) = part.split_once("==").or_else(|| part.split_once('=')) {
                Requirement::Equals(key.trim().to_string(), value.trim().to_string())
            } else if let Some(key) = part.strip_prefix('!') {
                Requirement::Absent(key.trim().to_string())
            } else {
                Requirement::Exists(part.to_string())
            };
            let (key, value) = match &requirement {
                Requirement::Equals(k, v) | Requirement::NotEquals(k, v) => (k, Some(v)),
                Requirement::In(k, _) | Requirement::NotIn(k, _) | Requirement::Exists(k) | Requirement::Absent(k) => {
                    (k, None)
                }
            };
            if !valid_key(key) {
                return Err(fail(format!("{key:?} is not a label key")));
            }
            if let Some(value) = value.filter(|v| !valid_value(v)) {
                return Err(fail(format!("{value:?} is not a label value")));
            }
            requirements.push(requirement);
        }
        Ok(Selector(requirements))
    }

    /// Whether labels satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::Absent(k) => !labels.contains_key(k),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn kubectl_selectors_match_as_kubectl_does() {
        let web = labels(&[("app", "web"), ("tier", "front"), ("app.kubernetes.io/part-of", "shop")]);
        let db = labels(&[("app", "db")]);
        let yes = |s: &str, l: &BTreeMap<String, String>| Selector::parse(s).unwrap().matches(l);
        assert!(yes("app=web", &web) && !yes("app=web", &db));
        assert!(yes("app==web,tier", &web));
        assert!(yes("app!=web", &db) && !yes("app!=web", &web));
        assert!(yes("app in (web, api)", &web) && !yes("app in (web,api)", &db));
        assert!(yes("app notin (web)", &db) && yes("missing notin (x)", &db));
        assert!(yes("!tier", &db) && !yes("!tier", &web));
        assert!(yes("app.kubernetes.io/part-of=shop", &web));
        for bad in ["", "app=web,", "a b=c", "app in web", "app=we b"] {
            let e = Selector::parse(bad).expect_err(bad);
            assert!(e.to_string().contains("-l app=web"), "{e}");
        }
    }
}
