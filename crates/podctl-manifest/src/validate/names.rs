//! Kubernetes' name rules: DNS labels and subdomains, label keys and values, port names, object
//! names and data keys, with a suggestion of a valid name.

use super::*;

/// Turns an invalid name into a plausible valid one for the error's example.
pub(super) fn suggest(name: &str) -> String {
    let mut out = String::new();
    for ch in name.chars() {
        let ch = ch.to_ascii_lowercase();
        if ch.is_ascii_alphanumeric() {
            out.push(ch);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed: String = out.trim_matches('-').chars().take(63).collect();
    let trimmed = trimmed.trim_end_matches('-').to_string();
    if trimmed.is_empty() {
        "my-name".to_string()
    } else {
        trimmed
    }
}

/// RFC 1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub(crate) fn dns_label(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 63 {
        return Err(format!("{s:?} is {} characters long, the limit is 63", s.len()));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(format!("{s:?} may only contain lowercase letters, digits and '-'"));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err(format!("{s:?} must start and end with a letter or digit"));
    }
    Ok(())
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub(crate) fn dns_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 253 {
        return Err(format!("{s:?} is {} characters long, the limit is 253", s.len()));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return Err(format!("{s:?} may only contain lowercase letters, digits, '-' and '.'"));
    }
    if s.split('.')
        .any(|part| part.is_empty() || part.starts_with('-') || part.ends_with('-'))
    {
        return Err(format!(
            "{s:?} must start and end with a letter or digit (also around each '.')"
        ));
    }
    Ok(())
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, the name part of label keys and label values.
pub(super) fn label_name_chars(s: &str) -> bool {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && edge_ok(s.chars().next())
        && edge_ok(s.chars().last())
}

/// Label and annotation keys: `[prefix/]name`, prefix a DNS subdomain, name at most 63 characters.
pub(super) fn qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if let Err(problem) = dns_subdomain(p) {
            return Err(format!(
                "has an invalid prefix: {problem}; the prefix is a DNS subdomain such as \"example.com\""
            ));
        }
    }
    if name.is_empty() || name.len() > 63 || !label_name_chars(name) {
        return Err(
            "is invalid; the name part must be 1-63 characters of letters, digits, '-', '_' and \
             '.', starting and ending with a letter or digit"
                .into(),
        );
    }
    Ok(())
}

pub(super) fn label_value(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Ok(());
    }
    if v.len() > 63 || !label_name_chars(v) {
        return Err(
            "is invalid; use at most 63 characters of letters, digits, '-', '_' and '.', starting \
             and ending with a letter or digit (or an empty value); put longer text in an \
             annotation"
                .into(),
        );
    }
    Ok(())
}

/// IANA service name, as Kubernetes requires for port names.
pub(super) fn port_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.bytes().any(|b| b.is_ascii_lowercase())
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err("is invalid; use at most 15 lowercase letters, digits and single '-', with at least one letter, e.g. \"http\"".into())
    }
}

pub(super) fn check_object_name(c: &mut Checker<'_>, path: &FieldPath, name: &str) {
    if name.is_empty() {
        c.fail(
            path,
            "the name of the ConfigMap or Secret is required; add `name: NAME`",
        );
    } else if let Err(problem) = dns_subdomain(name) {
        c.fail(
            path,
            format!("{problem}; ConfigMap and Secret names are DNS subdomains"),
        );
    }
}

/// The data keys the API server allows (they become file and variable names).
pub(super) fn check_data_key(c: &mut Checker<'_>, path: &FieldPath, key: &str) {
    if key.is_empty() {
        c.fail(path, "key is required; name the key of the ConfigMap or Secret");
    } else if !key
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'))
    {
        c.fail(
            path,
            format!("{key:?} is not a valid key: keys have letters, digits, `-`, `_` and `.` only"),
        );
    }
}

pub(super) fn check_key_ref(c: &mut Checker<'_>, path: &FieldPath, selector: &crate::KeySelector) {
    check_object_name(c, &path.key("name"), &selector.name);
    check_data_key(c, &path.key("key"), &selector.key);
}
