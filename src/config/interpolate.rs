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
//! - `${file:/run/secrets/NAME}`: the content of that file (Docker and Kubernetes
//!   secrets), with one trailing newline (`\n` or `\r\n`) trimmed; an error naming the
//!   path when it cannot be read or is not UTF-8. Its content is never in a message. A
//!   relative path is taken from the working directory.

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
    /// The path is not a secret and is shown; the file's content never is.
    #[error("cannot read the file `{path}` of `${{file:...}}`: {reason}")]
    File { path: String, reason: String },
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
    if let Some(path) = body.strip_prefix("file:") {
        return read_secret_file(path);
    }
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

/// The content of the file at `path`, one trailing newline trimmed.
fn read_secret_file(path: &str) -> Result<String, InterpolateError> {
    let failed = |reason: String| InterpolateError::File {
        path: path.to_owned(),
        reason,
    };
    if path.is_empty() {
        return Err(failed("no path after `file:`".to_owned()));
    }
    let bytes = std::fs::read(path).map_err(|e| failed(io_reason(&e)))?;
    let mut text =
        String::from_utf8(bytes).map_err(|_| failed("it is not UTF-8 text".to_owned()))?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

/// The I/O error without the OS's "(os error 2)" tail.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        std::io::ErrorKind::IsADirectory => "it is a directory".to_owned(),
        _ => e.to_string(),
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

    #[test]
    fn file_references_read_the_file_and_trim_one_newline() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, content: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, content).unwrap();
            path.to_str().unwrap().to_owned()
        };
        let lf = write("lf", "s3cr3t\n");
        let crlf = write("crlf", "s3cr3t\r\n");
        let two = write("two", "s3cr3t\n\n");
        let bare = write("bare", "s3cr3t");
        assert_eq!(expand(&format!("${{file:{lf}}}")).unwrap(), "s3cr3t");
        assert_eq!(expand(&format!("${{file:{crlf}}}")).unwrap(), "s3cr3t");
        assert_eq!(expand(&format!("${{file:{two}}}")).unwrap(), "s3cr3t\n");
        assert_eq!(
            expand(&format!("Bearer ${{file:{bare}}}")).unwrap(),
            "Bearer s3cr3t"
        );

        let missing = dir.path().join("nope").to_str().unwrap().to_owned();
        let e = expand(&format!("${{file:{missing}}}")).unwrap_err();
        assert!(e.to_string().contains(&missing), "{e}");
        let e = expand(&format!("${{file:{}}}", dir.path().display())).unwrap_err();
        assert!(matches!(e, InterpolateError::File { .. }), "{e}");
        let binary = dir.path().join("bin");
        std::fs::write(&binary, [0xff, 0xfe, b's']).unwrap();
        let e = expand(&format!("${{file:{}}}", binary.display())).unwrap_err();
        assert!(e.to_string().contains("not UTF-8"), "{e}");
        assert!(expand("${file:}").is_err());
    }
}
