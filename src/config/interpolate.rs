//! `${VAR}` and `${VAR:-default}` in string values.
//!
//! Expansion runs on each string value *after* TOML parsing, so an environment
//! variable can never inject TOML (a `"` or a newline in a value stays inside that value)
//! and every position reported still points into the file as written.
//!
//! - `${VAR}`: the variable's value; an error when it is not set.
//! - `${VAR:-default}`: the value, or `default` when the variable is unset or empty
//!   (as in POSIX shells). The default is taken literally up to the first `}`.
//! - `$$`: a literal `$`. A `$` followed by anything else is kept as is, so tokens and
//!   passwords that contain a `$` need no escaping unless a `{` follows it.

/// Looks up an environment variable: the process environment in production, a map in tests.
pub type Env<'e> = &'e dyn Fn(&str) -> Option<String>;

/// Why a string could not be expanded. Holds the variable's name at most, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolateError {
    #[error("environment variable `{0}` is not set (write `${{{0}:-default}}` to give a default)")]
    Missing(String),
    #[error("`${{` is not closed by `}}` (write `$$` for a literal `$`)")]
    Unclosed,
    #[error(
        "`${{...}}` must hold a variable name (letters, digits, `_`, not starting with a digit), \
         optionally followed by `:-default` (write `$$` for a literal `$`)"
    )]
    BadName,
}

/// Expands every `${...}` and `$$` in `input`.
pub fn interpolate(input: &str, env: Env) -> Result<String, InterpolateError> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let close = body.find('}').ok_or(InterpolateError::Unclosed)?;
            out.push_str(&expand(&body[..close], env)?);
            rest = &body[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The value of one `${...}` whose body (between the braces) is `body`.
fn expand(body: &str, env: Env) -> Result<String, InterpolateError> {
    let (name, default) = match body.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (body, None),
    };
    if !is_var_name(name) {
        return Err(InterpolateError::BadName);
    }
    match (env(name), default) {
        (Some(value), Some(default)) if value.is_empty() => Ok(default.to_owned()),
        (Some(value), _) => Ok(value),
        (None, Some(default)) => Ok(default.to_owned()),
        (None, None) => Err(InterpolateError::Missing(name.to_owned())),
    }
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("t0k3n".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn expand(s: &str) -> Result<String, InterpolateError> {
        interpolate(s, &env)
    }

    #[test]
    fn variables_defaults_and_dollars() {
        assert_eq!(expand("plain").unwrap(), "plain");
        assert_eq!(expand("Bearer ${TOKEN}").unwrap(), "Bearer t0k3n");
        assert_eq!(expand("${TOKEN}${TOKEN}").unwrap(), "t0k3nt0k3n");
        assert_eq!(expand("${UNSET:-fallback}").unwrap(), "fallback");
        assert_eq!(expand("${UNSET:-}").unwrap(), "");
        assert_eq!(expand("${EMPTY:-fallback}").unwrap(), "fallback");
        assert_eq!(expand("${EMPTY}").unwrap(), "");
        assert_eq!(expand("${TOKEN:-fallback}").unwrap(), "t0k3n");
        assert_eq!(expand("${UNSET:-a:-b}").unwrap(), "a:-b");
        assert_eq!(expand("cost $$5, $${TOKEN}").unwrap(), "cost $5, ${TOKEN}");
        assert_eq!(expand("pa$word $").unwrap(), "pa$word $");
    }

    #[test]
    fn missing_and_malformed_references_are_errors() {
        assert_eq!(
            expand("${UNSET}"),
            Err(InterpolateError::Missing("UNSET".into()))
        );
        assert!(
            expand("${UNSET}")
                .unwrap_err()
                .to_string()
                .contains("`UNSET` is not set")
        );
        assert_eq!(expand("${TOKEN"), Err(InterpolateError::Unclosed));
        assert_eq!(expand("${}"), Err(InterpolateError::BadName));
        assert_eq!(expand("${1X}"), Err(InterpolateError::BadName));
        assert_eq!(expand("${A B}"), Err(InterpolateError::BadName));
        assert_eq!(expand("${TOKEN-x}"), Err(InterpolateError::BadName));
    }
}
